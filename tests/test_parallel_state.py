"""What a checkpoint written inside an epoch keeps of every rank (parallel/replicas.py): the
running metric states of all ranks merged, so that a resumed epoch's metrics are exact on any
number of ranks. Ranks as threads (parallel/threads.py)."""
import numpy as np
import pytest

from dltrain.parallel import replicas
from dltrain.parallel.communicator import SingleProcess
from dltrain.parallel.threads import ThreadGroup
from dltrain.registry import build
from dltrain.training import position

SPECS = ["accuracy", "auc", "precision", {"type": "top_k_accuracy", "k": 2}]
RNG = np.random.default_rng(4)
PRED = RNG.dirichlet(np.ones(3), 96)
TARGET = RNG.integers(0, 3, 96)
BINARY_PRED, BINARY_TARGET = RNG.uniform(size=(96, 1)), RNG.integers(0, 2, (96, 1)).astype(float)


def data(spec):
    return (BINARY_PRED, BINARY_TARGET) if spec in ("auc", "precision") else (PRED, TARGET)


def merge_at_epoch_end(metric, comm):
    """What Trainer._merge does at an epoch's end."""
    states = comm.allgather(metric.state())
    metric.reset()
    for state in states:
        metric.merge(state)
    return metric.result()


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("ranks_after", [1, 2, 3])
def test_a_mid_epoch_checkpoint_of_two_ranks_resumes_with_exact_metrics(spec, ranks_after):
    pred, target = data(spec)
    whole = build("metric", spec)
    whole.update(pred, target)

    def before(comm):           # 4 global batches of 12 rows; each rank updates with its share
        metric = build("metric", spec)
        for start in range(0, 48, 12):
            rows = slice(start + comm.share(12).start, start + comm.share(12).stop)
            metric.update(pred[rows], target[rows])
        at = replicas.merged_position((1, 4, 0.0, 48, {"m": metric}), comm)
        return position.record(at, 0.001)

    records = ThreadGroup(2).run(before)
    assert records[0] == records[1]                          # every rank merged the same states

    def after(comm):            # resume: load the record, continue with the 4 remaining batches
        metric = build("metric", spec)
        position.restore(records[0], 1, {"m": metric})
        replicas.restored_on_root({"m": metric}, comm)
        for start in range(48, 96, 12):
            share = comm.share(12)
            metric.update(pred[start + share.start:start + share.stop], target[start + share.start:start + share.stop])
        return merge_at_epoch_end(metric, comm)

    results = ThreadGroup(ranks_after).run(after) if ranks_after > 1 else [after(SingleProcess())]
    for result in results:
        assert result == pytest.approx(whole.result(), rel=1e-12)


def test_one_process_and_epoch_boundaries_are_left_alone():
    metric = build("metric", "accuracy")
    at = (1, 2, 0.5, 8, {"accuracy": metric})
    assert replicas.merged_position(at, SingleProcess()) is at
    assert replicas.merged_position(None, SingleProcess()) is None
