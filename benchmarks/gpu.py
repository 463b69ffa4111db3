"""The three benchmark models on a GPU: dltrain --device cuda (CuPy) against eager PyTorch CUDA.

MLP 784-512-10 batch 128, the book's MNIST convnet batch 64, embedding + LSTM 32 over 500 steps
batch 128 (the models, data and optimizer of mlp.py, convnet.py and lstm.py), all in one process.
Both frameworks gather each batch on the host and move it to the GPU once per step, and read the
loss every step. Rounds alternate between the two; the median seconds per step is extrapolated to
an epoch (60,000 samples; IMDB's 25,000 for the LSTM) and the ratio printed beside the issue's
targets (MLP and convnet <= 0.5x PyTorch, LSTM <= 3x).

    python benchmarks/gpu.py [--rounds 3] [--models mlp,convnet,lstm] [--no-torch] [--torch-site DIR]
    python benchmarks/gpu.py --fake      # the same path on the test suite's fake device (no GPU)
"""
import statistics
import sys
import time
from pathlib import Path

import harness

TARGETS = {"mlp": 0.5, "convnet": 0.5, "lstm": 3.0}
#: (batch, steps per round, samples per epoch)
SIZES = {"mlp": (128, 469, 60_000), "convnet": (64, 200, 60_000), "lstm": (128, 20, 25_000)}


def parse():
    parser = harness.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per framework and model")
    parser.add_argument("--models", default="mlp,convnet,lstm")
    parser.add_argument("--steps", type=int, help="steps per round for every model (default: per model)")
    parser.add_argument("--fake", action="store_true",
                        help="run dltrain's side on tests/fakedevice.py's stand-in cupy (checks the script)")
    return parser.parse_args()


def _data(model, rows):
    import numpy as np

    rng = np.random.default_rng(0)
    if model == "mlp":
        return rng.random((rows, 784), dtype=np.float32), rng.integers(0, 10, rows)
    if model == "convnet":
        return rng.integers(0, 256, (rows, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, rows)
    return rng.integers(1, 10_000, (rows, 500)), rng.integers(0, 2, rows).astype(np.float32).reshape(-1, 1)


def dltrain_runner(model, x, y, batch):
    """run(steps) -> seconds per step of dltrain's real Trainer on the GPU."""
    import numpy as np

    import convnet

    from dltrain import device as devices
    from dltrain.backend import synchronize
    from dltrain.data.dataset import Split
    from dltrain.data.preprocessing import Rescale
    from dltrain.losses import BinaryCrossentropy, SparseCategoricalCrossentropy

    layers = {"mlp": [{"type": "dense", "units": 512, "activation": "relu"},
                      {"type": "dense", "units": 10, "activation": "softmax"}],
              "convnet": convnet.LAYERS,
              "lstm": [{"type": "embedding", "input_dim": 10_000, "output_dim": 32},
                       {"type": "lstm", "units": 32}, {"type": "dense", "units": 1, "activation": "sigmoid"}]}
    shape = {"mlp": [784], "convnet": [28, 28, 1], "lstm": [500]}[model]
    loss = BinaryCrossentropy() if model == "lstm" else SparseCategoricalCrossentropy()
    trainer = harness.dltrain_trainer({"input_shape": shape, "layers": layers[model]}, loss, batch,
                                      [Rescale(1 / 255)] if model == "convnet" else [])
    devices.place(trainer, "cuda")
    epoch = [0]

    def run(steps):
        epoch[0] += 1
        split = Split(x, y, np.arange(steps * batch))
        started = time.perf_counter()
        trainer.train_epoch(split, epoch[0])
        synchronize(next(iter(trainer.model.parameters()))[1])
        return (time.perf_counter() - started) / steps

    return run


def torch_runner(model, x, y, batch):
    """run(steps) -> seconds per step of the same model in eager PyTorch on CUDA."""
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    cuda = torch.device("cuda")
    if model == "mlp":
        net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    elif model == "convnet":
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
                            nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))
    else:
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding, self.lstm = nn.Embedding(10_000, 32), nn.LSTM(32, 32, batch_first=True)
                self.dense = nn.Linear(32, 1)

            def forward(self, ids):
                return self.dense(self.lstm(self.embedding(ids))[1][0][-1])

        net = Net()
    net = net.to(cuda)
    optimizer = torch.optim.RMSprop(net.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss() if model == "lstm" else nn.CrossEntropyLoss()
    tx = torch.from_numpy(x)
    tx = tx.permute(0, 3, 1, 2) if model == "convnet" else tx
    ty = torch.from_numpy(y)
    epoch = [0]

    def run(steps):
        epoch[0] += 1
        order = torch.from_numpy(np.random.default_rng(epoch[0]).permutation(steps * batch))
        torch.cuda.synchronize()
        started = time.perf_counter()
        for start in range(0, steps * batch, batch):
            index = order[start:start + batch]
            xb, yb = tx[index].to(cuda), ty[index].to(cuda)
            if model == "convnet":
                xb = xb.float().mul_(1 / 255).contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            loss.item()                        # read every step, as dltrain does
        torch.cuda.synchronize()
        return (time.perf_counter() - started) / steps

    return run


def main():
    args = parse()
    harness.prepare(args)
    if args.fake:                              # the script's own path, on a machine without a GPU
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from fakedevice import fake_cupy

        sys.modules["cupy"] = fake_cupy()
        args.no_torch = True
    from dltrain.backend import device_module

    cupy = device_module("cuda")               # a clear error (exit 2 from the CLI) without a GPU
    print(f"dltrain on {getattr(cupy, '__version__', 'a stand-in cupy')}; all models in one process")
    ratios = {}
    for model in args.models.split(","):
        batch, steps, samples = SIZES[model]
        steps = args.steps or steps
        x, y = _data(model, steps * batch)
        runners = {"dltrain": dltrain_runner(model, x, y, batch)}
        if not args.no_torch:
            try:
                runners["torch"] = torch_runner(model, x, y, batch)
            except ImportError:
                print("PyTorch is not importable: timing dltrain only", file=sys.stderr)
        times = {name: [] for name in runners}
        for name, run in runners.items():
            run(min(steps, 5))                 # warm-up: kernels compiled, memory pools filled
        for _ in range(args.rounds):
            for name, run in runners.items():
                times[name].append(run(steps))
        per_epoch = {name: statistics.median(t) * -(-samples // batch) for name, t in times.items()}
        line = "  ".join(f"{name} {value:.3f} s/epoch" for name, value in per_epoch.items())
        if "torch" in per_epoch:
            ratios[model] = per_epoch["dltrain"] / per_epoch["torch"]
            verdict = "meets" if ratios[model] <= TARGETS[model] else "misses"
            line += f"  ratio {ratios[model]:.2f}x ({verdict} the target {TARGETS[model]}x)"
        print(f"{model:8s} batch {batch}, {steps} steps x {args.rounds} rounds: {line}")
    return ratios


if __name__ == "__main__":
    main()
