"""What makes N processes train one model: the same start, the same batch rows, one check.

- ``join(model, comm)``: rank 0's parameters and saved state (batch normalization's moving
  statistics) copied to every rank, also after a resume; synchronized batch normalization layers
  get the communicator.
- ``share_batch(model, share, total)``: before each training forward, every random layer learns
  which rows of the global batch this process holds (``Layer.random_rows`` draws the global
  batch's numbers and keeps those rows, so N processes drop what one process would).
- ``Checksums``: under ``--debug``, every ``every`` steps the ranks compare a checksum of their
  parameters and the first step where replicas differ is named.
"""
import numpy as np

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
        total = sum(float(np.sum(p, dtype=np.float64)) for _, p, _ in self.model.parameters())
        sums = self.comm.allgather(total)
        if len(set(sums)) > 1:
            raise ReplicasDiverged(
                f"the replicas' parameters differ after step {step}: checksums by rank {sums}",
                fix="this is a bug in dltrain's data parallelism; please report it with the config")
