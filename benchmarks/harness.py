"""What the benchmarks share: thread settings, PyTorch from another venv, alternating rounds,
and data-parallel rounds over MPI (``--workers N``).

Each benchmark times dltrain's real Trainer and, when PyTorch is importable, the same model in
PyTorch. Rounds alternate between the two, so a machine shared with other work slows both alike;
medians and their ratio are what to quote. dltrain's peak memory (ru_maxrss) is read before
PyTorch is imported.

``--workers N`` (N >= 2): each dltrain round is an MPI job of N ranks, started through the
``mpiexec`` beside this Python (the MPICH wheel of ``dltrain[mpi]``): the script re-runs itself
as ``mpiexec -n N python SCRIPT ... --rank-round``. Every rank builds the same Trainer with the
MPI communicator (the global batch is the PyTorch batch, each rank trains its share), runs the
round once untimed (buffers, BLAS), meets the others at a barrier and runs it again timed; rank
0 prints the result as one JSON line. Between rounds no rank exists, so no MPI rank busy-polls a
core while PyTorch runs. Each rank also reports the seconds spent in ``comm.allreduce_sum``
(the step's one all-reduce, waiting for the slower rank included) and its peak RSS; one
single-process job (``--rank-round`` without mpiexec) gives the 1-process peak to compare with.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: seconds between two timed runs, so that neither framework starts while the other's worker
#: threads still spin: OpenBLAS's keep a core busy for ~0.1 s after its last product (2**28
#: cycles), OpenMP's for a few milliseconds
SETTLE = 0.3
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parser(doc):
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--threads", type=int, help="BLAS threads per dltrain process (default: the "
                        "cores, or 1 per rank with --workers)")
    parser.add_argument("--workers", type=int, default=1, help="dltrain ranks per round (an MPI job "
                        "through the mpiexec of dltrain[mpi]; 1: this process)")
    parser.add_argument("--torch-threads", type=int, help="PyTorch's threads (default: threads x workers)")
    parser.add_argument("--no-torch", action="store_true", help="time dltrain only")
    parser.add_argument("--torch-site", help="site-packages of a venv holding torch (appended to sys.path)")
    parser.add_argument("--peaks", action="store_true", help="no timing: each rank's peak memory "
                        "(VmHWM) at 1, 2 and 4 ranks x --threads (default 1), against 1 process + the "
                        "gradient buffer")
    parser.add_argument("--rank-round", action="store_true", help=argparse.SUPPRESS)   # one rank's job
    return parser


def prepare(args):
    """Thread counts before numpy loads its BLAS; PyTorch's venv on the path."""
    if args.workers < 1:
        raise SystemExit("--workers must be 1 or more")
    if args.threads is None:
        args.threads = 1 if args.workers > 1 or args.peaks else os.cpu_count()
    if args.torch_threads is None:
        args.torch_threads = args.threads * args.workers
    # with --workers this process runs only PyTorch (the ranks get args.threads from Job.run):
    # torch reads OMP_NUM_THREADS/MKL_NUM_THREADS too, and at 1 it ran its 2 threads as one
    own = args.torch_threads if args.workers > 1 and not args.rank_round else args.threads
    for key in THREAD_VARIABLES:
        os.environ.setdefault(key, str(own))
    if args.torch_site:
        sys.path.append(args.torch_site)


def dltrain_trainer(model_config, loss, batch_size, preprocessing=(), comm=None):
    """dltrain's real Trainer for a benchmark: the model built from ``model_config`` with seed 0,
    RMSprop (lr 0.001) and the accuracy metric, after the allocator settings ``fit`` uses; with
    ``comm`` (several ranks) rank 0's parameters are broadcast as ``fit`` does."""
    from dltrain.allocator import tune
    from dltrain.data.dataset import Pipeline
    from dltrain.model import Model
    from dltrain.optimizers import RMSprop
    from dltrain.parallel import replicas
    from dltrain.random import Streams
    from dltrain.training.trainer import Trainer

    tune()
    streams = Streams(0)
    model = Model.from_config(model_config)
    model.build(streams.get("init"), streams)
    if comm is not None:
        replicas.join(model, comm)
    return Trainer(model, loss, RMSprop(learning_rate=0.001), ["accuracy"], Pipeline(list(preprocessing)),
                   streams, batch_size=batch_size, comm=comm)


def shard(n, comm=None):
    """The rows [lo, hi) of an n-row split that ``comm``'s rank holds (parallel/shards.py: each
    rank 1/N of them); all of them on one process."""
    if comm is None or comm.size == 1:
        return 0, n
    from dltrain.parallel.shards import shard_bounds

    bounds = shard_bounds(n, comm.size)
    return int(bounds[comm.rank]), int(bounds[comm.rank + 1])


