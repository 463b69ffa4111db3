"""Small configs and comparisons shared by the resume, callback, fault and plot tests."""
import csv
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "datasets" / "digits.npz"


def digits_config(folder, epochs=4, optimizer=None, callbacks=(), layers=None, training=None, name="tiny"):
    """A fast digits config (dropout included, so a random stream matters); returns its path."""
    config = {
        "name": name, "seed": 3,
        "data": {"train": {"type": "npz", "path": str(DIGITS), "x": "x", "y": "y"},
                 "validation": {"split": 0.2, "stratify": True},
                 "preprocessing": [{"type": "rescale", "scale": 0.0625}]},
        "model": {"input_shape": [8, 8], "layers": layers or [
            "flatten", {"type": "dense", "units": 24, "activation": "relu"},
            {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10, "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": optimizer or {"type": "adam", "learning_rate": {
            "type": "exponential_decay", "initial_learning_rate": 0.01, "decay_steps": 20, "decay_rate": 0.8}},
        "metrics": ["accuracy"],
        "training": {"epochs": epochs, "batch_size": 64, **(training or {})},
        "callbacks": list(callbacks),
    }
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def metrics_rows(run):
    """metrics.csv as a list of dicts, without the wall-clock column."""
    with open(Path(run) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def state(run, name="last.npz"):
    """{key: array} of a checkpoint's model and optimizer sections."""
    with np.load(Path(run) / "checkpoints" / name, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith(("model/", "optimizer/"))}


def same_state(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
