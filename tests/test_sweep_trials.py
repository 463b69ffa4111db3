"""Sweeps that really train (digits_mlp, a few epochs, processes at one BLAS thread): a promoted
trial equals a from-scratch run, an interrupted sweep continues to the same table, failing and
diverging trials are recorded and the sweep goes on."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import CONFIGS, ROOT

from dltrain.errors import ConfigError
from dltrain.sweep import journal, report, runner, spec, trial
from dltrain.training import checkpoint

BASE = CONFIGS / "digits_mlp.yaml"
SWEEP = f"""base: {BASE}
sweep:
  method: asha
  metric: val_accuracy
  trials: 4
  parallel: 2
  max_epochs: 8
  min_epochs: 2
  eta: 2
  seed: 3
  parameters:
    optimizer.learning_rate: {{log_uniform: [1.0e-3, 3.0e-2]}}
    model.layers[1].units: {{choice: [32, 64]}}
    model.layers[2].rate: {{uniform: [0.0, 0.3]}}
"""


def write_sweep(tmp_path, text=SWEEP, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(folder):
    """The ranked table without wall-clock seconds and paths."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "run")} for row in report.load(folder).rows]


def metrics_without_seconds(run):
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "seconds"]
    return [[line.split(",")[i] for i in keep] for line in lines]


def arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if data[k].dtype != object and not k.startswith("meta")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(sweep file, folder, records) of the small ASHA sweep run once, uninterrupted."""
    tmp_path = tmp_path_factory.mktemp("reference")
    path = write_sweep(tmp_path)
    records = runner.Runner(spec.load(path), tmp_path / "sweep").run()
    return path, tmp_path / "sweep", records


def test_a_promoted_trial_equals_a_run_trained_that_long_from_scratch(tmp_path, reference):
    _, folder, records = reference
    promoted = [r for r in records if r["epochs"] == 8 and r["status"] == "completed"]
    assert promoted, "no trial reached the last rung"
    best = promoted[0]
    assert [r["epochs"] for r in records if r["trial"] == best["trial"]] == [2, 4, 8]   # continued twice
    scratch = tmp_path / "scratch"
    from dltrain.sweep.methods import Job

    args = trial.command(BASE, Job(best["trial"], best["params"], 8), scratch)
    env = dict(os.environ, **trial.ONE_THREAD)
    subprocess.run(args, check=True, env=env, capture_output=True)
    run = folder / "trials" / best["trial"]
    assert metrics_without_seconds(run) == metrics_without_seconds(scratch)
    for name in ("last.npz", "best.npz"):
        a, b = arrays(run / "checkpoints" / name), arrays(scratch / "checkpoints" / name)
        assert sorted(a) == sorted(b) and len(a) > 4
        assert any(k.startswith("model/") for k in a) and any(k.startswith("optimizer/") for k in a)
        for key in a:
            assert np.array_equal(a[key], b[key]), (name, key)
        meta_a, meta_b = (checkpoint.load(run_dir / "checkpoints" / name)[1] for run_dir in (run, scratch))
        for key in ("epoch", "step", "random", "callbacks", "first_loss"):
            assert meta_a[key] == meta_b[key], (name, key)
    assert (run / "config.yaml").read_text().count("epochs: 8") == 1


def sweep_process(path, folder):
    return subprocess.Popen([sys.executable, "-m", "dltrain", "sweep", str(path), "--sweep-dir", str(folder),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))


def wait_for_results(folder, count, process, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if len(journal.results(journal.read(folder))) >= count and any((folder / "trials").glob("*/metrics.csv")):
            return
        time.sleep(0.05)
    raise AssertionError(f"the sweep did not reach {count} results: {process.poll()}")


@pytest.mark.parametrize("how", ["sigkill", pytest.param("sigint", marks=pytest.mark.slow)])
def test_an_interrupted_sweep_continues_to_the_same_table(tmp_path, reference, how):
    path, reference, _ = reference
    folder = tmp_path / "interrupted"
    process = sweep_process(path, folder)
    wait_for_results(folder, 3, process)
    process.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    if how == "sigint":
        assert process.returncode == 130, err
        assert "continue it with: dltrain sweep" in err and str(path) in err
    else:
        assert process.returncode == -signal.SIGKILL
    done = len(journal.results(journal.read(folder)))
    assert done < len(journal.results(journal.read(reference))), "the sweep finished before it was stopped"
    deadline = time.time() + 30
    while True:      # the trials, told by the kernel that the sweep died, checkpoint and exit
        try:
            runner.Runner(spec.load(path), folder).run()
            break
        except ConfigError as error:
            assert "is running in" in error.message and time.time() < deadline
            time.sleep(0.1)
    assert rows(folder) == rows(reference)


def test_failing_and_diverging_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    text = SWEEP.replace("{log_uniform: [1.0e-3, 3.0e-2]}", "{choice: [0.003, 1000.0]}").replace(
        "method: asha", "method: grid").replace("model.layers[2].rate: {uniform: [0.0, 0.3]}",
                                                 "training.batch_size: {grid: [32]}")
    folder = tmp_path / "sweep"
    records = runner.Runner(spec.load(write_sweep(tmp_path, text)), folder).run()
    statuses = {(r["params"]["optimizer.learning_rate"], r["params"]["model.layers[1].units"]): r["status"]
                for r in records}
    assert statuses == {(0.003, 32): "completed", (0.003, 64): "completed",
                        (1000.0, 32): "diverged", (1000.0, 64): "diverged"}
    table = report.load(folder)
    assert [r["status"] for r in table.rows[-2:]] == ["pruned", "pruned"]
    assert all(r["note"].startswith("diverged: DivergedError") for r in table.rows[-2:])
    # a trial that errors (its data is gone) is recorded with its message
    data = tmp_path / "data"
    data.mkdir()
    (data / "digits.npz").write_bytes((ROOT / "datasets" / "digits.npz").read_bytes())
    config = tmp_path / "config.yaml"
    config.write_text(BASE.read_text().replace("../datasets/digits.npz", "data/digits.npz"))
    text = SWEEP.replace(str(BASE), str(config)).replace("trials: 4", "trials: 2")
    loaded = spec.load(write_sweep(tmp_path, text, "broken.yaml"))
    (data / "digits.npz").unlink()
    records = runner.Runner(loaded, tmp_path / "broken").run()
    assert len(records) == 2 and all(r["status"] == "failed" for r in records)
    assert all("does not exist" in r["message"] or "DataError" in r["message"] for r in records)
    assert [r["status"] for r in report.load(tmp_path / "broken").rows] == ["failed", "failed"]


@pytest.mark.slow
def test_the_example_sweep_is_quick_and_beats_the_example_config(tmp_path):
    """The must-hold: 24 ASHA trials, parallel 2, under 2 minutes on 2 cores, at least as good as
    the example config's own values (its best val_accuracy in 30 epochs)."""
    from dltrain.runs import load as load_run

    example = CONFIGS / "sweeps" / "digits_lr.yaml"
    started = time.perf_counter()
    runner.Runner(spec.load(example), tmp_path / "sweep").run()
    seconds = time.perf_counter() - started
    best = report.load(tmp_path / "sweep").best
    subprocess.run([sys.executable, "-m", "dltrain", "fit", str(BASE), "--run-dir", str(tmp_path / "default"),
                    "--quiet"], check=True, capture_output=True, env=dict(os.environ, **trial.ONE_THREAD))
    default = load_run(tmp_path / "default")
    assert default.monitor == "val_accuracy"
    assert seconds < 120, f"{seconds:.1f} s (load average {os.getloadavg()[0]:.1f})"
    assert best["score"] >= default.best, (best["score"], default.best)


