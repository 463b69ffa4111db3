"""Same config and seed twice: identical metrics (but wall-clock seconds) and identical checkpoint
arrays. And the promise of the README: digits_mlp trains in under 60 s to >= 0.95 val accuracy."""
import csv
import sys
import time

import numpy as np

from conftest import CONFIGS, run_dltrain
from dltrain import api


def _metrics(run):
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.pop("seconds")
    return rows


def _arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files if key != "meta"}


def test_same_config_and_seed_give_identical_metrics_and_checkpoints(tmp_path):
    overrides = ["training.epochs=4"]
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        api.fit(CONFIGS / "digits_mlp.yaml", overrides, run_dir=run)
    first, second = (_metrics(run) for run in runs)
    assert len(first) == 4 and first == second
    for name in ("last.npz", "best.npz"):
        a, b = (_arrays(run / "checkpoints" / name) for run in runs)
        assert a.keys() == b.keys() and len(a) > 4
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")


def test_another_seed_gives_other_weights(tmp_path):
    api.fit(CONFIGS / "digits_mlp.yaml", ["training.epochs=1"], run_dir=tmp_path / "a")
    api.fit(CONFIGS / "digits_mlp.yaml", ["training.epochs=1", "seed=8"], run_dir=tmp_path / "b")
    a, b = (_arrays(tmp_path / run / "checkpoints" / "last.npz") for run in ("a", "b"))
    assert not np.array_equal(a["model/dense_1/kernel"], b["model/dense_1/kernel"])


def test_digits_mlp_fits_in_under_a_minute_to_95_percent_validation_accuracy(tmp_path):
    started = time.perf_counter()
    done = run_dltrain("fit", CONFIGS / "digits_mlp.yaml", "--run-dir", tmp_path / "run", "--quiet",
                       timeout=120)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    history = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv", newline="")))
    best = max(float(row["val_accuracy"]) for row in history)
    print(f"digits_mlp: {seconds:.1f} s, {len(history)} epochs, best val_accuracy {best:.4f}",
          file=sys.stderr)
    assert seconds < 60
    assert best >= 0.95
