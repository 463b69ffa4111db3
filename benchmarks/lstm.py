"""The book's IMDB model (embedding 10,000x32 -> LSTM or GRU 32 -> dense 1 sigmoid) vs PyTorch.

Sequences of 500 token ids, batch 128, RMSprop, float32, binary cross-entropy. Each round trains
``--batches`` batches (default 20) through dltrain's real Trainer and then through PyTorch (same
thread count, same batches), alternating, so a machine shared with other work slows both alike.
Medians per batch are extrapolated to one epoch of 25,000 sequences (196 batches, the IMDB
training set); their ratio is printed. Peak memory (ru_maxrss) is read for dltrain before
PyTorch is imported.

    python benchmarks/lstm.py [--rounds 3] [--batches 20] [--threads N] [--cell lstm|gru] [--no-torch]
    python benchmarks/lstm.py --workers 2        # each dltrain round: 2 MPI ranks x 1 BLAS thread
    # PyTorch installed in another virtual environment (same Python version):
    python benchmarks/lstm.py --torch-site /path/to/torch-venv/lib/python3.11/site-packages
"""
import statistics
import time

import harness

VOCAB, DIM, UNITS, STEPS, BATCH, EPOCH_SAMPLES = 10_000, 32, 32, 500, 128, 25_000


def parse():
    parser = harness.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per framework")
    parser.add_argument("--batches", type=int, default=20, help="batches per round")
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm",
                        help="the recurrent layer (gru: Keras's reset_after, as PyTorch's nn.GRU)")
    return parser.parse_args()


def make_data(batches, comm=None):
    """(x, y): every batch's samples, or with ``comm`` (a rank of several) only its shard."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = batches * BATCH
    lo, hi = harness.shard(n, comm)
    x = harness.drawn(lambda k: rng.integers(1, VOCAB, (k, STEPS)).astype(np.int64), n, (lo, hi))
    y = rng.integers(0, 2, n).astype(np.int64)[lo:hi]
    return x, y


def dltrain_runner(x, y, cell="lstm", comm=None, samples=None):
    """A function that trains one round (every global batch of x; with ``comm``, this rank's
    share of each, (x, y) its shard of ``samples``) through dltrain's Trainer; ``run.trainer``
    is the Trainer."""
    from dltrain.losses import BinaryCrossentropy

    trainer = harness.dltrain_trainer({"input_shape": [STEPS], "layers": [
        {"type": "embedding", "input_dim": VOCAB, "output_dim": DIM},
        {"type": cell, "units": UNITS},
        {"type": "dense", "units": 1, "activation": "sigmoid"}]}, BinaryCrossentropy(), BATCH, comm=comm)
    split = harness.split_of(x, y.reshape(-1, 1).astype("float32"), samples or len(x), comm)
    epoch = [0]

    def run():
        epoch[0] += 1
        started = time.perf_counter()
        trainer.train_epoch(split, epoch[0])
        return time.perf_counter() - started

    run.trainer = trainer
    return run


def torch_runner(x, y, threads, cell="lstm"):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, DIM)
            recurrent = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
            self.recurrent = recurrent(DIM, UNITS, batch_first=True)
            self.dense = torch.nn.Linear(UNITS, 1)

        def forward(self, ids):
            _, state = self.recurrent(self.embedding(ids))
            h = state[0] if cell == "lstm" else state            # LSTM: (h, c); GRU: h
            return self.dense(h[-1])

    model = Net()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001, alpha=0.9, eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    epoch = [0]

    def run():
        epoch[0] += 1
        order = torch.from_numpy(np.random.default_rng(epoch[0]).permutation(len(x)))
        started = time.perf_counter()
        for start in range(0, len(x), BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(model(tx[index]), ty[index])
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
            run = dltrain_runner(*make_data(args.batches, comm), args.cell, comm, args.batches * BATCH)
            return run, run.trainer
        return harness.rank_round(make)
    if args.peaks:                                  # memory only: 1, 2 and 4 ranks
        return harness.peaks(args, __file__)
    x, y = make_data(args.batches)
    job = harness.Job(args, __file__) if args.workers > 1 else None
    times, dltrain_peak = harness.alternate(        # each run: every batch of x, its seconds
        job or dltrain_runner(x, y, args.cell), lambda: torch_runner(x, y, args.torch_threads, args.cell),
        args.rounds, not args.no_torch)
    import numpy as np

    per_epoch = -(-EPOCH_SAMPLES // BATCH) / args.batches
    print(f"embedding {VOCAB}x{DIM} -> {args.cell.upper()} {UNITS} -> dense 1 sigmoid, {STEPS} steps, batch {BATCH}, "
          f"RMSprop, float32; {args.batches} batches per round; {harness.threads_line(args)}; "
          f"numpy {np.__version__}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:8s} median {median / args.batches * 1000:.1f} ms/batch -> "
              f"{median * per_epoch:.1f} s per 25,000-sequence epoch  "
              f"(rounds {', '.join(f'{v:.2f}' for v in values)} s)")
    if job:
        job.report(times["dltrain"])
        harness.print_ratio(times)
        return
    print(f"  dltrain peak RSS {dltrain_peak:.0f} MiB (data {x.nbytes / 2**20:.0f} MiB)")
    from dltrain.parallel import recurrent_helper

    helper_peak = recurrent_helper.peak_mib()
    if helper_peak is not None:
        print(f"  dltrain's recurrent helper process peak RSS {helper_peak:.0f} MiB "
              f"(the second half of each batch's time loops; shared memory counted in both)")
    else:
        print("  dltrain's recurrent helper process: not started")
    harness.print_ratio(times)


if __name__ == "__main__":
    main()
