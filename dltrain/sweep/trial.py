"""One trial: a `dltrain fit` process on the base config with the trial's values set, in its own
run directory SWEEP_DIR/trials/ID, and the result read back from that directory's metrics.csv.

A job trains the trial to its epoch budget with ``--resume auto``: a new trial starts, a promoted
one continues from its last checkpoint, exactly as if it had been trained that long in one go.
Each process runs BLAS on one thread (``parallel`` processes share the cores) and in a session
of its own, so the sweep decides when it stops; it is also stopped (SIGTERM, which checkpoints)
if the sweep process dies.
"""
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dltrain.sweep.space import override

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: exit codes of the interface contract
DIVERGED, INTERRUPTED = 4, 130


def command(base, job, run_dir, allow_config_change=False, python=None):
    """The argument list of the `dltrain fit` process that trains ``job``."""
    args = [python or sys.executable, "-m", "dltrain", "fit", str(Path(base).resolve())]
    params = dict(job.params)
    params.setdefault("training.epochs", job.epochs)
    for path, value in params.items():
        args += ["--set", override(path, value)]
    args += ["--run-dir", str(run_dir), "--resume", "auto", "--quiet"]
    return args + (["--allow-config-change"] if allow_config_change else [])


def _die_with_parent():
    """In the child: receive SIGTERM when the sweep process dies (Linux; elsewhere nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Process:
    """A running trial job: the process, where it logs, when it started."""

    def __init__(self, job, args, log_dir, keep_fds=()):
        self.job = job
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{job.trial}.log"
        self.err = log_dir / f"{job.trial}.err"
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, **ONE_THREAD,
                   PYTHONPATH=os.pathsep.join(p for p in [package_root, os.environ.get("PYTHONPATH")] if p))
        self.started = time.perf_counter()
        with open(self.log, "a") as out, open(self.err, "w") as err:
            out.write(f"$ {' '.join(args)}\n")
            out.flush()
            self.process = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True, preexec_fn=_die_with_parent,
                                            pass_fds=keep_fds)

    def poll(self):
        return self.process.poll()

    def interrupt(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def stop(self, timeout=60):
        """Wait for an interrupted process; kill it when it does not stop in ``timeout`` s."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def message(self, lines=12):
        """The end of what the process printed to stderr (its error message)."""
        try:
            text = self.err.read_text(errors="replace").strip()
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def result(job, run_dir, code, metric, better, seconds, message=""):
    """The journal record of a finished job, read from the trial's run directory."""
    from dltrain.plot import read_history

    record = {"event": "result", "trial": job.trial, "params": job.params, "epochs": job.epochs,
              "rung": job.rung, "bracket": job.bracket, "score": None, "best_epoch": None,
              "epochs_run": 0, "final": {}, "seconds": round(seconds, 3), "code": code, "message": None}
    try:
        rows = [r for r in read_history(run_dir)[1] if (r.get("epoch") or 0) <= job.epochs]
    except Exception:        # no metrics.csv yet: the trial failed before its first epoch
        rows = []
    if rows:
        record["epochs_run"] = int(rows[-1]["epoch"])
        record["final"] = {k: v for k, v in rows[-1].items() if k != "seconds"}
        for row in rows:
            value = row.get(metric)
            if value is not None and math.isfinite(value) and better(value, record["score"]):
                record["score"], record["best_epoch"] = value, int(row["epoch"])
    if code == 0:
        done = record["epochs_run"] >= job.epochs and not stopped_by_callback(run_dir)
        record["status"] = "completed" if done else "stopped"
    else:
        record["status"] = "diverged" if code == DIVERGED else "failed"
        record["message"] = message or f"exit code {code}"
        record["score"] = record["best_epoch"] = None       # ranked last, never promoted
    return record


def stopped_by_callback(run_dir):
    """True when a callback (early stopping) ended the run at its last epoch: such a run must not
    be continued, since a run trained longer from scratch would have stopped there too."""
    import json

    import numpy as np

    try:
        with np.load(Path(run_dir) / "checkpoints" / "last.npz", allow_pickle=False) as saved:
            meta = json.loads(saved["meta"].tobytes().decode("utf-8"))
    except (OSError, KeyError, ValueError):
        return False
    return any(isinstance(state, dict) and state.get("stopped_epoch") is not None
               for state in meta.get("callbacks") or [])
