"""Chunked passes over arrays that may be memory-mapped: finiteness checks and statistics.

A pass over a mapped file reads it in chunks of about ``CHUNK_BYTES`` and tells the kernel after
each chunk that the pages may leave this process (``release``), so resident memory stays flat
however large the file is; the pages stay in the page cache for the next reader.

Rows picked by index (``gather``: batches, held-out splits) are read from the file with plain
reads, not through the mapping: a page fault maps the whole page-cache folio around the byte
touched, and with large folios (ext4 on Linux 6.x) that is up to megabytes per row read
(measured: 256 random 1 KiB rows of a 256 MB file mapped 208 MB), so gathering through the
mapping made resident memory grow with the file again.
"""
import mmap
import os

import numpy as np

from dltrain.errors import DataError

CHUNK_BYTES = 8 << 20


def chunk_rows(array, chunk_bytes=CHUNK_BYTES):
    """Rows per chunk so that one chunk of ``array`` is about ``chunk_bytes``."""
    row = max(int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize, 1)
    return max(chunk_bytes // row, 1)


def release(array):
    """Drop the mapped pages of a memory-mapped array from this process (a no-op otherwise)."""
    handle = getattr(array, "_mmap", None)
    if handle is None and isinstance(getattr(array, "base", None), mmap.mmap):
        handle = array.base
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            handle.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


def _file_rows(array):
    """(file name, byte offset of row 0, bytes per row) of a C-ordered array mapped straight
    from a file (as ``np.load(mmap_mode=...)`` returns it), or None."""
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
            and getattr(array, "filename", None) and array.flags.c_contiguous and array.ndim):
        return None
    row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    return (array.filename, int(array.offset), row_bytes) if row_bytes else None


def gather(array, rows):
    """``array[rows]`` as an in-memory array; a memory-mapped file's rows are read with
    ``readinto`` (runs of consecutive rows in one read), so no page of the mapping is touched."""
    where = _file_rows(array)
    if where is None or not np.size(rows):
        return np.asarray(array[rows])
    name, offset, row_bytes = where
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    rows = np.where(rows < 0, rows + len(array), rows)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(array)):
        raise IndexError(f"row index out of range for {len(array)} rows")
    unique, inverse = np.unique(rows, return_inverse=True)
    out = np.empty((len(unique),) + array.shape[1:], array.dtype)
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    with open(name, "rb", buffering=0) as f:
        for start, end in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(unique)]])):
            f.seek(offset + int(unique[start]) * row_bytes)
            part, done = buffer[int(start) * row_bytes:int(end) * row_bytes], 0
            while done < len(part):
                got = f.readinto(part[done:])
                if not got:
                    raise DataError(f"{name}: the file ended while reading row {int(unique[start])}"
                                    " (it was truncated or replaced after it was opened)",
                                    fix="re-create the file and run again.")
                done += got
    return out if len(unique) == len(rows) and (np.diff(rows) > 0).all() else out[inverse]


def chunks(array, rows=None):
    """(start, chunk) pairs over the first axis, each chunk an in-memory copy."""
    rows = rows or chunk_rows(array)
    for start in range(0, len(array), rows):
        yield start, np.asarray(array[start:start + rows])
        release(array)


def check_finite(array, file, what, allow=False):
    """DataError naming the first NaN or Inf (sample and count) unless ``allow``."""
    if allow or array.dtype.kind not in "fc":
        return array
    bad_total, first = 0, None
    for start, chunk in chunks(array):
        bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        count = int(bad.sum())
        if count and first is None:
            index = int(np.argmax(bad))
            first = (start + index, chunk[index].reshape(-1)[~np.isfinite(chunk[index].reshape(-1))][0])
        bad_total += count
    if first is not None:
        raise DataError(f"{file}: {what} holds non-finite values ({first[1]}) in {bad_total} "
                        f"sample(s), the first at sample {first[0]}",
                        fix="clean the data, or set `allow_nonfinite: true` on the source "
                            "if a later preprocessing step handles them.")
    if array.dtype.itemsize > 4 and array.dtype.kind == "f":
        _check_float32_range(array, file, what)
    return array


def _check_float32_range(array, file, what):
    """Samples are computed in float32 (the pipeline's output): a larger finite value would
    silently become inf there, so it is refused here, by sample."""
    limit = float(np.finfo(np.float32).max)
    for start, chunk in chunks(array):
        flat = np.abs(chunk.reshape(len(chunk), -1))
        big = (np.isfinite(flat) & (flat > limit)).any(axis=1)
        if big.any():
            index = int(np.argmax(big))
            raise DataError(f"{file}: {what} holds values beyond float32's range (|x| > 3.4e38), "
                            f"the first at sample {start + index}",
                            fix="rescale the data; samples are computed in float32.")
