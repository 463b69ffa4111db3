"""The communicator: what the training loop asks of the other processes, and nothing more.

Every process (a *rank*, 0 .. size - 1) runs the same loop on its share of each global batch.
The loop meets the others at four points, each a method here:

- ``share(n)``: which rows of an n-sample global batch this rank takes (a contiguous slice);
- ``allreduce_sum(buffer)``: sum a flat float array over all ranks, in place: once per step,
  the gradient sums and the loss's sum and count (parallel/buffer.py packs them);
- ``allgather(value)``: every rank's value (metric states merged at an epoch's end);
- ``any(flag)``: True on every rank when it is True on one (a signal at an epoch's start), so
  that all ranks take the same decision at the same point.

Rank 0 alone writes the run directory (``is_root``; api.fit gives other ranks a writer that
writes nothing), and every rank starts from rank 0's weights (``broadcast`` after the build).
``SingleProcess`` is the one-process case: every collective returns at once.

Where the loop meets a communicator: ``Step.reduce_gradients`` (``allreduce_sum`` of the flat
buffer, which also carries each rank's divergence and stop flags, so a NaN or a signal on one
rank stops all at the same step with no collective of its own), ``Trainer._results``
(``allgather`` of the loss sums and metric states, merged exactly), ``Trainer._check_signal``
at an epoch's start (``any``) and ``Trainer.train_epoch``/``evaluate`` (``share``). Left to the data-parallel issue: each rank
augments its share with the batch's augmentation stream and draws dropout from its layer's
stream (so shares are not augmented or dropped out as one process would); batch normalization
normalizes each share by its own statistics; a resumed rank reads the checkpoint itself.
"""


class Communicator:
    rank = 0
    size = 1

    @property
    def is_root(self):
        return self.rank == 0

    def share(self, n):
        """The slice of an n-row global batch that this rank trains on: contiguous, sizes that
        differ by at most one, rank order (so the shares concatenate to the batch)."""
        return slice(self.rank * n // self.size, (self.rank + 1) * n // self.size)

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


class SingleProcess(Communicator):
    """One process: the share is the whole batch and every collective does nothing."""

    def share(self, n):
        return slice(0, n)

    def allreduce_sum(self, buffer):
        pass

    def allgather(self, value):
        return [value]

    def any(self, flag):
        return bool(flag)

    def broadcast(self, arrays):
        pass
