"""What makes N processes train one model: the same start, the same batch rows, one check.

- ``join(model, comm)``: rank 0's parameters and saved state (batch normalization's moving
  statistics) copied to every rank, also after a resume; synchronized batch normalization layers
  get the communicator.
- ``share_batch(model, share, total)``: before each training forward, every random layer learns
  which rows of the global batch this process holds (``Layer.random_rows`` draws the global
  batch's numbers and keeps those rows, so N processes drop what one process would).
- ``Checksums``: under ``--debug``, every ``every`` steps the ranks compare a checksum of their
  parameters and the first step where replicas differ is named.
- ``merged_position`` / ``restored_on_root``: a checkpoint written inside an epoch holds the
  running metric states of every rank merged (each rank has seen only its shares); on resume
  rank 0 alone continues from them and the others start empty, so the epoch's end-of-epoch
  merge counts every sample once, on any number of ranks.
"""
import copy

import numpy as np

from dltrain.backend import array_module
from dltrain.errors import DltrainError


def join(model, comm):
    if comm.size == 1:
        return
    for node in model.graph:
        layer = node.layer
        if getattr(layer, "synchronized", False):
            layer.comm = comm
        arrays = {f"params/{k}": v for k, v in layer.params.items()}
        arrays.update({f"state/{k}": v for k, v in layer.state.items()})
        comm.broadcast(arrays)


def random_layers(model):
    return [node.layer for node in model.graph if node.layer.random]


def share_batch(layers, share, total):
    for layer in layers:
        layer.batch_share = (share.start, total)


class ReplicasDiverged(DltrainError):
    exit_code = 1          # a bug: replicas of one run must hold the same bits


class Checksums:
    """Compares a checksum of every parameter across ranks every ``every`` steps."""

    def __init__(self, model, comm, every):
        self.model, self.comm, self.every = model, comm, every

    def check(self, step):
        if self.comm.size == 1 or step % self.every:
            return
        total = sum(float(array_module(p).sum(p, dtype=np.float64)) for _, p, _ in self.model.parameters())
        sums = self.comm.allgather(total)
        if len(set(sums)) > 1:
            raise ReplicasDiverged(
                f"the replicas' parameters differ after step {step}: checksums by rank {sums}",
                fix="this is a bug in dltrain's data parallelism; please report it with the config")


def merged_position(position, comm):
    """``position`` (the trainer's (epoch, batches, total, seen, metrics) inside an epoch) with
    the metrics replaced by copies holding every rank's state merged; as it is on one process
    or at an epoch boundary (None). A collective: every rank calls it (a mid-epoch checkpoint
    is a collective decision)."""
    if position is None or comm.size == 1:
        return position
    epoch, batches, total, seen, metrics = position
    states = comm.allgather({name: metric.state() for name, metric in metrics.items()})
    merged = {}
    for name, metric in metrics.items():
        merged[name] = copy.deepcopy(metric)
        merged[name].reset()
        for state in states:
            merged[name].merge(state[name])
    return epoch, batches, total, seen, merged


def restored_on_root(metrics, comm):
    """After a mid-epoch resume loaded the merged states into every rank's ``metrics``: only
    rank 0 keeps them (the end-of-epoch merge sums the ranks' states)."""
    if comm.size > 1 and not comm.is_root:
        for metric in metrics.values():
            metric.reset()
