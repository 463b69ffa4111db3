"""Weights out and in: safetensors written and read by dltrain, .keras files written by Keras 3
(tests/data/keras, with Keras's own predictions), and model.init_from."""
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CONFIGS

KERAS = Path(__file__).parent / "data" / "keras"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from dltrain import api

    run = tmp_path_factory.mktemp("digits") / "run"
    api.fit(str(CONFIGS / "digits_mlp.yaml"), overrides=["training.epochs=1"], run_dir=run)
    return run


def _fresh(run):
    from dltrain.api import LoadedRun
    from dltrain.model import Model

    loaded = LoadedRun(run)
    model = Model.from_config(loaded.experiment.config["model"])
    model.build(np.random.default_rng(123))
    return loaded, model


def test_safetensors_round_trip_predicts_identically(digits_run, tmp_path, cli):
    from dltrain.export import safetensors, weights

    result = cli("export", digits_run, "--format", "safetensors", "-o", tmp_path / "w.safetensors")
    assert result.exit_code == 0, result.output
    loaded, model = _fresh(digits_run)
    arrays = weights.read(tmp_path / "w.safetensors")
    assert set(arrays) == set(loaded.model.state_dict()) == {"dense_1/kernel", "dense_1/bias", "dense_2/kernel",
                                                              "dense_2/bias"}
    copied = weights.assign(model, arrays)
    assert copied == sorted(arrays)
    x = np.random.default_rng(0).uniform(0, 16, (50, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), loaded.model.predict(x))
    _, metadata = safetensors.load(tmp_path / "w.safetensors")
    assert metadata["format"] == "dltrain" and json.loads(metadata["input_shape"]) == [8, 8]


def test_safetensors_layout_is_the_documented_one():
    from dltrain.export import safetensors

    arrays = {"b/x": np.arange(6, dtype=np.float32).reshape(2, 3), "a/y": np.array([1, 2], dtype=np.int64),
              "c/z": np.ones((0,), np.float64)}
    data = safetensors.encode(arrays, {"k": "v"})
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    header = json.loads(data[8:8 + length])
    assert header["__metadata__"] == {"k": "v"}
    assert header["a/y"] == {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}
    assert header["b/x"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [16, 40]}
    assert data[8 + length + 16:8 + length + 40] == arrays["b/x"].tobytes()
    back, metadata = safetensors.decode(data)
    for name, value in arrays.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype


def test_a_truncated_safetensors_file_is_a_checkpoint_error(tmp_path):
    from dltrain.errors import CheckpointError
    from dltrain.export import safetensors

    data = safetensors.encode({"a/w": np.ones(10, np.float32)})
    with pytest.raises(CheckpointError, match="a/w"):
        safetensors.decode(data[:-8])


@pytest.mark.parametrize("name", ["tiny_convnet", "tiny_recurrent", "tiny_functional"])
def test_a_keras_3_file_imports_and_predicts_like_keras(name):
    pytest.importorskip("h5py")
    from dltrain.export import keras, weights
    from dltrain.model import Model

    arrays, metadata = keras.load(KERAS / f"{name}.keras")
    assert metadata["keras_version"].startswith("3.")
    model = Model.from_config(yaml.safe_load((KERAS / f"{name}.yaml").read_text()))
    model.build(np.random.default_rng(0))
    copied = weights.assign(model, arrays, source=f"{name}.keras")
    assert copied == sorted(model.state_dict())                     # every array came from Keras
    reference = np.load(KERAS / f"{name}.npz")
    np.testing.assert_allclose(model.predict(reference["x"]), reference["y"], atol=1e-5, rtol=0)