def drawn(draw, n, rows, chunk=2048):
    """Rows ``rows`` = (lo, hi) of the n-row array that ``draw(k)`` (k rows of random numbers)
    gives chunk by chunk: every chunk is drawn, so the numbers are the same whichever rows are
    kept, but only the kept ones are ever held (a rank of a --workers round: its shard)."""
    import numpy as np

    lo, hi = rows
    out = None
    for start in range(0, n, chunk):
        part = draw(min(chunk, n - start))
        if out is None:
            out = np.empty((hi - lo,) + part.shape[1:], part.dtype)
        first, last = max(lo, start), min(hi, start + len(part))
        if first < last:
            out[first - lo:last - lo] = part[first - start:last - start]
    return out


def split_of(x, y, n, comm=None):
    """The Split a round trains on: on one process the first ``n`` rows of (x, y); on a rank of
    several, (x, y) are its shard of those n rows (``shard``) and the split is spread over the
    ranks, as ``dltrain fit`` spreads in-memory training data."""
    import numpy as np

    from dltrain.data.dataset import Split

    if comm is None or comm.size == 1:
        return Split(x, y, np.arange(n))
    from dltrain.parallel.shards import ShardedSplit

    return ShardedSplit(x, y, n, comm)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_mib():
    """This program's peak RSS (VmHWM: the peak of its own address space). ru_maxrss is not that
    in a child of a big process: Linux carries the parent's peak over the fork and exec into it
    (a 1-process round started by a parent holding PyTorch read 392 MiB instead of 122)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_mib()


def alternate(dltrain_once, torch_factory, rounds, use_torch=True):
    """({'dltrain': [s, ...], 'torch': [...]}, dltrain's peak MiB) over ``rounds`` alternating runs.

    ``dltrain_once()`` and the function ``torch_factory()`` returns each time one run and return
    its seconds; each is run once untimed first (buffers, BLAS threads).
    """
    dltrain_once()
    times = {"dltrain": [dltrain_once()]}
    peak = peak_mib()
    runners = {"dltrain": dltrain_once}
    if use_torch:
        try:
            runners["torch"] = torch_factory()
            runners["torch"]()
            times["torch"] = []
        except ImportError:
            print("PyTorch is not importable here: timing dltrain only", file=sys.stderr)
    for _ in range(rounds if "torch" in times else rounds - 1):
        for name, run in runners.items():
            time.sleep(SETTLE)
            times[name].append(run())
    return times, peak


def print_ratio(times):
    if "torch" in times:
        import torch

        ratio = statistics.median(times["dltrain"]) / statistics.median(times["torch"])
        print(f"  torch {torch.__version__}: dltrain / torch = {ratio:.2f}x")


def threads_line(args):
    torch = "" if args.no_torch else f"; torch {args.torch_threads} threads"
    if args.workers > 1:
        return f"dltrain {args.workers} ranks x {args.threads} BLAS threads{torch}"
    return f"{args.threads} threads{torch}"


# -- data parallelism: one MPI job per dltrain round -------------------------------------------

def timed(comm):
    """``comm`` with the seconds and calls of its ``allreduce_sum`` counted (``seconds``, ``calls``)."""
    from dltrain.parallel.communicator import Communicator

    class Timed(Communicator):
        def __init__(self):
            self.rank, self.size, self.seconds, self.calls = comm.rank, comm.size, 0.0, 0
            self.exchange_seconds = 0.0

        def share_of(self, rank, n):
            return comm.share_of(rank, n)

        def exchange(self, send, send_counts, recv_counts):
            started = time.perf_counter()
            received = comm.exchange(send, send_counts, recv_counts)
            self.exchange_seconds += time.perf_counter() - started
            return received

        def allreduce_sum(self, buffer):
            started = time.perf_counter()
            comm.allreduce_sum(buffer)
            self.seconds += time.perf_counter() - started
            self.calls += 1

        def allgather(self, value):
            return comm.allgather(value)

        def any(self, flag):
            return comm.any(flag)

        def broadcast(self, arrays):
            comm.broadcast(arrays)

    return Timed()


def rank_round(make_runner):
    """One rank of a ``--rank-round`` job: ``make_runner(comm)`` builds the round (a function
    returning its time); it runs once untimed, then timed after a barrier. Rank 0 prints
    {"time", "allreduce_seconds" and "peak_mib" by rank, "buffer_mib", "helper_mib" by rank}."""
    from dltrain.parallel import mpi, recurrent_helper
    from dltrain.parallel.buffer import GradientBuffer

    world = mpi.world()
    comm = timed(world)
    run, trainer = make_runner(comm)
    run()
    if world.size > 1:
        world.comm.Barrier()
    comm.seconds, comm.calls, comm.exchange_seconds = 0.0, 0, 0.0
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    buffer_mib = GradientBuffer(trainer.model.parameters()).flat.nbytes / 2**20
    mine = (comm.seconds, comm.calls, wall, own_peak_mib(), recurrent_helper.peak_mib(), comm.exchange_seconds)
    ranks = comm.allgather(mine)
    if comm.rank == 0:
        print(json.dumps({"time": result, "allreduce_seconds": [r[0] for r in ranks],
                          "allreduce_calls": [r[1] for r in ranks], "wall": [r[2] for r in ranks],
                          "peak_mib": [r[3] for r in ranks], "helper_mib": [r[4] for r in ranks],
                          "buffer_mib": buffer_mib, "exchange_seconds": [r[5] for r in ranks]}), flush=True)


class Job:
    """The parent side: ``job()`` runs one dltrain round as an MPI job of ``args.workers`` ranks
    and returns its time; every job's JSON is kept in ``results``."""

    def __init__(self, args, script):
        self.args, self.script, self.results = args, script, []

    def command(self, ranks):
        launcher = str(Path(sys.executable).parent / "mpiexec")
        argv = [a for a in sys.argv[1:] if a not in ("--rank-round", "--peaks")]
        prefix = [launcher, "-n", str(ranks)] if ranks > 1 else []
        return prefix + [sys.executable, str(self.script), *argv, "--rank-round", "--threads", str(self.args.threads)]

    def run(self, ranks):
        """One round on ``ranks`` ranks (1: one process without mpiexec) in the environment
        ``dltrain fit --workers`` gives its ranks (launch.rank_environment: the MPI runtime's
        memory settings), at ``args.threads`` BLAS threads per rank; its JSON."""
        from dltrain.parallel import launch

        env = launch.rank_environment(ranks, {**os.environ, **{key: str(self.args.threads) for key in THREAD_VARIABLES}})
        done = subprocess.run(self.command(ranks), env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the {ranks}-rank dltrain round failed (exit {done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def __call__(self):
        result = self.run(self.args.workers)
        self.results.append(result)
        return result["time"]

    def report(self, times):
        """Lines on the all-reduce's share of the timed rounds (``times``) and on memory: each
        rank's seconds in allreduce_sum over its round's wall time, median over the rounds."""
        timed_results = self.results[-len(times):]
        last = timed_results[-1]
        calls = last["allreduce_calls"][0]
        shares = [statistics.median(r["allreduce_seconds"][rank] / r["wall"][rank] for r in timed_results)
                  for rank in range(len(last["wall"]))]
        per_call = statistics.median(max(r["allreduce_seconds"]) / max(calls, 1) for r in timed_results)
        print(f"  all-reduce ({calls} per round, one per step; waiting for the slower rank included): "
              f"{', '.join(f'{s * 100:.1f}%' for s in shares)} of the round by rank "
              f"(median over rounds), {per_call * 1e3:.2f} ms per call on the rank that waits most")
        exchange = [statistics.median(r["exchange_seconds"][rank] / r["wall"][rank] for r in timed_results)
                    for rank in range(len(last["wall"]))]
        print(f"  all-to-all of the batch rows (the data spread over the ranks, one per step; waiting "
              f"for the slower rank included): "
              f"{', '.join(f'{s * 100:.1f}%' for s in exchange)} of the round by rank (median over rounds)")
        single = self.run(1)
        print(f"  peak RSS by rank {', '.join(f'{p:.1f}' for p in last['peak_mib'])} MiB; 1 process "
              f"(same script, same threads per process) {single['peak_mib'][0]:.1f} MiB + gradient buffer "
              f"{last['buffer_mib']:.2f} MiB = {single['peak_mib'][0] + last['buffer_mib']:.1f} MiB")
        helpers = [h for h in last["helper_mib"] if h is not None]
        print(f"  recurrent helper process: {'started on ' + str(len(helpers)) + ' ranks' if helpers else 'not started'}")


def peaks(args, script, ranks=(1, 2, 4)):
    """``--peaks``: one round at each of ``ranks`` (no timing to quote); each rank's peak RSS
    (VmHWM) against the 1-process round's plus the gradient buffer (the must-hold)."""
    job = Job(args, script)
    single = None
    print(f"peak RSS (VmHWM) per rank, {args.threads} BLAS thread(s) per process, MiB")
    for n in ranks:
        result = job.run(n)
        peaks_by_rank = result["peak_mib"]
        if single is None:
            single = peaks_by_rank[0]
            print(f"  1 process: {single:.1f}; gradient buffer {result['buffer_mib']:.2f}; "
                  f"allowed per rank {single + result['buffer_mib']:.1f}")
            continue
        allowed = single + result["buffer_mib"]
        worst = max(peaks_by_rank)
        print(f"  {n} ranks: {', '.join(f'{p:.1f}' for p in peaks_by_rank)}; highest {worst:.1f} "
              f"{'<=' if worst <= allowed else '>'} {allowed:.1f} ({worst - allowed:+.1f})")
