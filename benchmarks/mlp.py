"""One training epoch of a 784 -> 512 relu -> 10 softmax MLP: dltrain's Trainer against PyTorch.

RMSprop, batch 128, float32, 60,000 MNIST-shaped random samples (the data alone is 188 MB).
dltrain runs through its real Trainer (model from a config, fused softmax + cross-entropy,
shuffled batch gathering, metrics); PyTorch, when importable, runs the same model with the same
thread count and the same per-batch gathering. Epochs alternate between the two, so a machine
shared with other work slows both alike; medians and their ratio are printed.

Peak memory (ru_maxrss) is measured for dltrain before PyTorch is imported.

    python benchmarks/mlp.py [--epochs 5] [--threads N] [--no-torch]
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
    return parser.parse_args()


def make_data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((SAMPLES, FEATURES), dtype=np.float32)          # 188 MB, like MNIST / 255
    y = rng.integers(0, CLASSES, SAMPLES).astype(np.int64)
    return x, y


def dltrain_epoch_runner(x, y):
    """A function that trains one epoch through dltrain's Trainer and returns its seconds."""
    from dltrain.data.dataset import Split
    from dltrain.losses import SparseCategoricalCrossentropy

    trainer = harness.dltrain_trainer({"input_shape": [FEATURES], "layers": [
        {"type": "dense", "units": HIDDEN, "activation": "relu"},
        {"type": "dense", "units": CLASSES, "activation": "softmax"}]},
        SparseCategoricalCrossentropy(), BATCH)
    split = Split(x, y)
    epoch = [0]

    def run():
        epoch[0] += 1
        started = time.perf_counter()
        trainer.train_epoch(split, epoch[0])
        return time.perf_counter() - started

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
        order = torch.from_numpy(np.random.default_rng(epoch[0]).permutation(SAMPLES))
        started = time.perf_counter()
        for start in range(0, SAMPLES, BATCH):
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
    x, y = make_data()
    run_dltrain = dltrain_epoch_runner(x, y)      # each run: one epoch, its seconds
    times, dltrain_peak = harness.alternate(
        run_dltrain, lambda: torch_epoch_runner(x, y, args.threads), args.epochs, not args.no_torch)
    import numpy as np

    print(f"MLP {FEATURES}->{HIDDEN} relu->{CLASSES} softmax, RMSprop, batch {BATCH}, float32, "
          f"{SAMPLES:,} samples; {args.threads} threads; numpy {np.__version__}")
    for name, values in times.items():
        print(f"  {name:8s} median {statistics.median(values):.3f} s/epoch  "
              f"(min {min(values):.3f}, max {max(values):.3f}, {len(values)} epochs)")
    print(f"  dltrain peak RSS {dltrain_peak:.0f} MiB (data {x.nbytes / 2**20:.0f} MiB)")
    harness.print_ratio(times)


if __name__ == "__main__":
    main()
