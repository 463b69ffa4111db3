"""Data parallelism with real ranks: `dltrain fit --workers N` through the MPICH wheel's mpiexec.

N ranks, each with its share of every global batch, must train what one process trains on the
same global batch: parameters after several epochs within 1e-5 (float32; the sums are taken in
another order) for a dense net with dropout, a convnet with batch normalization and dropout, and
an LSTM. Resumes continue from the same global sample on any number of ranks; a failing rank
ends the job with its exit code, quickly, and leaves no process behind.
"""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CONFIGS, DATASETS

pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install 'dltrain[mpi]'")
if not (Path(sys.executable).parent / "mpiexec").exists():
    pytest.skip("no mpiexec beside this Python (the mpich wheel of dltrain[mpi])", allow_module_level=True)

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

CONVNET = {
    "name": "digits-bn-dropout", "seed": 3,
    "data": {"train": {"type": "npz", "path": str(DATASETS / "digits.npz"), "x": "x", "y": "y"},
             "validation": {"split": 0.2}, "preprocessing": [{"type": "rescale", "scale": 0.0625}]},
    "model": {"input_shape": [8, 8], "layers": [
        {"type": "reshape", "target_shape": [8, 8, 1]},
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "use_bias": False},
        {"type": "batch_normalization"}, {"type": "activation", "activation": "relu"},
        {"type": "max_pooling2d", "pool_size": 2}, {"type": "dropout", "rate": 0.25},
        "flatten", {"type": "dense", "units": 10, "activation": "softmax"}]},
    # RMSprop: with Adam the float32 difference is 2e-5 (beta's gradient, a sum with cancellation,
    # has its rounding error normalized to a full step), 1.2e-6 with RMSprop, 5e-6 with SGD
    "loss": "sparse_categorical_crossentropy", "optimizer": {"type": "rmsprop", "learning_rate": 0.001},
    "metrics": ["accuracy"], "training": {"epochs": 3, "batch_size": 50},
}


def fit(config, run_dir, *extra, workers=1, timeout=240, check=True):
    args = [sys.executable, "-m", "dltrain", "fit", str(config), "--run-dir", str(run_dir), "--quiet", *extra]
    if workers > 1:
        args += ["--workers", str(workers)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def parameters(run_dir):
    with np.load(Path(run_dir) / "checkpoints" / "last.npz") as saved:
        return {k: saved[k] for k in saved.files if k.startswith("model/")}


def assert_same_parameters(a, b, rtol=1e-5):
    """Each parameter array within ``rtol`` of the other: ||a - b|| <= rtol ||a|| (0: the same bits)."""
    a, b = parameters(a), parameters(b)
    assert a.keys() == b.keys()
    for key in a:
        if rtol == 0:
            assert np.array_equal(a[key], b[key]), key
            continue
        difference = float(np.linalg.norm((a[key] - b[key]).astype(np.float64)))
        assert difference <= rtol * max(float(np.linalg.norm(a[key].astype(np.float64))), 1e-6), \
            (key, difference)


def run_script(tmp_path, text, ranks=2):
    """``text`` saved as a script and run as an MPI job of ``ranks`` through the wheel's mpiexec."""
    script = tmp_path / "job.py"
    script.write_text(text)
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(script)],
                          capture_output=True, text=True, timeout=60, env=ENV)


