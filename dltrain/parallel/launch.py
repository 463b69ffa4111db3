"""`dltrain fit --workers N`: start N local ranks through the MPI launcher and wait for them.

The launcher is the ``mpiexec`` of the MPICH wheel that ``dltrain[mpi]`` installs beside this
Python (a cluster's own ``mpiexec`` is used by running ``mpiexec -n N dltrain fit ...``
directly). Each rank runs ``python -m dltrain`` with the same arguments less ``--workers``, and
one BLAS thread per core it gets (cores // N, at least 1) unless the user set a thread count.
MPICH's Hydra runs as root without a flag (Open MPI would need --allow-run-as-root).
"""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from dltrain.errors import ConfigError
from dltrain.parallel.mpi import INSTALL, mpi4py

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: the MPI runtime's memory per local rank (each is a default: a variable the user set wins).
#: Local ranks talk through MPICH's own shared memory; UCX (MPICH's network module) still maps
#: receive FIFOs and buffers for its shared-memory transports that a single-machine job never
#: uses, and MPICH's queue has 64 cells per rank. Measured per rank of a 2-rank job (VmHWM):
#: 44.9 -> 40.3 MiB after `from mpi4py import MPI` and a 1.6 MB Allreduce (numpy alone 26.3), the
#: Allreduce's fastest call unchanged (0.34-0.36 ms). benchmarks/README.md has the figures.
MEMORY_SETTINGS = {
    "UCX_MM_FIFO_SIZE": "16",                          # UCX posix/sysv receive FIFO (64)
    "UCX_MM_RX_BUFS_GROW": "16",                       # their receive buffers, allocated in chunks of
    "MPIR_CVAR_CH4_SHM_POSIX_IQUEUE_NUM_CELLS": "16",  # MPICH's shared-memory eager cells (64)
}


def mpiexec():
    """The path of the launcher: the wheel's, beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise ConfigError("--workers needs an MPI launcher (mpiexec), and none was found",
                          fix=f"{INSTALL}  (installs mpi4py and MPICH's mpiexec)")
    return found


def rank_environment(workers, environ=None):
    """The environment of each rank: the caller's, with a BLAS thread count per rank and the
    MPI runtime's memory settings (``MEMORY_SETTINGS``) where the caller has not set them."""
    env = dict(os.environ if environ is None else environ)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    if not any(name in env for name in THREAD_VARIABLES):
        env.update({name: threads for name in THREAD_VARIABLES})
    for name, value in MEMORY_SETTINGS.items():
        env.setdefault(name, value)
    return env


def fit_arguments(params, debug=False):
    """The command line each rank runs: ``fit`` with the parsed ``params`` of this one, less
    ``--workers`` (built from the parsed values, not sys.argv, so it is the same however
    dltrain was started)."""
    args = (["--debug"] if debug else []) + ["fit"]
    if params.get("config"):
        args.append(str(params["config"]))
    for override in params.get("overrides") or ():
        args += ["--set", override]
    for name in ("run_dir", "resume", "device"):
        if params.get(name) is not None:
            args += [f"--{name.replace('_', '-')}", str(params[name])]
    for name in ("overwrite", "allow_config_change", "quiet"):
        if params.get(name):
            args.append(f"--{name.replace('_', '-')}")
    return args


def launch(workers, argv):
    """Run ``dltrain ARGV`` on ``workers`` local ranks; return the job's exit code (a rank's
    error code: a rank that fails aborts the job with its code, parallel/mpi.py).

    SIGINT and SIGTERM are passed on to the launcher, which passes them to every rank (each
    checkpoints once and exits 130)."""
    mpi4py()                                  # a clear message when the extra is missing
    command = [mpiexec(), "-n", str(workers), sys.executable, "-m", "dltrain", *argv]
    job = subprocess.Popen(command, env=rank_environment(workers))
    forward = lambda signum, frame: job.send_signal(signum)   # noqa: E731
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return job.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
