"""`check` catches what it can know without data (issue 14, deliverable 7): sizes this machine
cannot allocate (old main: `ok`, then fit died in a MemoryError traceback) and a last layer
narrower than the classes a source's metadata declares; fit refuses the same before allocating."""
import numpy as np
import pytest
import yaml

from dltrain import api, feasibility
from dltrain.errors import ConfigError


def config(folder, units=16, last=3, source=None, loss="sparse_categorical_crossentropy"):
    data = {"name": "f", "data": {"train": source or {"type": "dataset", "name": "iris"}},
            "model": {"input_shape": [4], "layers": [{"type": "dense", "units": units, "activation": "relu"},
                                                     {"type": "dense", "units": last, "activation": "softmax"}]},
            "loss": loss, "optimizer": "adam", "training": {"epochs": 1}}
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def said(result):
    return " ".join(result.output.split())


def test_check_refuses_a_model_this_machine_cannot_hold(tmp_path, cli):
    result = cli("check", config(tmp_path, units=10**12))
    assert result.exit_code == 2, result.output
    assert "training this model needs about" in said(result) and "model.layers[0]" in said(result)
    assert "make layer 'dense_1' smaller" in said(result)


def test_fit_refuses_it_before_allocating(tmp_path, cli):
    result = cli("fit", config(tmp_path, units=10**12), "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_bound_is_this_machines_memory(tmp_path, monkeypatch, cli):
    assert cli("check", config(tmp_path, units=4096)).exit_code == 0
    monkeypatch.setattr(feasibility, "physical_memory", lambda: 100_000)
    result = cli("check", config(tmp_path, units=4096))
    assert result.exit_code == 2 and "this machine has 97.7 KiB" in said(result)


def test_a_last_layer_narrower_than_the_datasets_classes(tmp_path, cli):
    result = cli("check", config(tmp_path, last=2))
    assert result.exit_code == 2
    assert "the last layer has 2 units, and dataset 'iris' has 3 classes" in said(result)
    assert "give the last layer 3 units" in said(result) and "model.layers[1]" in said(result)
    assert cli("check", config(tmp_path, last=3)).exit_code == 0


def test_binary_crossentropy_on_a_three_class_dataset(tmp_path, cli):
    path = config(tmp_path, last=1, loss="binary_crossentropy")
    text = path.read_text().replace("activation: softmax", "activation: sigmoid")
    path.write_text(text)
    result = cli("check", path)
    assert result.exit_code == 2 and "binary cross-entropy" in said(result)


def test_an_image_folder_declares_its_classes_by_its_folders(tmp_path, cli):
    from PIL import Image

    for name in ("a", "b", "c", "d"):
        (tmp_path / "img" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "img" / name / "0.png")
    path = config(tmp_path, last=3, source={"type": "image_folder", "path": "img"})
    data = yaml.safe_load(path.read_text())
    data["model"]["input_shape"] = [4, 4, 3]
    data["model"]["layers"].insert(0, "flatten")
    path.write_text(yaml.safe_dump(data))
    result = cli("check", path)
    assert result.exit_code == 2 and "(4 class folders) has 4 classes" in said(result)
