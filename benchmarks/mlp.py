"""One training epoch of a 784 -> 512 relu -> 10 softmax MLP: dltrain's Trainer against PyTorch.

RMSprop, batch 128, float32, 60,000 MNIST-shaped random samples (the data alone is 188 MB).
dltrain runs through its real Trainer (model from a config, fused softmax + cross-entropy,
shuffled batch gathering, metrics); PyTorch, when importable, runs the same model with the same
thread count and the same per-batch gathering. Epochs alternate between the two, so a machine
shared with other work slows both alike; medians and their ratio are printed.

Peak memory (ru_maxrss) is measured for dltrain before PyTorch is imported.

    python benchmarks/mlp.py [--epochs 5] [--threads N] [--no-torch]
    python benchmarks/mlp.py --workers 2         # each dltrain epoch: 2 MPI ranks x 1 BLAS thread
    # PyTorch installed in another virtual environment (same Python version):
    python benchmarks/mlp.py --torch-site /path/to/torch-venv/lib/python3.11/site-packages
"""
import statistics
import time

import harness

SAMPLES, FEATURES, HIDDEN, CLASSES, BATCH = 60_000, 784, 512, 10, 128


def parse():
    parser = harness.parser(__doc__)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per framework")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="samples per epoch (tests: fewer)")
    return parser.parse_args()


def make_data(samples=SAMPLES, comm=None):
    """(x, y): all samples, or with ``comm`` (a rank of several) only the rank's shard of them."""
    import numpy as np

    rng = np.random.default_rng(0)
    lo, hi = harness.shard(samples, comm)
    x = harness.drawn(lambda k: rng.random((k, FEATURES), dtype=np.float32), samples, (lo, hi))  # 188 MB, like MNIST / 255
    y = rng.integers(0, CLASSES, samples).astype(np.int64)[lo:hi]
    return x, y


def dltrain_epoch_runner(x, y, comm=None, samples=None):
    """A function that trains one epoch through dltrain's Trainer (with ``comm``: this rank's
    share of every global batch, (x, y) its shard of ``samples``) and returns its seconds;
    ``run.trainer`` is the Trainer."""
    from dltrain.losses import SparseCategoricalCrossentropy

    trainer = harness.dltrain_trainer({"input_shape": [FEATURES], "layers": [
        {"type": "dense", "units": HIDDEN, "activation": "relu"},
        {"type": "dense", "units": CLASSES, "activation": "softmax"}]},
        SparseCategoricalCrossentropy(), BATCH, comm=comm)
    split = harness.split_of(x, y, samples or len(x), comm)
    epoch = [0]

    def run():
        epoch[0] += 1
        started = time.perf_counter()
        trainer.train_epoch(split, epoch[0])
        return time.perf_counter() - started

    run.trainer = trainer
    return run


def torch_epoch_runner(x, y, threads):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, CLASSES))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)         # shares the numpy arrays' memory
    epoch = [0]

    def run():
        epoch[0] += 1
        order = torch.from_numpy(np.random.default_rng(epoch[0]).permutation(len(x)))
        started = time.perf_counter()
        for start in range(0, len(x), BATCH):
            index = order[start:start + BATCH]
            xb, yb = tx[index], ty[index]
            optimizer.zero_grad(set_to_none=False)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            loss.item()                        # the loss is read every batch, as dltrain does
        return time.perf_counter() - started

    return run


def main():
    args = parse()
    harness.prepare(args)
    if args.rank_round:                             # one rank of a --workers round: its shard
        def make(comm):
            run = dltrain_epoch_runner(*make_data(args.samples, comm), comm, args.samples)
            return run, run.trainer
        return harness.rank_round(make)
    if args.peaks:                                  # memory only: 1, 2 and 4 ranks
        return harness.peaks(args, __file__)
    x, y = make_data(args.samples)
    job = harness.Job(args, __file__) if args.workers > 1 else None
    run_dltrain = job or dltrain_epoch_runner(x, y)      # each run: one epoch, its seconds
    times, dltrain_peak = harness.alternate(
        run_dltrain, lambda: torch_epoch_runner(x, y, args.torch_threads), args.epochs, not args.no_torch)
    import numpy as np

    print(f"MLP {FEATURES}->{HIDDEN} relu->{CLASSES} softmax, RMSprop, batch {BATCH}, float32, "
          f"{len(x):,} samples; {harness.threads_line(args)}; numpy {np.__version__}")
    for name, values in times.items():
        print(f"  {name:8s} median {statistics.median(values):.3f} s/epoch  "
              f"(min {min(values):.3f}, max {max(values):.3f}, {len(values)} epochs)")
    if job:
        job.report(times["dltrain"])
    else:
        print(f"  dltrain peak RSS {dltrain_peak:.0f} MiB (data {x.nbytes / 2**20:.0f} MiB)")
    harness.print_ratio(times)


if __name__ == "__main__":
    main()
