"""A split spread over the ranks: each holds 1/N of its rows; a batch is gathered by one all-to-all.

Under data parallelism each rank trains on its share of every global batch, and a global batch
is random rows of the whole split, so a rank that held the whole split would hold N times what
it reads. Instead rank s keeps the rows at positions ``[s*n//N, (s+1)*n//N)`` of the split (its
*shard*), and for each batch every rank sends each other rank the rows of that rank's share that
lie in its shard: one ``Communicator.exchange`` per batch, the rows of every array of the split
(inputs and labels) packed side by side, so a row travels once. Every rank knows the whole
batch (the order comes from (seed, epoch)), so every rank computes what it sends and receives;
no counts travel. The rows arrive in the batch's order: what a rank trains on is bit for bit
what it would take from the whole split.

``spread(split, comm)`` is what the trainer's callers use: a ``ShardedSplit`` of an in-memory
split on several ranks, the split itself otherwise (one process; a memory-mapped file, which
every rank already reads row by row from the file, data/arrays.gather; object arrays, whose
rows are not bytes).
"""
import numpy as np


def shard_bounds(n, size):
    """The first position of each rank's shard, and n: shard s is [bounds[s], bounds[s + 1])."""
    return np.array([s * n // size for s in range(size + 1)], dtype=np.int64)


def spreadable(split):
    return (split is not None and not isinstance(split.x, np.memmap) and not isinstance(split.y, np.memmap)
            and all(isinstance(a, np.ndarray) and a.dtype != object for a in (split.x, split.y) if a is not None))


def spread(split, comm):
    """``split`` as this rank's shard of it (a ShardedSplit) on several ranks, where it can be."""
    if comm.size == 1 or not spreadable(split):
        return split
    bounds = shard_bounds(len(split), comm.size)
    mine = split.indices[bounds[comm.rank]:bounds[comm.rank + 1]]
    return ShardedSplit(split.x[mine], None if split.y is None else split.y[mine], len(split), comm, split.name)


class ShardedSplit:
    """This rank's rows of a split of ``n`` rows (``x`` and ``y``: the shard's rows, in position
    order); ``take_share`` is collective: every rank calls it with the same positions."""

    def __init__(self, x, y, n, comm, name="train"):
        self.x, self.y, self.n, self.comm, self.name = x, y, n, comm, name
        self.bounds = shard_bounds(n, comm.size)
        if len(x) != self.bounds[comm.rank + 1] - self.bounds[comm.rank]:
            raise ValueError(f"rank {comm.rank} holds {len(x)} rows; its shard of {n} has "
                             f"{self.bounds[comm.rank + 1] - self.bounds[comm.rank]}")
        self.arrays_ = [a for a in (x, y) if a is not None]
        self.row_bytes = [a[0:1].nbytes if len(a) else int(np.prod(a.shape[1:])) * a.itemsize
                          for a in self.arrays_]

    def __len__(self):
        return self.n

    def owner(self, positions):
        """The rank whose shard holds each position."""
        return np.searchsorted(self.bounds, positions, side="right") - 1

    def take_share(self, positions, comm=None):
        """Raw (x, y) of this rank's share of the batch at ``positions`` of the split, the rows
        other ranks hold received from them (``comm``: the split's own, whatever is passed)."""
        positions = np.asarray(positions, dtype=np.int64)
        comm, width = self.comm, sum(self.row_bytes)
        lo = self.bounds[comm.rank]
        sends, send_counts = [], []
        for rank in range(comm.size):               # the rows of each rank's share that are mine
            wanted = positions[comm.share_of(rank, len(positions))]
            rows = wanted[self.owner(wanted) == comm.rank] - lo
            sends.append(rows)
            send_counts.append(len(rows) * width)
        wanted = positions[comm.share(len(positions))]
        owners = self.owner(wanted)
        recv_counts = np.bincount(owners, minlength=comm.size) * width
        received = comm.exchange(self._pack(np.concatenate(sends)), send_counts, recv_counts.tolist())
        packed = np.empty((len(wanted), width), np.uint8)
        packed[np.argsort(owners, kind="stable")] = received.reshape(len(wanted), width)
        return self._unpack(packed)

    def _pack(self, rows):
        """The shard's ``rows`` of every array, side by side, one row of bytes per row."""
        out = np.empty((len(rows), sum(self.row_bytes)), np.uint8)
        column = 0
        for array, width in zip(self.arrays_, self.row_bytes):
            out[:, column:column + width] = np.ascontiguousarray(array[rows]).view(np.uint8).reshape(len(rows), width)
            column += width
        return out.reshape(-1)

    def _unpack(self, packed):
        parts, column = [], 0
        for array, width in zip(self.arrays_, self.row_bytes):
            part = np.ascontiguousarray(packed[:, column:column + width]).view(array.dtype)
            parts.append(part.reshape((len(packed),) + array.shape[1:]))
            column += width
        return parts[0], (parts[1] if self.y is not None else None)

