"""Chunked passes over arrays that may be memory-mapped: finiteness checks and statistics.

A pass over a mapped file reads it in chunks of about ``CHUNK_BYTES`` and tells the kernel after
each chunk that the pages may leave this process (``release``), so resident memory stays flat
however large the file is; the pages stay in the page cache for the next reader.
"""
import mmap

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
    return array
