"""The --debug replica check (parallel/replicas.py ``Checksums``), with ranks as threads
(parallel/threads.py): replicas whose parameters differ raise ReplicasDiverged naming the step,
equal replicas pass, and the check compares only every ``every`` steps."""
import numpy as np
import pytest

from dltrain.data.dataset import Pipeline, Split
from dltrain.losses import SparseCategoricalCrossentropy
from dltrain.model import Model
from dltrain.optimizers import RMSprop
from dltrain.parallel import replicas
from dltrain.parallel.replicas import Checksums, ReplicasDiverged
from dltrain.parallel.threads import ThreadGroup
from dltrain.random import Streams
from dltrain.training.trainer import Trainer

CONFIG = {"input_shape": [6], "layers": [{"type": "dense", "units": 5, "activation": "relu"},
                                         {"type": "dense", "units": 3, "activation": "softmax"}]}
RNG = np.random.default_rng(0)
X = RNG.random((64, 6), dtype=np.float32)
Y = RNG.integers(0, 3, 64)


def trainer(comm, seed, join=True, every=1):
    """A Trainer of rank ``comm.rank``, its model built from ``seed``; with ``join`` rank 0's
    parameters are broadcast (as fit does), and the replica check runs every ``every`` steps."""
    streams = Streams(seed)
    model = Model.from_config(CONFIG)
    model.build(streams.get("init"), streams)
    if join:
        replicas.join(model, comm)
    result = Trainer(model, SparseCategoricalCrossentropy(), RMSprop(learning_rate=0.01), ["accuracy"],
                     Pipeline([]), streams, batch_size=16, comm=comm)
    result.checksums = Checksums(model, comm, every)
    return result


def test_replicas_that_differ_after_a_step_name_that_step():
    def rank(comm):     # each rank its own initial parameters and no broadcast: they differ
        trainer(comm, seed=comm.rank, join=False).train_epoch(Split(X, Y), 1)

    with pytest.raises(ReplicasDiverged, match="after step 1: checksums by rank") as caught:
        ThreadGroup(2).run(rank)
    assert caught.value.exit_code == 1 and "bug" in caught.value.fix


def test_equal_replicas_pass_the_check_at_every_step():
    def rank(comm):     # different seeds, but rank 0's parameters are broadcast: equal replicas
        run = trainer(comm, seed=comm.rank)
        run.train_epoch(Split(X, Y), 1)
        assert run.step == 4                     # 64 samples / global batch 16: 4 checked steps
        return {key: param.copy() for key, param, _ in run.model.parameters()}

    first, second = ThreadGroup(2).run(rank)
    assert all(np.array_equal(first[key], second[key]) for key in first)


def test_drift_is_found_at_the_first_checked_step_after_it():
    def rank(comm):
        run = trainer(comm, seed=0, every=3)
        checksums = run.checksums
        for step in (1, 2):
            checksums.check(step)
        if comm.rank == 1:                       # rank 1 drifts after step 2 ...
            next(run.model.parameters())[1][0, 0] += 1e-3
        checksums.check(2)                       # ... not a checked step: nothing compared
        checksums.check(3)                       # the next checked one names step 3

    with pytest.raises(ReplicasDiverged, match="after step 3"):
        ThreadGroup(2).run(rank)
