"""A split spread over the ranks: each holds 1/N of its rows; a batch is gathered by one all-to-all.

Under data parallelism each rank trains on its share of every global batch, and a global batch
is random rows of the whole split, so a rank that held the whole split would hold N times what
it reads. Instead rank s keeps the rows at positions ``[s*n//N, (s+1)*n//N)`` of the split (its
*shard*), and for each batch every rank sends each other rank the rows of that rank's share that
lie in its shard: one ``Communicator.exchange`` per batch carries every array of the split
(inputs and labels; per rank, each array's rows in one block), so a row travels once. Every
rank knows the whole batch (the order comes from (seed, epoch)), so every rank computes what it
sends and receives; no counts travel. The rows arrive in the batch's order: what a rank trains on is bit for bit
what it would take from the whole split.

``spread_all(splits, comm)`` is what ``fit`` uses (``spread(split, comm)`` for one split): a
``ShardedSplit`` of each in-memory split on several ranks, the split itself otherwise (one
process; a memory-mapped file, which every rank already reads row by row from the file,
data/arrays.gather; object arrays, whose rows are not bytes). The cost: one all-to-all per
batch (~30 us for the MLP's 64 rows of 3 KB between 2 local ranks) plus the wait for the
slower rank there, a second meeting point in each step beside the gradients' allreduce.
"""
import sys

import numpy as np

from dltrain.data.arrays import chunk_rows