def test_keras_import_lists_every_shape_mismatch():
    pytest.importorskip("h5py")
    from dltrain.errors import ConfigError
    from dltrain.export import keras, weights
    from dltrain.model import Model

    config = yaml.safe_load((KERAS / "tiny_convnet.yaml").read_text())
    config["layers"][6]["units"] = 9                                 # hidden: 8 -> 9 units
    model = Model.from_config(config)
    model.build(np.random.default_rng(0))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as caught:
        weights.assign(model, keras.load(KERAS / "tiny_convnet.keras")[0], source="tiny_convnet.keras")
    message = str(caught.value)
    for fragment in ("3 array(s)", "hidden/kernel: tiny_convnet.keras has shape (24, 8), the model (24, 9)",
                     "hidden/bias", "out/kernel: tiny_convnet.keras has shape (8, 3), the model (9, 3)"):
        assert fragment in message, message
    for key, value in model.state_dict().items():                    # nothing copied
        np.testing.assert_array_equal(value, before[key])


def _config_with_init_from(tmp_path, init_from):
    config = yaml.safe_load((CONFIGS / "digits_mlp.yaml").read_text())
    config["data"]["train"]["path"] = str((CONFIGS / config["data"]["train"]["path"]).resolve())
    config["model"]["init_from"] = init_from
    path = tmp_path / "fine_tune.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_init_from_a_run_copies_the_chosen_layers(digits_run, tmp_path):
    from dltrain.experiment import Experiment
    from dltrain.export import init_from

    source = digits_run.resolve()
    experiment = Experiment(str(_config_with_init_from(tmp_path, {"run": str(source), "layers": ["dense_1"]})))
    model = experiment.build()
    trained = _fresh(digits_run)[0].model.state_dict()
    untouched = model.state_dict()["dense_2/kernel"].copy()
    assert init_from.apply(experiment) == ["dense_1/bias", "dense_1/kernel"]
    np.testing.assert_array_equal(model.state_dict()["dense_1/kernel"], trained["dense_1/kernel"])
    np.testing.assert_array_equal(model.state_dict()["dense_2/kernel"], untouched)


def test_fit_with_init_from_a_safetensors_file_starts_from_it(digits_run, tmp_path, cli):
    from dltrain import api

    cli("export", digits_run, "--format", "safetensors", "-o", tmp_path / "base.safetensors")
    config = _config_with_init_from(tmp_path, {"file": "base.safetensors"})
    result = cli("fit", config, "--run-dir", tmp_path / "run", "--quiet", "--set", "training.epochs=1",
                 "--set", "optimizer={type: sgd, learning_rate: 1.0e-30}")
    assert result.exit_code == 0, result.output
    start = api.LoadedRun(digits_run).model.state_dict()
    after = api.LoadedRun(tmp_path / "run", "last").model.state_dict()
    for key in start:
        np.testing.assert_allclose(after[key], start[key], atol=1e-6)


@pytest.mark.parametrize("init_from, fragment", [
    ({"run": "nowhere"}, "does not exist"),
    ({"run": "x", "layer": ["a"]}, "no setting 'layer'"),
    ({"file": "base.safetensors", "layers": ["conv*"]}, "match no layer of the model"),
])
def test_init_from_errors_are_located(digits_run, tmp_path, cli, init_from, fragment):
    cli("export", digits_run, "--format", "safetensors", "-o", tmp_path / "base.safetensors")
    result = cli("fit", _config_with_init_from(tmp_path, init_from), "--run-dir", tmp_path / "run", "--quiet",
                 "--set", "training.epochs=1")
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "fine_tune.yaml" in result.output and "init_from" in result.output


@pytest.mark.parametrize("init_from, fragment", [
    ({"run": "x", "layer": ["a"]}, "no setting 'layer'"),
    ({"run": "x", "layers": ["conv*"]}, "match no layer"),
    ({"run": "x", "layers": "dense_1"}, "list of layer-name globs"),
    ({"layers": ["dense_1"]}, "one of run: PATH or file: PATH"),
])
def test_dltrain_check_finds_init_from_mistakes_before_training(tmp_path, cli, init_from, fragment):
    result = cli("check", _config_with_init_from(tmp_path, init_from))
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "init_from" in result.output


def test_dltrain_check_accepts_an_init_from_source_not_trained_yet(tmp_path, cli):
    result = cli("check", _config_with_init_from(tmp_path, {"run": "runs/later", "layers": ["dense_*"]}))
    assert result.exit_code == 0, result.output