def test_a_trial_early_stopping_at_a_rung_is_never_continued(tmp_path):
    """Early stopping that ends a trial exactly at its rung's budget (val_loss must improve by
    100 to count, so epoch 2 stops it): promoting it trains nothing, as a longer from-scratch run
    would also have stopped at epoch 2."""
    config = tmp_path / "config.yaml"
    config.write_text(f"base: [{BASE}]\ncallbacks:\n  - {{type: early_stopping, monitor: val_loss, "
                      "patience: 0, min_delta: 100}\n")
    text = SWEEP.replace(str(BASE), str(config)).replace("trials: 4", "trials: 2").replace(
        "max_epochs: 8", "max_epochs: 4")
    folder = tmp_path / "sweep"
    records = runner.Runner(spec.load(write_sweep(tmp_path, text)), folder).run()
    assert [r["epochs"] for r in records] == [2, 2, 4]
    assert all(r["status"] == "stopped" and r["epochs_run"] == 2 for r in records)
    promoted = records[-1]
    assert trial.stopped_by_callback(folder / "trials" / promoted["trial"])
    assert len((folder / "trials" / promoted["trial"] / "metrics.csv").read_text().splitlines()) == 3
    assert (folder / "logs" / f"{promoted['trial']}.log").read_text().count("$ ") == 1     # one process
    assert report.load(folder).rows[0]["status"] == "completed"
