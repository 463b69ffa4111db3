"""What the benchmarks share: thread settings, PyTorch from another venv, alternating rounds.

Each benchmark times dltrain's real Trainer and, when PyTorch is importable, the same model in
PyTorch at the same thread count. Rounds alternate between the two, so a machine shared with
other work slows both alike; medians and their ratio are what to quote. dltrain's peak memory
(ru_maxrss) is read before PyTorch is imported.
"""
import argparse
import os
import resource
import statistics
import sys
import time

#: seconds between two timed runs, so that neither framework starts while the other's worker
#: threads still spin: OpenBLAS's keep a core busy for ~0.1 s after its last product (2**28
#: cycles), OpenMP's for a few milliseconds
SETTLE = 0.3


def parser(doc):
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS / torch threads")
    parser.add_argument("--no-torch", action="store_true", help="time dltrain only")
    parser.add_argument("--torch-site", help="site-packages of a venv holding torch (appended to sys.path)")
    return parser


def prepare(args):
    """Thread counts before numpy loads its BLAS; PyTorch's venv on the path."""
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(key, str(args.threads))
    if args.torch_site:
        sys.path.append(args.torch_site)


def dltrain_trainer(model_config, loss, batch_size, preprocessing=()):
    """dltrain's real Trainer for a benchmark: the model built from ``model_config`` with seed 0,
    RMSprop (lr 0.001) and the accuracy metric, after the allocator settings ``fit`` uses."""
    from dltrain.api import _tune_allocator
    from dltrain.data.dataset import Pipeline
    from dltrain.model import Model
    from dltrain.optimizers import RMSprop
    from dltrain.random import Streams
    from dltrain.training.trainer import Trainer

    _tune_allocator()
    streams = Streams(0)
    model = Model.from_config(model_config)
    model.build(streams.get("init"), streams)
    return Trainer(model, loss, RMSprop(learning_rate=0.001), ["accuracy"], Pipeline(list(preprocessing)),
                   streams, batch_size=batch_size)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
