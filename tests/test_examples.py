"""Every config in configs/ is an end-to-end test: it trains one epoch, and evaluate and predict
run on the result. A config whose data is not on this machine is skipped, saying which file.

Configs that name a built-in dataset (`{type: dataset, name: mnist}`, as a user writes them) read
it through DLTRAIN_DATA_DIR pointed at the shared folder of the four original MNIST .gz files,
verified by hash; downloading is switched off, so nothing here reaches the internet. (The fast
variants on a 600-image slice are in test_images.py.)"""
import json

import pytest
import yaml

from conftest import CONFIGS, SHARED_DATA, skip_without_data

#: configs whose one epoch takes long on 2 cores (full MNIST and the like): run with -m slow
#: (measured on a loaded 2-core machine: mnist_convnet 1 epoch ~300 s, mnist_separable ~33 s)
SLOW = {"mnist_convnet.yaml", "mnist_separable.yaml", "mnist_cnn.yaml", "mnist_mlp.yaml",
        "mnist_lstm.yaml", "mnist_resnet.yaml"}


def _configs():
    params = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        marks = [pytest.mark.slow] if path.name in SLOW else []
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


def _datasets(config_path):
    """(name, split) of each built-in dataset the config's data sources name."""
    data = yaml.safe_load(config_path.read_text()).get("data") or {}
    return [(spec["name"], spec.get("split", "train")) for spec in data.values()
            if isinstance(spec, dict) and spec.get("type") == "dataset" and "name" in spec]


def _prediction_input(config_path):
    """A file to predict on: the test source's file, else the training one (a label column is
    dropped by predict); for a built-in dataset, the local copy of its images file."""
    from dltrain.data import datasets

    data = yaml.safe_load(config_path.read_text()).get("data") or {}
    for split in ("test", "train"):
        spec = data.get(split)
        if isinstance(spec, dict) and isinstance(spec.get("path"), str):
            return (config_path.parent / spec["path"]).resolve()
        if isinstance(spec, dict) and spec.get("type") == "dataset" and datasets.info(spec["name"]).downloaded:
            return datasets.local(spec["name"], spec.get("split", "train"))[0]
    return None


def _use_local_datasets(config_path, monkeypatch):
    """Point DLTRAIN_DATA_DIR at the shared MNIST copies and forbid downloads; skip when a
    dataset the config names is not there (verified)."""
    from dltrain.data import datasets, download

    wanted = [(n, s) for n, s in _datasets(config_path) if datasets.info(n).downloaded]
    if not wanted:
        return
    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(SHARED_DATA / "mnist"))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(download, "fetch", no_download)
    missing = [f"{n} ({s})" for n, s in wanted if datasets.local(n, s) is None]
    if missing:
        pytest.skip(f"{config_path.name}: datasets not in {SHARED_DATA / 'mnist'}: {', '.join(missing)}")


@pytest.mark.parametrize("config", _configs())
def test_config_trains_evaluates_and_predicts(config, cli, tmp_path, monkeypatch):
    skip_without_data(config)
    _use_local_datasets(config, monkeypatch)
    run = tmp_path / "run"
    result = cli("fit", config, "--set", "training.epochs=1", "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    for name in ("config.yaml", "run.json", "metrics.csv", "metrics.jsonl", "checkpoints/last.npz"):
        assert (run / name).is_file(), name
    assert json.loads((run / "run.json").read_text())["status"] == "completed"

    result = cli("evaluate", run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert "loss" in scores and all(isinstance(v, float) for v in scores.values())

    source = _prediction_input(config)
    if source is None:
        pytest.skip(f"{config.name}: its training source has no single file to predict on")
    output = tmp_path / "predictions.csv"
    result = cli("predict", run, source, "--output", output)
    assert result.exit_code == 0, result.output
    lines = output.read_text().splitlines()
    assert len(lines) > 1 and lines[0].startswith("file,row")


def test_mnist_configs_name_the_dataset_and_read_it_from_the_data_dir(monkeypatch):
    """As a user writes them: `name: mnist`, no path; DLTRAIN_DATA_DIR at a folder of the four
    original .gz files serves them without a download (fast: loads the test split only)."""
    from dltrain.data import datasets

    for name in ("mnist_convnet.yaml", "mnist_separable.yaml"):
        assert set(_datasets(CONFIGS / name)) == {("mnist", "train"), ("mnist", "test")}, name
    _use_local_datasets(CONFIGS / "mnist_convnet.yaml", monkeypatch)
    x, y = datasets.Dataset("mnist", "test").load(".")
    assert x.shape == (10000, 28, 28, 1) and x.dtype.name == "uint8" and y.shape == (10000,)
    assert [int((y == c).sum()) for c in (0, 9)] == [980, 1009]


def test_every_bundled_config_holds_out_a_test_split():
    for path in ("digits_mlp.yaml", "iris_mlp.yaml", "breast_cancer_logreg.yaml",
                 "diabetes_regression.yaml"):
        config = yaml.safe_load((CONFIGS / path).read_text())
        assert config["data"].get("test"), f"{path} has no test split: `evaluate RUN` would need --data"
