"""Training data spread over the ranks (parallel/shards.py), with ranks as threads.

Each rank holds 1/N of a split's rows; a batch's shares are gathered by one all-to-all. What a
rank gets must be exactly what it would take from the whole split (same rows, same order, same
bytes) for every dtype and shape a split holds, for batches smaller than the number of ranks,
and for splits that do not divide evenly; a training run on spread data must be bit for bit the
run on the whole split.
"""
import numpy as np
import pytest

from dltrain.data.dataset import Pipeline, Split
from dltrain.losses import SparseCategoricalCrossentropy
from dltrain.model import Model
from dltrain.optimizers import RMSprop
from dltrain.parallel import replicas, shards
from dltrain.parallel.communicator import SingleProcess
from dltrain.parallel.threads import ThreadGroup
from dltrain.random import Streams
from dltrain.training.trainer import Trainer

RNG = np.random.default_rng(7)


def whole_and_spread(split, size, batches):
    """[(whole split's share, spread split's share) per batch] for each rank of ``size``."""
    def rank(comm):
        spread = shards.spread(split, comm)
        assert isinstance(spread, shards.ShardedSplit)
        bounds = shards.shard_bounds(len(split), size)
        assert len(spread.x) == bounds[comm.rank + 1] - bounds[comm.rank]       # 1/N of the rows
        return [(split.take_share(positions, comm), spread.take_share(positions, comm)) for positions in batches]

    return ThreadGroup(size).run(rank)


def assert_same(a, b):
    assert (a is None) == (b is None)
    if a is not None:
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("kind", ["float_rows", "images_int_labels", "strings", "no_labels", "one_hot_float64"])
def test_a_rank_gets_exactly_the_rows_it_would_take_from_the_whole_split(size, kind):
    n = 103                                              # not a multiple of 2, 3 or 4
    x, y = {
        "float_rows": (RNG.random((n, 5), dtype=np.float32), RNG.integers(0, 3, n)),
        "images_int_labels": (RNG.integers(0, 255, (n, 4, 3, 2), dtype=np.uint8), RNG.integers(0, 9, n).astype(np.int32)),
        "strings": (np.array([f"text {i} " * (i % 4) for i in range(n)]), RNG.integers(0, 2, n)),
        "no_labels": (RNG.random((n, 3)), None),
        "one_hot_float64": (RNG.random((n, 2)), np.eye(4)[RNG.integers(0, 4, n)]),
    }[kind]
    indices = RNG.permutation(n + 20)[:n] % n if kind == "strings" else None    # a split of a split
    split = Split(x, y, indices)
    order = RNG.permutation(n)
    # batches of 16, a last one of 7, a batch smaller than the ranks (empty shares), one of 1
    batches = [order[s:s + 16] for s in range(0, n, 16)] + [order[:size - 1], order[5:6], np.arange(n)]
    for rank_results in whole_and_spread(split, size, batches):
        for (wx, wy), (sx, sy) in rank_results:
            assert_same(wx, sx)
            assert_same(wy, sy)


def test_one_process_and_memory_mapped_files_are_not_spread(tmp_path):
    x = RNG.random((20, 3), dtype=np.float32)
    split = Split(x, RNG.integers(0, 2, 20))
    assert shards.spread(split, SingleProcess()) is split
    np.save(tmp_path / "x.npy", x)
    mapped = Split(np.load(tmp_path / "x.npy", mmap_mode="r"), RNG.integers(0, 2, 20))
    objects = Split(np.array([object()] * 20, dtype=object), None)
    assert shards.spread(None, SingleProcess()) is None

    def rank(comm):
        return shards.spread(mapped, comm) is mapped, shards.spread(objects, comm) is objects, \
            isinstance(shards.spread(split, comm), shards.ShardedSplit)

    assert ThreadGroup(2).run(rank) == [(True, True, True)] * 2


CONFIG = {"input_shape": [6], "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                         {"type": "dropout", "rate": 0.3},
                                         {"type": "dense", "units": 3, "activation": "softmax"}]}


def train(comm, split, validation):
    streams = Streams(5)
    model = Model.from_config(CONFIG)
    model.build(streams.get("init"), streams)
    replicas.join(model, comm)
    trainer = Trainer(model, SparseCategoricalCrossentropy(), RMSprop(learning_rate=0.01), ["accuracy"],
                      Pipeline([]), streams, epochs=3, batch_size=24, comm=comm)
    history = trainer.fit(split, validation)
    return history, {key: param.copy() for key, param, _ in model.parameters()}


def test_training_on_spread_data_is_bit_for_bit_training_on_the_whole_split():
    """3 epochs of 2 ranks, dropout, a shuffled order, a short last batch, a validation split."""
    x, y = RNG.random((130, 6), dtype=np.float32), RNG.integers(0, 3, 130)
    data, held = Split(x, y, np.arange(100)), Split(x, y, np.arange(100, 130), "validation")

    whole = ThreadGroup(2).run(lambda comm: train(comm, data, held))
    spread = ThreadGroup(2).run(lambda comm: train(comm, shards.spread(data, comm), shards.spread(held, comm)))
    for (history_a, params_a), (history_b, params_b) in zip(whole, spread):
        assert [{k: v for k, v in h.items() if k != "seconds"} for h in history_a] == \
            [{k: v for k, v in h.items() if k != "seconds"} for h in history_b]
        assert all(np.array_equal(params_a[key], params_b[key]) for key in params_a)


def test_spread_all_keeps_one_copy_for_splits_of_the_same_arrays_and_gives_the_rest_back():
    """A training split and the validation split taken off it: each rank keeps the rows either
    needs, once; arrays nothing else holds are shrunk in place (no whole-array copy), an array
    something else holds is copied and left intact; every share is what the whole split gives."""
    n = 90
    order = RNG.permutation(n)

    def loaded(kept_elsewhere):
        """The splits as fit has them: arrays held by the splits alone (but ``kept_elsewhere``)."""
        x, y = np.random.default_rng(1).random((n, 4)), np.random.default_rng(2).integers(0, 3, n)
        return {"train": Split(x, y, np.sort(order[:70])), "validation": Split(x, y, np.sort(order[70:]), "validation"),
                "test": Split(kept_elsewhere, y[:n].copy(), None, "test"), "none": None}

    def rank(comm):
        kept_elsewhere = RNG.random((n, 2))
        kept_before = kept_elsewhere.copy()
        splits = loaded(kept_elsewhere)
        wholes = {name: Split(s.x.copy(), s.y.copy(), s.indices, s.name) for name, s in splits.items()
                  if s is not None and name != "test"}
        spread = shards.spread_all(splits, comm)
        assert spread["none"] is None
        assert spread["train"].x is spread["validation"].x          # one copy of the rows
        assert spread["train"].x is splits["train"].x               # shrunk in place ...
        assert len(spread["train"].x) < n                           # ... to this rank's rows
        assert spread["test"].x is not kept_elsewhere                 # copied ...
        assert np.array_equal(kept_elsewhere, kept_before)           # ... and left intact
        results = []
        for name, whole in wholes.items():
            for positions in (order[:len(whole)] % len(whole), np.arange(len(whole))):
                a, b = whole.take_share(positions, comm), spread[name].take_share(positions, comm)
                results.append(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
        return all(results), len(spread["train"].x)

    for size in (2, 3):
        results = ThreadGroup(size).run(rank)
        assert all(same for same, _ in results)
        assert sum(rows for _, rows in results) == n                # every row on exactly one rank
