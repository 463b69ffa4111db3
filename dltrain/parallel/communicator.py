"""The communicator: what the training loop asks of the other processes, and nothing more.

Every process (a *rank*, 0 .. size - 1) runs the same loop on its share of each global batch.
The loop meets the others at four points, each a method here:

- ``share(n)``: which rows of an n-sample global batch this rank takes (a contiguous slice;
  ``share_of(rank, n)`` any rank's);
- ``allreduce_sum(buffer)``: sum a flat float array over all ranks, in place: once per step,
  the gradient sums and the loss's sum and count (parallel/buffer.py packs them);
- ``allgather(value)``: every rank's value (metric states merged at an epoch's end);
- ``any(flag)``: True on every rank when it is True on one (stop, a signal, a NaN), so that
  all ranks take the same decision at the same step;
- ``exchange(send, send_counts, recv_counts)``: an all-to-all of bytes, once per batch when the
  training data is spread over the ranks (parallel/shards.py: the rows of each rank's share
  that another rank holds).

Rank 0 alone writes the run directory (``is_root``; the trainer gives other ranks a writer that
writes nothing). ``SingleProcess`` is the one-process case: every collective returns at once.
``local()`` is the communicator of the ranks on this machine (which GPU a rank takes).

Arrays on a GPU are reduced through the host (``through_host``): copied out, summed by MPI,
copied back; the training step's gradient buffer keeps a host mirror of its own for that.
"""
import numpy as np

from dltrain.backend import array_module


def through_host(buffer, reduce):
    """``reduce(host_array)`` (in place) applied to ``buffer``: a device buffer is copied to the
    host, reduced there and copied back (one copy each way)."""
    xp = array_module(buffer)
    if xp is np:
        reduce(buffer)
        return
    host = xp.asnumpy(buffer)
    reduce(host)
    buffer[...] = xp.asarray(host)


class Communicator:
    rank = 0
    size = 1

    @property
    def is_root(self):
        return self.rank == 0

    def share(self, n):
        """The slice of an n-row global batch that this rank trains on: contiguous, sizes that
        differ by at most one, rank order (so the shares concatenate to the batch)."""
        return self.share_of(self.rank, n)

    def share_of(self, rank, n):
        """``share(n)`` of rank ``rank``."""
        return slice(rank * n // self.size, (rank + 1) * n // self.size)

    def allreduce_sum(self, buffer):
        """Replace ``buffer`` (a flat float array) with its sum over all ranks."""
        raise NotImplementedError

    def allgather(self, value):
        """[value of rank 0, value of rank 1, ...] on every rank."""
        raise NotImplementedError

    def any(self, flag):
        """True on every rank when ``flag`` is True on any of them."""
        raise NotImplementedError

    def broadcast(self, arrays):
        """Rank 0's arrays copied into every rank's ``arrays`` (a dict of arrays), in place."""
        raise NotImplementedError

    def exchange(self, send, send_counts, recv_counts):
        """All-to-all of bytes: ``send`` (flat uint8) holds ``send_counts[r]`` bytes for each rank
        r in rank order; returns the ``recv_counts[r]`` bytes from each rank r, in rank order."""
        raise NotImplementedError

    def local(self):
        """The communicator of the ranks on this machine (rank: the node-local rank). This
        default: every rank is on one machine, as the test-only thread ranks are."""
        return self


class SingleProcess(Communicator):
    """One process: the share is the whole batch and every collective does nothing."""

    def share_of(self, rank, n):
        return slice(0, n)

    def allreduce_sum(self, buffer):
        pass

    def allgather(self, value):
        return [value]

    def any(self, flag):
        return bool(flag)

    def broadcast(self, arrays):
        pass

    def exchange(self, send, send_counts, recv_counts):
        return send
