"""Shared memory for the recurrent helper: an ``Arena`` is an anonymous memfd mapped here and,
once its descriptor is sent, in the helper process; arrays are carved from it per pass.

Arenas and split caches whose owners are garbage-collected are listed in ``released`` for the
helper to drop at its next request (a collection callback must not talk to the helper: a request
may be waiting for its answer).
"""
import itertools
import mmap
import os
import weakref

import numpy as np

_keys = itertools.count(1)
#: (kind, key) of arenas and caches whose owners are gone
released = []


def new_key():
    """A key unique in this process, shared by an arena or a cache and its helper-side copy."""
    return next(_keys)


class Arena:
    """Shared memory for one layer's split loops: arrays are carved from it per forward pass."""

    def __init__(self, size):
        self.key = new_key()
        self.size = size
        self.fd = None
        self.error = None                    # why there is no shared memory, if there is none
        try:
            self.fd = os.memfd_create(f"dltrain-recurrent-{self.key}")
            os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size)
        except OSError as error:             # no shared memory (limits): a private buffer
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            self.error = error
            self.map = bytearray(size)
        self._base = np.frombuffer(self.map, dtype=np.uint8).ctypes.data
        self.used = 0
        self.mapped_by = None                # the helper that has mapped it
        self.close = weakref.finalize(self, release, "arena", self.key, self.fd)

    def array(self, shape, dtype):
        """A new array of the arena (64-byte aligned); ``reset`` frees them all at once."""
        dtype = np.dtype(dtype)
        offset = -(-self.used // 64) * 64
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if offset + nbytes > self.size:
            raise ValueError(f"arena of {self.size} bytes cannot hold {nbytes} more")
        self.used = offset + nbytes
        return np.ndarray(shape, dtype=dtype, buffer=self.map, offset=offset)

    def reset(self):
        self.used = 0

    def describe(self, view):
        """(arena key, byte offset, shape, strides, dtype) of a view of this arena's memory."""
        return self.key, view.ctypes.data - self._base, view.shape, view.strides, view.dtype.str


def release(kind, key, fd=None):
    """An arena's or a Split's owner is gone: close the file here, let the helper drop it."""
    if fd is not None:
        os.close(fd)
    released.append((kind, key))


def bytes_needed(shapes, itemsize):
    """Bytes of an arena that holds arrays of these shapes, each 64-byte aligned."""
    return sum(-(-int(np.prod(shape)) * itemsize // 64) * 64 for shape in shapes) + 64