def write_config(tmp_path, config, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("config, overrides", [
    (CONFIGS / "digits_mlp.yaml", ["--set", "training.epochs=4"]),              # dense + dropout
    (None, []),                                                                 # conv + BN + dropout
    (CONFIGS / "seasonal_forecast.yaml", ["--set", "training.epochs=3"]),       # LSTM
], ids=["dense", "convnet_bn_dropout", "lstm"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_two_ranks_with_half_batches_train_what_one_process_trains(tmp_path, config, overrides, precision):
    config = config or write_config(tmp_path, CONVNET)
    overrides = [*overrides, "--set", f"precision={precision}"]
    fit(config, tmp_path / "one", *overrides)
    fit(config, tmp_path / "two", *overrides, workers=2)
    # float32: 1e-5 (the same sums in another order); float64: the same up to summation order
    assert_same_parameters(tmp_path / "one", tmp_path / "two", 1e-5 if precision == "float32" else 1e-11)
    one = (tmp_path / "one" / "metrics.csv").read_text().splitlines()
    two = (tmp_path / "two" / "metrics.csv").read_text().splitlines()
    assert len(one) == len(two) and one[0] == two[0]
    # (batch normalization's moving statistics are model/ arrays, compared above); the same keys
    with np.load(tmp_path / "one" / "checkpoints" / "last.npz") as a, \
            np.load(tmp_path / "two" / "checkpoints" / "last.npz") as b:
        assert set(a.files) == set(b.files)


SPREAD_TAKES = '''
import numpy as np
from dltrain.data.dataset import Split
from dltrain.parallel import mpi, shards

comm = mpi.world()
rng = np.random.default_rng(0)
n = 1003
whole = Split(rng.random((n, 7), dtype=np.float32), rng.integers(0, 5, n), np.arange(n))
spread = shards.spread(whole, comm)
order = rng.permutation(n)
batches = [order[s:s + 64] for s in range(0, n, 64)] + [order[:1]]
same = True
for batch in batches:
    a, b = whole.take_share(batch, comm), spread.take_share(batch, comm)
    same &= np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[0].dtype == b[0].dtype
print(f"rank {comm.rank}: {'same' if same else 'DIFFERENT'} rows", flush=True)
'''


@pytest.mark.parametrize("ranks", [2, 3])
def test_spread_data_gives_every_rank_its_share_through_real_all_to_alls(tmp_path, ranks):
    """parallel/shards.py over real MPI (Alltoallv): every rank's share, for a short last batch too."""
    done = run_script(tmp_path, SPREAD_TAKES, ranks)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.findall(r"rank (\d+): (same|DIFFERENT) rows", done.stdout)    # ranks' lines may interleave
    assert sorted(found) == [(str(r), "same") for r in range(ranks)], done.stdout


def test_a_small_last_batch_with_an_empty_share_on_one_rank(tmp_path):
    """1437 training rows in batches of 718: the last global batch has 1 row, rank 1 gets none.
    float64: batch normalization of a 1-row batch amplifies float32 rounding (7e-4 on beta)."""
    config = write_config(tmp_path, {**CONVNET, "precision": "float64",
                                     "training": {"epochs": 2, "batch_size": 718}})
    fit(config, tmp_path / "one")
    fit(config, tmp_path / "two", workers=2)
    assert_same_parameters(tmp_path / "one", tmp_path / "two", 1e-11)


def interrupted_run(tmp_path, config, run_dir, workers, delay=0.0):
    """Start a run, SIGTERM it ``delay`` s after its first epoch is written; (exit code, run.json)."""
    args = [sys.executable, "-m", "dltrain", "fit", str(config), "--run-dir", str(run_dir), "--quiet",
            "--workers", str(workers)]
    job = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        metrics = run_dir / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    time.sleep(delay)
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=60)
    return job.returncode, json.loads((run_dir / "run.json").read_text()), err


def metric_rows(run_dir):
    """metrics.csv as {column: [floats by epoch]}, without the seconds."""
    lines = (Path(run_dir) / "metrics.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    return {name: [float(row[i]) for row in rows] for i, name in enumerate(header) if name != "seconds"}


def assert_same_metrics(a, b, rtol):
    """Every epoch's metrics (the interrupted epoch's too: its metric states were merged over
    the ranks when the checkpoint was written inside it)."""
    a, b = metric_rows(a), metric_rows(b)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=0, err_msg=name)


def test_resume_on_two_ranks_equals_the_uninterrupted_run_and_continues_on_one_or_three(tmp_path):
    config = write_config(tmp_path, {**CONVNET, "training": {"epochs": 6, "batch_size": 32}})
    fit(config, tmp_path / "whole", workers=2)
    code, manifest, err = interrupted_run(tmp_path, config, tmp_path / "cut", 2)
    assert code == 130 and manifest["status"] == "interrupted", err[-2000:]
    with np.load(tmp_path / "cut" / "checkpoints" / "last.npz") as saved:
        stopped = json.loads(saved["meta"].tobytes())
    assert 0 < stopped["step"] < 6 * 45                  # stopped inside the run (45 steps an epoch)
    for workers in (1, 3):                        # the same checkpoint, another world size
        copy = tmp_path / f"cut{workers}"
        subprocess.run(["cp", "-r", str(tmp_path / "cut"), str(copy)], check=True)
        fit(config, copy, "--resume", "auto", workers=workers)
        resumed = json.loads((copy / "run.json").read_text())["resumed_from"]
        assert (resumed["epoch"], resumed["step"]) == (stopped["epoch"], stopped["step"])
        # the same global batches from there on; only the summation order differs
        assert_same_parameters(tmp_path / "whole", copy, rtol=1e-4)
        assert_same_metrics(tmp_path / "whole", copy, rtol=1e-4)
    fit(config, tmp_path / "cut", "--resume", "auto", workers=2)
    assert_same_parameters(tmp_path / "whole", tmp_path / "cut", rtol=0)    # same world: bit for bit
    assert_same_metrics(tmp_path / "whole", tmp_path / "cut", rtol=0)


def test_a_checkpoint_inside_an_epoch_keeps_every_ranks_metrics(tmp_path):
    """SIGTERM inside epoch 2 (batches of 8: 144 steps an epoch): the checkpoint holds the
    running metric states of both ranks merged, so the resumed epoch's training metrics equal
    the uninterrupted run's, on 2 ranks bit for bit and on 1 up to summation order."""
    config = write_config(tmp_path, {**CONVNET, "training": {"epochs": 3, "batch_size": 8}})
    fit(config, tmp_path / "whole", workers=2)
    # a stop inside epoch 2, not at its end: the delays are fractions of an epoch as this machine
    # runs it (a fixed 0.3 s outlasted the whole run on a quiet machine: epochs take 0.1 s)
    with open(tmp_path / "whole" / "metrics.csv", newline="") as rows:
        epoch = float(list(csv.DictReader(rows))[1]["seconds"])
    stopped = {"position": None}
    for attempt, fraction in enumerate((0.4, 0.2, 0.6, 0.05)):
        cut = tmp_path / f"cut{attempt}"
        code, manifest, err = interrupted_run(tmp_path, config, cut, 2, delay=fraction * epoch)
        if manifest["status"] == "completed":        # the signal came after the last epoch
            continue
        assert code == 130, err[-2000:]
        with np.load(cut / "checkpoints" / "last.npz") as saved:
            stopped = json.loads(saved["meta"].tobytes())
        if stopped["position"] is not None:
            break
    assert stopped["position"] is not None, "no SIGTERM landed inside an epoch"
    one = tmp_path / "one"
    subprocess.run(["cp", "-r", str(cut), str(one)], check=True)
    fit(config, cut, "--resume", "auto", workers=2)
    assert_same_metrics(tmp_path / "whole", cut, rtol=0)
    fit(config, one, "--resume", "auto")
    assert_same_metrics(tmp_path / "whole", one, rtol=1e-5)


RAISE_ON_RANK_1 = '''
import sys, time
import numpy as np
from mpi4py import MPI
import click
from dltrain.cli.app import handle_errors
from dltrain.errors import DataError

@click.command()
@handle_errors
def job():
    comm = MPI.COMM_WORLD
    if comm.rank == 1:
        time.sleep(0.3)
        raise DataError("row 7 of broken.csv has 3 columns, the header has 4")
    comm.Allreduce(MPI.IN_PLACE, np.ones(3))         # rank 0 would wait here forever
job()
'''


def test_a_rank_that_raises_ends_the_job_with_its_exit_code(tmp_path):
    started = time.monotonic()
    done = run_script(tmp_path, RAISE_ON_RANK_1)
    assert done.returncode == 3, done.stderr[-2000:]
    assert time.monotonic() - started < 10
    assert "rank 1: DataError: row 7 of broken.csv" in done.stderr


RAISE_ON_RANK_1_BEFORE_MPI = '''
import sys, time
import numpy as np
import click
from dltrain.cli.app import handle_errors
from dltrain.errors import DataError
from dltrain.parallel import mpi

@click.command()
@handle_errors
def job():
    comm = mpi.world()                      # as `dltrain fit` under mpiexec: MPI not started yet
    assert "mpi4py.MPI" not in sys.modules and (comm.rank, comm.size) == mpi.rank_of_job()
    if comm.rank == 1:                      # fails while loading its data, before any collective
        time.sleep(0.3)
        raise DataError("row 7 of broken.csv has 3 columns, the header has 4")
    time.sleep(1.0)                         # rank 0 loads longer, then meets the others
    comm.allreduce_sum(np.ones(3))          # would wait here forever
job()
'''


def test_a_rank_that_raises_before_mpi_has_started_ends_the_job_with_its_exit_code(tmp_path):
    """A fit starts MPI after its data is loaded; a rank that fails while loading starts it to
    end the job, which happens once every rank has reached MPI_Init."""
    started = time.monotonic()
    done = run_script(tmp_path, RAISE_ON_RANK_1_BEFORE_MPI)
    assert done.returncode == 3, done.stderr[-2000:]
    assert time.monotonic() - started < 10
    assert done.stderr.count("rank 1: DataError: row 7 of broken.csv") == 1, done.stderr


def test_a_data_error_on_every_rank_under_workers_exits_3_and_leaves_no_process(tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b,label\n1,2,0\n3,4\n5,6,1\n")
    marker = tmp_path / "data-error-run-marker"
    config = write_config(tmp_path, {**CONVNET, "data": {"train": {"type": "csv", "path": str(broken), "label": "label"}},
                                     "model": {"input_shape": [2], "layers": [{"type": "dense", "units": 2, "activation": "softmax"}]}})
    started = time.monotonic()
    done = fit(config, marker, workers=2, check=False)
    assert done.returncode == 3, done.stderr[-2000:]
    assert time.monotonic() - started < 20
    assert "broken.csv" in done.stderr and "Traceback" not in done.stderr
    time.sleep(0.5)
    assert _ranks(str(marker)) == []


def test_a_config_error_under_workers_exits_2_with_one_message(tmp_path):
    """Checked in the launching process before mpiexec starts: one message, not one per rank."""
    config = write_config(tmp_path, {**CONVNET, "optimizer": {"type": "adamm"}})
    done = fit(config, tmp_path / "run", workers=2, check=False)
    assert done.returncode == 2
    assert done.stderr.count("adamm") == 1 and "rank 1" not in done.stderr, done.stderr


def _ranks(marker):
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found if int(pid) != os.getpid()]


def test_a_rank_killed_with_sigkill_ends_the_job_and_leaves_no_process(tmp_path):
    config = write_config(tmp_path, {**CONVNET, "training": {"epochs": 200, "batch_size": 16}})
    run_dir = tmp_path / "killed-run-marker"
    job = subprocess.Popen([sys.executable, "-m", "dltrain", "fit", str(config), "--run-dir", str(run_dir),
                            "--quiet", "--workers", "2"], env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (run_dir / "metrics.csv").exists():
        time.sleep(0.05)
    ranks = [pid for pid in _ranks(str(run_dir)) if pid != job.pid
             and "mpiexec" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
    assert len(ranks) >= 2, ranks
    os.kill(ranks[-1], signal.SIGKILL)
    killed = time.monotonic()
    job.wait(timeout=30)
    assert job.returncode != 0
    assert time.monotonic() - killed < 10
    time.sleep(0.5)
    assert _ranks(str(run_dir)) == []


def test_workers_without_the_mpi_extra_names_the_install_command(tmp_path):
    blocker = tmp_path / "blocked" / "mpi4py"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named mpi4py (blocked by the test)')\n")
    env = {**ENV, "PYTHONPATH": str(tmp_path / "blocked")}
    done = subprocess.run([sys.executable, "-m", "dltrain", "fit", str(CONFIGS / "digits_mlp.yaml"),
                           "--run-dir", str(tmp_path / "run"), "--workers", "2"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert "pip install 'dltrain[mpi]'" in done.stderr
    assert "Traceback" not in done.stderr


PEAK_AT_EXIT = '''
import atexit, os, sys

def report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"peak {os.environ.get('PMI_RANK', '-')} {int(peak) / 1024:.1f}", file=sys.stderr, flush=True)

atexit.register(report)
from dltrain.cli import main
sys.argv = ["dltrain", *sys.argv[1:]]
main()
'''


@pytest.mark.slow
def test_a_rank_of_dltrain_fit_peaks_under_one_process_plus_the_gradient_buffer(tmp_path):
    """The must-hold on `dltrain fit` itself: 2 ranks on an MLP whose data (30,000 x 784 float32,
    90 MiB, read from an .npz by every rank) dominates; each rank keeps half of it, and MPI starts
    after it is loaded, so its runtime does not add to the loading peak."""
    from dltrain.parallel import launch

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((30_000, 784), dtype=np.float32), y=rng.integers(0, 10, 30_000))
    config = write_config(tmp_path, {
        "name": "peak", "seed": 1, "data": {"train": {"type": "npz", "path": str(tmp_path / "data.npz")},
                                            "validation": {"split": 0.1}},
        "model": {"input_shape": [784], "layers": [{"type": "dense", "units": 512, "activation": "relu"},
                                                   {"type": "dense", "units": 10, "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy", "optimizer": "rmsprop", "training": {"epochs": 1, "batch_size": 128}})
    script = tmp_path / "peak.py"
    script.write_text(PEAK_AT_EXIT)
    env = launch.rank_environment(2, ENV)

    def peaks(*prefix):
        done = subprocess.run([*prefix, sys.executable, str(script), "fit", str(config), "--run-dir",
                               str(tmp_path / f"run{len(prefix)}"), "--quiet"],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return [float(value) for value in re.findall(r"peak \S+ ([\d.]+)", done.stderr)]

    (single,) = peaks()
    ranks = peaks(MPIEXEC, "-n", "2")
    buffer = (784 * 512 + 512 + 512 * 10 + 10 + 4) * 4 / 2**20
    print("peaks: 1 process", single, "+ buffer", round(buffer, 2), "ranks", ranks)
    assert len(ranks) == 2 and max(ranks) <= single + buffer, (single, ranks)
