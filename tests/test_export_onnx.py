"""ONNX export: every example config's trained model, and every exportable layer, runs in
onnxruntime and gives what dltrain gives, to 1e-5; the ONNX checker accepts each file; a layer
that cannot be exported is named in an error (exit 2)."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CONFIGS, skip_without_data

ort = pytest.importorskip("onnxruntime")
SMALL_MNIST = Path(__file__).parent / "data" / "mnist_small"
TOLERANCE = 1e-5


def _check(path_or_bytes):
    onnx = pytest.importorskip("onnx")
    model = onnx.load_from_string(path_or_bytes) if isinstance(path_or_bytes, bytes) else onnx.load(path_or_bytes)
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(data, x):
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.asarray(x)
    return session.run(None, {"input": x if x.dtype == object else x.astype(np.float32)})[0]


def _overrides(config):
    overrides = ["training.epochs=1"]
    if config.name.startswith("mnist"):                 # a 600-image slice of MNIST, committed
        for split, stem in (("train", "train"), ("test", "t10k")):
            overrides.append(f"data.{split}={{type: idx, path: '{SMALL_MNIST / f'{stem}-images-idx3-ubyte.gz'}',"
                             f" labels: '{SMALL_MNIST / f'{stem}-labels-idx1-ubyte.gz'}'}}")
    return overrides


def _raw_input_file(loaded, tmp_path):
    """(file for `predict`, the same samples as the exported model's input)."""
    experiment = loaded.experiment
    split = experiment.load_data()["test"]
    x = np.asarray(split.x)[split.indices]
    x = x if x.dtype == object else x[:150]               # texts: the whole test split
    if x.dtype == object:                                 # texts: predict reads a CSV, ONNX the strings
        path = tmp_path / "texts.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            source = experiment.sources["train"]
            writer.writerow([source.text, source.label])
            writer.writerows([[text, 0] for text in x])
        return path, x
    path = tmp_path / "raw.npy"
    np.save(path, x)
    return path, x


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_exports_and_predicts_like_dltrain(config, tmp_path, cli):
    from dltrain import api

    skip_without_data(config)
    api.fit(str(config), overrides=_overrides(config), run_dir=tmp_path / "run")
    result = cli("export", tmp_path / "run", "--format", "onnx", "-o", tmp_path / "model.onnx")
    assert result.exit_code == 0, result.output
    model = _check(str(tmp_path / "model.onnx"))
    loaded = api.LoadedRun(tmp_path / "run")
    file, raw = _raw_input_file(loaded, tmp_path)
    expected = api.predict(tmp_path / "run", [file]).outputs
    got = _run((tmp_path / "model.onnx").read_bytes(), raw)
    assert got.shape == expected.shape
    difference = float(np.abs(got - expected).max())
    print(f"{config.name}: max |onnx - predict| = {difference:.3g}")
    assert difference <= TOLERANCE, difference
    metadata = {p.key: p.value for p in model.metadata_props}
    described = json.loads(metadata["input"])
    assert described["name"] == "input"
    assert described["dtype"] == ("string" if np.asarray(raw).dtype == object else "float32")
    if loaded.class_names:
        assert json.loads(metadata["class_names"]) == [str(n) for n in loaded.class_names]


# -- every exportable layer, on random weights -------------------------------------------------

def _model(layers, input_shape, seed=0, dtype=np.float32):
    from dltrain.model import Model

    model = Model.from_config({"input_shape": list(input_shape), "layers": layers}, dtype=dtype)
    rng = np.random.default_rng(seed)
    model.build(rng)
    for node in model.nodes:                     # statistics away from their initial 0 and 1
        for key, value in node.layer.state.items():
            value[...] = rng.uniform(0.5, 1.5, value.shape) if "variance" in key else rng.normal(0, 0.3, value.shape)
        for key, value in node.layer.params.items():
            if key in ("bias", "beta", "gamma", "recurrent_bias"):
                value[...] = rng.normal(0, 0.3, value.shape) + (1 if key == "gamma" else 0)
    return model


def _compare(model, x, pipeline=None):
    from dltrain.export import onnx_model

    data, _ = onnx_model.model_bytes(model, pipeline)
    _check(data)
    expected = model.predict(x if pipeline is None else pipeline.transform(x))
    got = _run(data, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


def _exportable_examples():
    from dltrain.export import onnx_model
    from dltrain.registry import registry

    names = {*onnx_model.onnx_layers.CONVERTERS, *onnx_model.RECURRENT, "bidirectional"}
    cases = []
    for name in sorted(names):
        cls = registry("layer").get(name)
        for i, (arguments, shape) in enumerate(cls.examples):
            if getattr(cls, "multi_input", False):
                continue                           # merges: test_merges_export
            cases.append(pytest.param(name, arguments, shape, id=f"{name}-{i}"))
    return cases


@pytest.mark.parametrize("name, arguments, shape", _exportable_examples())
def test_every_exportable_layer_example_runs_like_dltrain(name, arguments, shape):
    rng = np.random.default_rng(1)
    model = _model([{"type": name, **arguments}], shape)
    if getattr(model.nodes[0].layer, "integer_input", False):
        x = rng.integers(0, arguments["input_dim"], (5, *shape)).astype(np.float32)
    else:
        x = rng.normal(size=(5, *shape)).astype(np.float32)
    _compare(model, x)


def test_every_registered_layer_has_a_converter():
    from dltrain.export import onnx_model
    from dltrain.registry import registry

    exportable = {*onnx_model.onnx_layers.CONVERTERS, *onnx_model.RECURRENT, "bidirectional"}
    assert set(registry("layer").names()) <= exportable


@pytest.mark.parametrize("merge", [{"type": "add"}, {"type": "multiply"}, {"type": "concatenate"},
                                   {"type": "concatenate", "axis": 1}])
def test_merges_export(merge):
    layers = [{"name": "a", "type": "dense", "units": 4, "activation": "tanh", "inputs": ["input"]},
              {"name": "b", "type": "dense", "units": 4, "inputs": ["input"]},
              {"name": "c", "type": "activation", "activation": "sigmoid", "inputs": ["input"]},
              {**merge, "inputs": ["a", "b", "c"]}, {"type": "flatten"}]
    _compare(_model(layers, (3, 4)), np.random.default_rng(2).normal(size=(6, 3, 4)).astype(np.float32))


@pytest.mark.parametrize("function", ["linear", "relu", {"type": "leaky_relu", "negative_slope": 0.1}, "elu",
                                      "selu", "gelu", {"type": "gelu", "approximate": True}, "sigmoid", "tanh",
                                      "softmax", "swish", "softplus"],
                         ids=lambda f: f if isinstance(f, str) else "-".join(map(str, f.values())))
def test_every_activation_exports(function):
    x = np.random.default_rng(3).normal(0, 3, size=(8, 5)).astype(np.float32)
    _compare(_model([{"type": "activation", "activation": function}], (5,)), x)


def test_every_registered_activation_has_a_converter():
    from dltrain.export import onnx_layers
    from dltrain.registry import registry

    assert set(registry("activation").names()) <= set(onnx_layers.ACTIVATIONS)


def _padded_ids(rng, batch, steps, vocabulary):
    """Token ids padded with 0 after each sequence (as text_vectorization pads), one all padding."""
    ids = rng.integers(1, vocabulary, (batch, steps)).astype(np.float32)
    lengths = rng.integers(0, steps + 1, batch)
    lengths[:3] = (0, steps, 1)
    ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    return ids


def _ids_masked_anywhere(rng, batch, steps, vocabulary):
    """Token ids with 0 (masked) anywhere: before, between and after real steps; one all 0,
    one with no 0, one with a single real step in the middle."""
    ids = rng.integers(1, vocabulary, (batch, steps)).astype(np.float32)
    ids[rng.random((batch, steps)) < 0.4] = 0
    ids[0], ids[1] = 0, rng.integers(1, vocabulary, steps)
    ids[2] = 0
    ids[2, steps // 2] = 3
    return ids


RECURRENT_SPECS = [
    {"type": "lstm", "units": 5}, {"type": "gru", "units": 4}, {"type": "gru", "units": 3, "reset_after": False},
    {"type": "simple_rnn", "units": 4}, {"type": "lstm", "units": 3, "go_backwards": True},
    {"type": "gru", "units": 3, "return_sequences": True, "go_backwards": True},
    {"type": "lstm", "units": 3, "zero_output_for_mask": True}, {"type": "simple_rnn", "units": 3, "go_backwards": True},
    {"type": "bidirectional", "layer": {"type": "gru", "units": 4}},
    {"type": "bidirectional", "layer": {"type": "lstm", "units": 3, "return_sequences": True}, "merge_mode": "ave"},
    {"type": "bidirectional", "layer": {"type": "simple_rnn", "units": 2, "go_backwards": False}, "merge_mode": "mul"},
]


@pytest.mark.parametrize("padding", ["after", "anywhere"])
@pytest.mark.parametrize("recurrent", RECURRENT_SPECS, ids=lambda spec: json.dumps(spec).replace('"', ""))
def test_masked_recurrent_layers_export_for_any_mask(recurrent, padding):
    """embedding(mask_zero) -> recurrent (-> a second, reading the carried states) -> dense, with
    0 ids after the real ones (as text_vectorization pads) or anywhere (token ids from elsewhere)."""
    seq = {**recurrent, "return_sequences": True} if "units" in recurrent else recurrent
    layers = [{"type": "embedding", "input_dim": 20, "output_dim": 6, "mask_zero": True}, seq,
              {"type": "lstm", "units": 3} if _sequences(seq) else {"type": "dense", "units": 2},
              {"type": "dense", "units": 2, "activation": "softmax"}]
    x = (_padded_ids if padding == "after" else _ids_masked_anywhere)(np.random.default_rng(4), 12, 7, 20)
    _compare(_model(layers, (7,)), x)
    sequences = [layers[0], seq, {"type": "flatten"}]       # every step's output, masked ones too
    _compare(_model(sequences, (7,)), x)
    flat = [layers[0], {**seq, "return_sequences": False} if "units" in seq else recurrent, layers[-1]]
    _compare(_model(flat, (7,)), x)


def _sequences(spec):
    return spec.get("return_sequences") or spec.get("layer", {}).get("return_sequences")


def test_masking_and_masked_average_pooling_export():
    x = np.random.default_rng(5).normal(size=(6, 5, 3)).astype(np.float32)
    x[:, 3:] = 0
    x[0] = 0
    layers = [{"type": "masking"}, {"type": "dense", "units": 4, "activation": "relu"},
              {"type": "global_average_pooling1d"}, {"type": "dense", "units": 1}]
    _compare(_model(layers, (5, 3)), x)


def test_masking_before_recurrent_layers_with_masked_steps_anywhere():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(8, 6, 3)).astype(np.float32)
    x[rng.random((8, 6)) < 0.4] = 0
    x[0] = 0
    layers = [{"type": "masking"}, {"type": "gru", "units": 4, "return_sequences": True},
              {"type": "lstm", "units": 3, "go_backwards": True}, {"type": "dense", "units": 2}]
    _compare(_model(layers, (6, 3)), x)


def test_preprocessing_is_folded_in_front():
    from dltrain.data.dataset import Pipeline
    from dltrain.registry import build

    rng = np.random.default_rng(6)
    x = rng.normal(5, 3, size=(40, 4)).astype(np.float32)
    pipeline = Pipeline([build("preprocessing", s) for s in (
        {"type": "clip", "min": -1}, {"type": "log", "offset": 2.0}, {"type": "rescale", "scale": 2.0, "offset": 1},
        "standardize", "min_max")])
    pipeline.fit(x)
    _compare(_model([{"type": "dense", "units": 3}], (4,)), x, pipeline)


def test_a_layer_that_cannot_be_exported_is_named(tmp_path, cli, monkeypatch):
    from dltrain import api
    from dltrain.export import onnx_layers

    config = CONFIGS / "digits_mlp.yaml"
    api.fit(str(config), overrides=["training.epochs=1"], run_dir=tmp_path / "run")
    monkeypatch.delitem(onnx_layers.CONVERTERS, "flatten")
    result = cli("export", tmp_path / "run", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2
    assert "flatten_1" in result.output and "flatten" in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_the_encoder_writes_what_onnx_reads_back():
    """The hand-written protobuf against the onnx package's parser: names, shapes, attributes."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = _model([{"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}], (5, 5, 1))
    from dltrain.export import onnx_model

    data, _ = onnx_model.model_bytes(model, metadata=lambda *_: {"class_names": '["a"]'})
    parsed = onnx.load_from_string(data)
    conv = next(n for n in parsed.graph.node if n.op_type == "Conv")
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attributes["strides"] == [2, 2] and attributes["pads"] == [1, 1, 1, 1]
    kernel = numpy_helper.to_array(next(t for t in parsed.graph.initializer if t.name == conv.input[1]))
    np.testing.assert_array_equal(kernel, model.nodes[0].layer.params["kernel"].transpose(3, 2, 0, 1))
    dims = parsed.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 5, 5, 1]
    assert {p.key: p.value for p in parsed.metadata_props} == {"class_names": '["a"]'}


def test_the_graph_as_written_is_exported_whatever_the_passes_rewrote():
    layers = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
              {"type": "max_pooling2d", "pool_size": 2}, {"type": "conv2d", "filters": 3, "kernel_size": 2},
              {"type": "activation", "activation": "relu"}, {"type": "max_pooling2d", "pool_size": 2},
              {"type": "flatten"}, {"type": "dense", "units": 2}]
    model = _model(layers, (11, 11, 2))
    assert model.rewrites                      # pool before relu, pooling blocks, relu absorbed
    _compare(model, np.random.default_rng(7).normal(size=(4, 11, 11, 2)).astype(np.float32))
