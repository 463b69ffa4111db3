"""Every config in configs/ is an end-to-end test: it trains one epoch, and evaluate and predict
run on the result. A config whose data is not on this machine is skipped, saying which file."""
import json
from pathlib import Path

import pytest
import yaml

from conftest import CONFIGS

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


def _data_files(config_path):
    """The files the config's data sources name (path-like arguments), resolved."""
    config = yaml.safe_load(config_path.read_text())
    files = []
    for split, spec in ((config.get("data") or {}).items()):
        if not isinstance(spec, dict) or "type" not in spec:
            continue
        for key, value in spec.items():
            if key in ("path", "labels", "images", "folder", "directory") and isinstance(value, str):
                files.append(config_path.parent / value)
    return files


def _prediction_input(config_path):
    """A file to predict on: the test source's file, else the training one (a label column is
    dropped by predict)."""
    data = yaml.safe_load(config_path.read_text()).get("data") or {}
    for split in ("test", "train"):
        spec = data.get(split)
        if isinstance(spec, dict) and isinstance(spec.get("path"), str):
            return (config_path.parent / spec["path"]).resolve()
    return None


@pytest.mark.parametrize("config", _configs())
def test_config_trains_evaluates_and_predicts(config, cli, tmp_path):
    missing = [f for f in _data_files(config) if not f.exists()]
    if missing:
        pytest.skip(f"{config.name}: data not on this machine: {', '.join(map(str, missing))}")
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


def test_every_bundled_config_holds_out_a_test_split():
    for path in ("digits_mlp.yaml", "iris_mlp.yaml", "breast_cancer_logreg.yaml",
                 "diabetes_regression.yaml"):
        config = yaml.safe_load((CONFIGS / path).read_text())
        assert config["data"].get("test"), f"{path} has no test split: `evaluate RUN` would need --data"
