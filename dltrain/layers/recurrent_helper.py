"""A helper process that runs half of a recurrent layer's time loops on another core.

Why a process: a time step is about ten numpy calls on small (U, B) blocks. numpy runs each on
one core, and a second Python *thread* running the other half of the batch would wait for the
GIL between every call (measured: 70 -> 84-89 ms per batch, slower). A second process has its
own interpreter: the LSTM benchmark's loops ran 25 + 19 ms as one batch, 14 + 15 ms as two
halves at once.

When: a layer splits its batch (``Split``) in training, when BLAS may use two or more threads
(the thread budget: ``OPENBLAS_NUM_THREADS`` / the cores), on Linux (memfd and file-descriptor
passing), for loops of at least ``MIN_WORK`` = steps * batch * units and halves of at least
``MIN_HALF`` sequences; ``DLTRAIN_RECURRENT_HELPER=0`` turns it off. The first half always runs
here; the second runs in the helper, or here after it, if the helper cannot be started or fails
(a warning says so once). Either way the two halves compute the same numbers, so the results do
not depend on the helper, only on whether the batch is split.

Shared memory: each splitting layer keeps an ``Arena`` (an anonymous memfd mapped here and in the
helper) for what both halves read or write: the operand [h; 1; x], the mask, the gradient of
the states and the gradient of the step products. Each half's gates and caches stay in the
process that computed them. Messages are pickled tuples over a socket pair; the helper's replies
say "ok" or carry the traceback of its error.
"""
import atexit
import contextlib
import itertools
import mmap
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import traceback
import warnings
import weakref

import numpy as np

from dltrain import blas
from dltrain.layers.recurrent_cells import CELLS

#: smallest steps * batch * units worth splitting (the LSTM benchmark's loops are 2 million)
MIN_WORK = 1 << 19
#: smallest half-batch worth splitting
MIN_HALF = 16
#: seconds to wait for the helper's answer before it counts as failed (its half then runs here)
TIMEOUT = 600
ENVIRONMENT = "DLTRAIN_RECURRENT_HELPER"

_HEADER = struct.Struct("<Q")
_keys = itertools.count(1)
_helper = None          # the running _Helper, or False once it failed (then halves run here)
#: arenas and layer caches whose owners are gone, for the helper to drop at the next request
#: (a garbage-collection callback must not talk to it: a request may be waiting for its answer)
_released = []


def enabled():
    """Whether a layer may split its loops now (see the module docstring)."""
    return (os.environ.get(ENVIRONMENT, "1") != "0" and sys.platform.startswith("linux")
            and hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and (blas.threads() or 1) >= 2)


class Arena:
    """Shared memory for one layer's split loops: arrays are carved from it per forward pass."""

    def __init__(self, size):
        self.key = next(_keys)
        self.size = size
        self.fd = None
        try:
            self.fd = os.memfd_create(f"dltrain-recurrent-{self.key}")
            os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size)
        except OSError as error:             # no shared memory (limits): both halves run here
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            _fail(error)
            self.map = bytearray(size)
        self._base = np.frombuffer(self.map, dtype=np.uint8).ctypes.data
        self.used = 0
        self.mapped_by = None                # the helper that has mapped it
        self.close = weakref.finalize(self, _release, "arena", self.key, self.fd)

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


def _release(kind, key, fd=None):
    """An arena's or a Split's owner is gone: close the file here, let the helper drop it."""
    if fd is not None:
        os.close(fd)
    _released.append((kind, key))


