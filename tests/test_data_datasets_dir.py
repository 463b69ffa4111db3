"""Where a dataset's files are found: DLTRAIN_DATA_DIR relative to the current directory, and a
run that remembers where its data came from (evaluate without the variable does not download)."""
import os
import shutil
from pathlib import Path

import pytest
import yaml

from dltrain import api
from dltrain.data import datasets, download

SMALL = Path(__file__).parent / "data" / "mnist_small"


@pytest.fixture
def small_mnist(monkeypatch, tmp_path):
    """The small MNIST copies in tests/data, pinned as if they were the real files; no network."""
    folder = tmp_path / "data" / "mnist"
    shutil.copytree(SMALL, folder)
    info = datasets.DATASETS["mnist"]
    for file in os.listdir(folder):
        monkeypatch.setitem(info.content_sha256, file, download.digest(folder / file))
    monkeypatch.setattr(download, "fetch", lambda url, *a, **k: pytest.fail(f"tried to download {url}"))
    return folder


def mnist_config(folder):
    config = {"name": "m", "data": {"train": {"type": "dataset", "name": "mnist", "split": "train"},
                                    "test": {"type": "dataset", "name": "mnist", "split": "test"},
                                    "preprocessing": [{"type": "rescale", "scale": 0.00392}]},
              "model": {"input_shape": [28, 28, 1], "layers": ["flatten", {"type": "dense", "units": 10,
                                                                         "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], "training": {"epochs": 1}}
    (folder / "configs").mkdir()
    path = folder / "configs" / "m.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_relative_data_dir_is_taken_from_the_current_directory(small_mnist, tmp_path, monkeypatch, cli):
    # old main: joined to the config's folder (configs/data/mnist), then a download attempt
    config = mnist_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLTRAIN_DATA_DIR", "data/mnist")
    assert cli("check", config).exit_code == 0
    result = cli("fit", config, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert download.cache_dir() == tmp_path / "data" / "mnist"


def test_a_run_remembers_where_its_data_came_from(small_mnist, tmp_path, monkeypatch):
    config = mnist_config(tmp_path)
    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(small_mnist))
    trained = api.fit(config, run_dir=tmp_path / "run")
    monkeypatch.setenv("DLTRAIN_DATA_DIR", str(tmp_path / "empty"))      # as if never set
    scores = api.evaluate(tmp_path / "run")                  # old main: a download attempt
    assert scores["accuracy"] == pytest.approx(trained.test["accuracy"])
