"""The book's MNIST convnet, one training step after another: dltrain's Trainer against PyTorch.

conv 32 (3x3) -> max pool -> conv 64 -> max pool -> conv 64 -> flatten -> dense 64 -> dense 10,
ReLU, RMSprop, batch 64, float32, MNIST-shaped input (28x28x1, uint8 rescaled by 1/255 per batch,
as configs/mnist_convnet.yaml does). dltrain runs through its real Trainer (shuffled batch
gathering, preprocessing, fused softmax + cross-entropy, metrics); PyTorch runs the same model
with the same thread count and the same per-batch gathering, on an NCHW-shaped view of the same
NHWC array: channels-last strides, so its oneDNN convolutions run channels-last like dltrain's.

The machine is shared, so each framework times a subset of an epoch (``--steps`` batches) in
alternating rounds, and the epoch time is extrapolated from the median per-step time to the
938 steps of a 60,000-sample epoch. Peak memory (ru_maxrss) is measured for dltrain before
PyTorch is imported.

    python benchmarks/convnet.py [--rounds 5] [--steps 150] [--threads N] [--no-torch]
    python benchmarks/convnet.py --workers 2     # each dltrain round: 2 MPI ranks x 1 BLAS thread
    python benchmarks/convnet.py --torch-site /work/torchenv/lib/python3.11/site-packages
"""
import functools
import statistics
import time

import harness

SAMPLES, BATCH, CLASSES = 60_000, 64, 10
STEPS_PER_EPOCH = -(-SAMPLES // BATCH)
LAYERS = [
    {"type": "conv2d", "filters": 32, "kernel_size": 3, "activation": "relu"},
    {"type": "max_pooling2d", "pool_size": 2},
    {"type": "conv2d", "filters": 64, "kernel_size": 3, "activation": "relu"},
    {"type": "max_pooling2d", "pool_size": 2},
    {"type": "conv2d", "filters": 64, "kernel_size": 3, "activation": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 64, "activation": "relu"},
    {"type": "dense", "units": CLASSES, "activation": "softmax"},
]


def parse():
    parser = harness.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per framework")
    parser.add_argument("--steps", type=int, default=150, help="batches per round")
    return parser.parse_args()


def make_data(comm=None, used=SAMPLES):
    """(x, y): all samples, or with ``comm`` (a rank of several) only the rank's shard of the
    first ``used`` (the rows its rounds train on)."""
    import numpy as np

    rng = np.random.default_rng(0)
    lo, hi = harness.shard(used, comm)
    x = harness.drawn(lambda k: rng.integers(0, 256, (k, 28, 28, 1), dtype=np.uint8), SAMPLES, (lo, hi))  # 47 MB, as MNIST
    y = rng.integers(0, CLASSES, SAMPLES).astype(np.int64)[lo:hi]
    return x, y


def dltrain_runner(x, y, comm=None):
    """run(steps) trains ``steps`` global batches through dltrain's Trainer (with ``comm``: this
    rank's share of each, (x, y) its shard of the rows it trains on); returns seconds per step.
    ``run.trainer`` is the Trainer."""
    from dltrain.data.preprocessing import Rescale
    from dltrain.losses import SparseCategoricalCrossentropy

    trainer = harness.dltrain_trainer({"input_shape": [28, 28, 1], "layers": LAYERS},
                                      SparseCategoricalCrossentropy(), BATCH, [Rescale(1 / 255)], comm)
    epoch = [0]

    def run(steps):
        epoch[0] += 1
        split = harness.split_of(x, y, steps * BATCH, comm)
        started = time.perf_counter()
        trainer.train_epoch(split, epoch[0])
        return (time.perf_counter() - started) / steps

    run.trainer = trainer
    return run


def torch_runner(x, y, threads):
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)              # NCHW view, channels-last strides
    ty = torch.from_numpy(y)
    epoch = [0]

    def run(steps):
        epoch[0] += 1
        order = torch.from_numpy(np.random.default_rng(epoch[0]).permutation(steps * BATCH))
        started = time.perf_counter()
        for start in range(0, steps * BATCH, BATCH):
            index = order[start:start + BATCH]
            xb = tx[index].float().mul_(1 / 255)
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(model(xb), ty[index])
            loss.backward()
            optimizer.step()
            loss.item()
        return (time.perf_counter() - started) / steps

    return run


def main():
    args = parse()
    harness.prepare(args)
    if args.rank_round:                             # one rank of a --workers round: its shard
        def make(comm):
            run = dltrain_runner(*make_data(comm, args.steps * BATCH), comm)
            return functools.partial(run, args.steps), run.trainer
        return harness.rank_round(make)
    if args.peaks:                                  # memory only: 1, 2 and 4 ranks
        return harness.peaks(args, __file__)
    x, y = make_data()
    job = harness.Job(args, __file__) if args.workers > 1 else None
    times, dltrain_peak = harness.alternate(        # each run: args.steps batches, seconds per step
        job or functools.partial(dltrain_runner(x, y), args.steps),
        lambda: functools.partial(torch_runner(x, y, args.torch_threads), args.steps),
        args.rounds, not args.no_torch)
    import numpy as np

    print(f"convnet conv32-pool-conv64-pool-conv64-dense64-dense10, RMSprop, batch {BATCH}, float32, "
          f"28x28x1; {args.rounds} rounds of {args.steps} steps; {harness.threads_line(args)}; "
          f"numpy {np.__version__}")
    for name, values in times.items():
        step = statistics.median(values)
        print(f"  {name:8s} median {step * 1000:.1f} ms/step (min {min(values) * 1000:.1f}, "
              f"max {max(values) * 1000:.1f}) -> {step * STEPS_PER_EPOCH:.1f} s per 60,000-sample epoch")
    if job:
        job.report(times["dltrain"])
    else:
        print(f"  dltrain peak RSS {dltrain_peak:.0f} MiB (data {x.nbytes / 2**20:.0f} MiB)")
    harness.print_ratio(times)


if __name__ == "__main__":
    main()