def shard_bounds(n, size):
    """The first position of each rank's shard, and n: shard s is [bounds[s], bounds[s + 1])."""
    return np.array([s * n // size for s in range(size + 1)], dtype=np.int64)


def spreadable(split):
    return (split is not None and not isinstance(split.x, np.memmap) and not isinstance(split.y, np.memmap)
            and all(isinstance(a, np.ndarray) and a.dtype != object for a in (split.x, split.y) if a is not None))


def spread(split, comm):
    """``split`` as this rank's shard of it (a ShardedSplit) on several ranks, where it can be;
    the split's arrays are left as they are (the shard's rows are copied)."""
    if comm.size == 1 or not spreadable(split):
        return split
    mine = split.indices[_bounds_of(split, comm)]
    return ShardedSplit(split.x[mine], None if split.y is None else split.y[mine], len(split), comm, split.name)


def spread_all(splits, comm):
    """{name: split} with every split that can be spread replaced by this rank's shard of it.

    Splits that view the same arrays (a training set and the validation split taken off it) keep
    one copy of the rows any of them needs here. When nothing but these splits holds an array
    and it owns its memory (what the sources load), those rows are moved to its front in place
    and the rest is given back to the system (``_keep_rows``), so the rank never holds the whole
    array and its shard at once; otherwise the rows are copied."""
    if comm.size == 1:
        return dict(splits)
    groups = {}
    for name, split in splits.items():
        if spreadable(split):
            groups.setdefault((id(split.x), id(split.y)), []).append(name)
    result = dict(splits)
    for names in groups.values():
        members = [splits[name] for name in names]
        local = [split.indices[_bounds_of(split, comm)] for split in members]
        rows = np.unique(np.concatenate(local)) if local else np.zeros(0, np.int64)
        x, y, probe = members[0].x, members[0].y, np.empty(0)
        counts = sys.getrefcount(x), sys.getrefcount(y), sys.getrefcount(probe)    # each from a local name
        in_place = _alone(x, members, counts[0], counts[2])
        x = _keep_rows(x, rows, in_place)
        if y is members[0].x:                  # the same array as inputs and targets
            y = x
        elif y is not None:
            in_place = _alone(y, members, counts[1], counts[2])
            y = _keep_rows(y, rows, in_place)
        for name, split, wanted in zip(names, members, local):
            result[name] = ShardedSplit(x, y, len(split), comm, split.name, np.searchsorted(rows, wanted))
    return result


def _bounds_of(split, comm):
    bounds = shard_bounds(len(split), comm.size)
    return slice(int(bounds[comm.rank]), int(bounds[comm.rank + 1]))


def _alone(array, holders, references, probe_references):
    """Whether nothing but the splits ``holders`` refers to ``array``: its reference count, taken
    by the caller from a local name, against that of a new array taken the same way (so the
    interpreter's own references cancel, whatever its version)."""
    held = sum((h.x is array) + (h.y is array) for h in holders)
    return references - held == probe_references and array.flags.owndata and array.flags.c_contiguous \
        and array.flags.writeable


def _keep_rows(array, rows, in_place):
    """``array[rows]`` (``rows`` ascending); ``in_place``: the rows moved to the front of
    ``array`` itself, and its memory beyond them given back (realloc)."""
    if not in_place:
        return array[rows]
    step = chunk_rows(array)
    for start in range(0, len(rows), step):     # rows[j] >= j: no row still to move is overwritten
        part = rows[start:start + step]
        array[start:start + len(part)] = array[part]
    array.resize((len(rows),) + array.shape[1:], refcheck=False)
    return array


class ShardedSplit:
    """This rank's shard of a split of ``n`` rows: shard position i is row ``rows[i]`` of ``x``
    and ``y`` (default: x holds the shard's rows in order); ``take_share`` is collective: every
    rank calls it with the same positions."""

    def __init__(self, x, y, n, comm, name="train", rows=None):
        self.x, self.y, self.n, self.comm, self.name = x, y, n, comm, name
        self.bounds = shard_bounds(n, comm.size)
        self.rows = np.arange(len(x)) if rows is None else np.asarray(rows)    # of x, by shard position
        if len(self.rows) != self.bounds[comm.rank + 1] - self.bounds[comm.rank]:
            raise ValueError(f"rank {comm.rank} holds {len(self.rows)} rows; its shard of {n} has "
                             f"{self.bounds[comm.rank + 1] - self.bounds[comm.rank]}")
        self.arrays_ = [a for a in (x, y) if a is not None]
        self.row_bytes = [int(np.prod(a.shape[1:], dtype=np.int64)) * a.itemsize for a in self.arrays_]
        self.width = sum(self.row_bytes)

    def __len__(self):
        return self.n

    def owner(self, positions):
        """The rank whose shard holds each position."""
        return np.searchsorted(self.bounds, positions, side="right") - 1

    def take_share(self, positions, comm=None):
        """Raw (x, y) of this rank's share of the batch at ``positions`` of the split, the rows
        other ranks hold received from them (``comm``: the split's own, whatever is passed)."""
        positions = np.asarray(positions, dtype=np.int64)
        comm, n = self.comm, len(positions)
        owners = self.owner(positions)
        starts = [comm.share_of(rank, n).start for rank in range(comm.size)] + [n]
        destinations = np.repeat(np.arange(comm.size), np.diff(starts))
        mine = owners == comm.rank        # in batch order, so already grouped by destination
        sent = np.bincount(destinations[mine], minlength=comm.size)         # rows to each rank
        share = owners[starts[comm.rank]:starts[comm.rank + 1]]
        got = np.bincount(share, minlength=comm.size)                       # rows from each rank
        rows = self.rows[positions[mine] - self.bounds[comm.rank]]
        received = comm.exchange(self._pack(rows, sent), (sent * self.width).tolist(), (got * self.width).tolist())
        # from each rank in turn its rows of the share, in batch order: where each one goes
        return self._unpack(received, got, np.argsort(share, kind="stable"))

    def _blocks(self, buffer, counts):
        """(rank, array index, typed view) of each block of ``buffer``: for each rank in turn, its
        ``counts[rank]`` rows of every array, one array after the other."""
        offset = 0
        for rank, count in enumerate(counts):
            for i, (array, width) in enumerate(zip(self.arrays_, self.row_bytes)):
                block = buffer[offset:offset + count * width].view(array.dtype)
                yield rank, i, block.reshape((int(count),) + array.shape[1:])
                offset += count * width

    def _pack(self, rows, counts):
        """The shard's ``rows`` (grouped by the rank they go to, ``counts`` of them each) of every
        array, as bytes: per rank, each array's rows in one block (copies of whole rows)."""
        out = np.empty(len(rows) * self.width, np.uint8)
        firsts = np.concatenate([[0], np.cumsum(counts)])
        for rank, i, block in self._blocks(out, counts):
            np.take(self.arrays_[i], rows[firsts[rank]:firsts[rank + 1]], axis=0, out=block, mode="clip")
        return out

    def _unpack(self, received, counts, where):
        """Each array's rows of the share out of ``received`` (``_pack``'s layout): the i-th row
        received goes to row where[i]."""
        parts = [np.empty((len(where),) + a.shape[1:], a.dtype) for a in self.arrays_]
        firsts = np.concatenate([[0], np.cumsum(counts)])
        for rank, i, block in self._blocks(received, counts):
            parts[i][where[firsts[rank]:firsts[rank + 1]]] = block
        return parts[0], (parts[1] if self.y is not None else None)