def _bytes_needed(shapes, itemsize):
    return sum(-(-int(np.prod(shape)) * itemsize // 64) * 64 for shape in shapes) + 64


# -- the helper process, seen from here ------------------------------------------------------------

class HelperError(RuntimeError):
    """The helper process failed; its traceback is the message."""


class _Helper:
    def __init__(self):
        here, there = socket.socketpair()
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                           PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from dltrain.layers.recurrent_helper import serve; serve({there.fileno()})"],
            pass_fds=(there.fileno(),), env=environment, stdin=subprocess.DEVNULL)
        there.close()
        self.socket = here
        self.socket.settimeout(TIMEOUT)
        self.call(("hello",))

    def send(self, message, fds=()):
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        packet = _HEADER.pack(len(data)) + data
        if fds:
            sent = socket.send_fds(self.socket, [packet], list(fds))
            packet = packet[sent:]
        self.socket.sendall(packet)

    def receive(self):
        message, _ = _receive(self.socket)
        if message[0] == "error":
            raise HelperError(message[1])
        return message

    def call(self, message, fds=()):
        self.send(message, fds)
        return self.receive()

    def close(self):
        self.socket.close()                  # the helper reads end-of-file and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _get_helper():
    """The running helper, started on first use; None after a failure (halves then run here)."""
    global _helper
    if _helper is None:
        try:
            _helper = _Helper()
        except (OSError, HelperError, EOFError) as error:
            _fail(error)
    return _helper or None


def _fail(error):
    global _helper
    if _helper:
        try:
            _helper.close()
        except OSError:
            pass
    _helper = False
    warnings.warn(f"the recurrent helper process stopped ({str(error).strip().splitlines()[-1]}); "
                  "both halves of the batch run in this process from now on (same results, slower)",
                  RuntimeWarning, stacklevel=3)


def peak_mib():
    """The running helper's peak resident memory in MiB (VmHWM), or None."""
    if not _helper:
        return None
    try:
        with open(f"/proc/{_helper.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def shutdown():
    """Stop the helper (at exit, or to start a fresh one later)."""
    global _helper
    if _helper:
        _helper.close()
    _helper = None


atexit.register(shutdown)


class Split:
    """A layer's time loops over two halves of its batch: the first here, the second in the
    helper process (or here after it failed). The layer takes its shared arrays from ``array``
    after ``begin``. One helper serves the whole process: train from one thread at a time."""

    def __init__(self):
        self.key = next(_keys)
        self.arena = None
        self._remote = False                 # whether the helper holds the second half's cache
        weakref.finalize(self, _release, "cache", self.key)

    def begin(self, shapes, dtype):
        """Make room for this forward pass's shared arrays (their shapes, in any order)."""
        size = _bytes_needed(shapes, np.dtype(dtype).itemsize)
        if self.arena is None or self.arena.size < size:
            if self.arena is not None:
                self.arena.close()
            self.arena = Arena(size)
        self.arena.reset()

    def array(self, shape, dtype):
        return self.arena.array(shape, dtype)

    def _helper_with_arena(self):
        helper = _get_helper() if self.arena.fd is not None else None
        if helper and _released:
            try:
                helper.call(("release", _released[:]))
                _released.clear()
            except (OSError, HelperError, EOFError) as error:
                _fail(error)
                return None
        if helper and self.arena.mapped_by is not helper:
            try:
                helper.call(("arena", self.arena.key, self.arena.size), fds=(self.arena.fd,))
                self.arena.mapped_by = helper
            except (OSError, HelperError, EOFError) as error:
                _fail(error)
                return None
        return helper

    def _describe(self, array):
        return None if array is None else self.arena.describe(array)

    def forward(self, cell, weights, operand, units, mask, kernels):
        """h (T+1, U, B) and the cache of both halves; operand and mask are arena arrays."""
        first, second = _halves(operand.shape[2])
        loop = CELLS[cell][0]
        self._forward_inputs = (cell, weights, operand, units, mask, kernels)
        blas.stop_workers()
        helper = self._helper_with_arena()
        self._remote = helper is not None and _post(helper, (
            "forward", self.key, cell, weights, units, self._describe(operand[..., second]),
            self._describe(_part(mask, second)), kernels))
        with _resync_on_interrupt():
            _, cache = loop(weights, operand[..., first], units, _part(mask, first), **kernels)
            self._remote = self._remote and _collect(helper)
        other = None
        if not self._remote:
            _, other = loop(weights, operand[..., second], units, _part(mask, second), **kernels)
        return operand[:, :units], (cache, other)

    def backward(self, cell, grad_h, grad_last, h, caches, mask, kernels, out):
        """Both halves' backward loops into ``out`` (T, width, B), an arena array, as are
        ``grad_h`` and ``mask``; ``grad_last`` (U, B) is sent by value."""
        first, second = _halves(h.shape[2])
        loop = CELLS[cell][1]
        blas.stop_workers()
        remote = self._remote and _helper and _post(_helper, (
            "backward", self.key, cell, self._describe(_part(grad_h, second)),
            None if grad_last is None else np.ascontiguousarray(grad_last[:, second]),
            self._describe(_part(mask, second)), self._describe(out[..., second]), kernels))
        with _resync_on_interrupt():
            loop(_part(grad_h, first), _part(grad_last, first), h[..., first], caches[0], _part(mask, first),
                 out=out[..., first], **kernels)
            remote = remote and _collect(_helper)
        if not remote:
            other = caches[1]
            if other is None:                # the helper held it: that half's forward again
                f_cell, weights, operand, units, f_mask, f_kernels = self._forward_inputs
                _, other = CELLS[f_cell][0](weights, operand[..., second], units, _part(f_mask, second),
                                            **f_kernels)
            loop(_part(grad_h, second), _part(grad_last, second), h[..., second], other,
                 _part(mask, second), out=out[..., second], **kernels)
        self._remote = False
        return out


def _post(helper, message):
    """Send a request; False (and no helper from now on) if that fails."""
    try:
        helper.send(message)
        return True
    except OSError as error:
        _fail(error)
        return False


def _collect(helper):
    """Wait for the helper's answer to the request posted; False if it failed."""
    try:
        helper.receive()
        return True
    except (OSError, HelperError, EOFError) as error:
        _fail(error)
        return False


@contextlib.contextmanager
def _resync_on_interrupt():
    """If anything but the helper's own failures interrupts a posted request (Ctrl-C, an error
    in this half), stop the helper so that no stale answer is read later; the next split
    starts a fresh one."""
    try:
        yield
    except BaseException:
        shutdown()
        raise


def _halves(batch):
    middle = batch // 2
    return slice(0, middle), slice(middle, batch)


def _part(array, half):
    return None if array is None else array[..., half]


# -- the helper process itself ---------------------------------------------------------------------

def _receive(sock):
    """(message, file descriptors) of the next packet; EOFError at the end of the stream."""
    header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, 4)
    while len(header) < _HEADER.size:
        more = sock.recv(_HEADER.size - len(header))
        if not more:
            raise EOFError("the other side closed the connection")
        header += more
    (length,) = _HEADER.unpack(header)
    data = bytearray()
    while len(data) < length:
        more = sock.recv(min(length - len(data), 1 << 20))
        if not more:
            raise EOFError("the other side closed the connection")
        data += more
    return pickle.loads(data), fds


def _view(arenas, description):
    if description is None:
        return None
    key, offset, shape, strides, dtype = description
    return np.ndarray(shape, dtype=np.dtype(dtype), buffer=arenas[key], offset=offset, strides=strides)


def _handle(message, fds, arenas, caches):
    kind = message[0]
    if kind == "hello":
        return None
    if kind == "count":                                  # for tests: what it holds
        return len(arenas), len(caches)
    if kind == "arena":
        _, key, size = message
        arenas[key] = mmap.mmap(fds[0], size)
        os.close(fds[0])
    elif kind == "release":
        for what, key in message[1]:
            (arenas if what == "arena" else caches).pop(key, None)
    elif kind == "forward":
        _, key, cell, weights, units, operand, mask, kernels = message
        operand = _view(arenas, operand)
        h, cache = CELLS[cell][0](weights, operand, units, _view(arenas, mask), **kernels)
        caches[key] = (h, cache)
    elif kind == "backward":
        _, key, cell, grad_h, grad_last, mask, out, kernels = message
        h, cache = caches.pop(key)
        CELLS[cell][1](_view(arenas, grad_h), grad_last, h, cache, _view(arenas, mask),
                       out=_view(arenas, out), **kernels)
    else:
        raise ValueError(f"unknown message {kind!r}")
    return None


def serve(fd):
    """The helper's loop: answer each message until the layer's process closes the socket."""
    from dltrain.allocator import tune as _tune_allocator

    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is for the training process
    _tune_allocator()                                    # as fit does: no page faults per batch
    sock = socket.socket(fileno=fd)
    arenas, caches = {}, {}
    while True:
        try:
            message, fds = _receive(sock)
        except (EOFError, ConnectionError):
            return
        try:
            with np.errstate(over="ignore"):
                reply = ("ok", _handle(message, fds, arenas, caches))
        except Exception:                                # sent back and raised there
            reply = ("error", traceback.format_exc())
        data = pickle.dumps(reply)
        sock.sendall(_HEADER.pack(len(data)) + data)

