"""A helper process that runs half of a recurrent layer's time loops on another core.

The recurrent layers see one narrow interface, ``Split``: ``Split.worth(batch, work)``, then per
pass ``begin`` (room for the shared arrays), ``array``, ``forward(loops, ...)`` and
``backward(loops, ...)``, where ``loops`` is the layer's (forward, backward) pair of loop
functions. This module and the process side (``helper_process``) know nothing else of layers;
it lives outside ``layers/`` because it is process machinery, not maths (issue 12).

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

Shared memory: each splitting layer keeps an ``Arena`` (``shared_memory``: an anonymous memfd
mapped here and in the helper) for what both halves read or write: the operand [h; 1; x], the mask, the gradient of
the states and the gradient of the step products. Each half's gates and caches stay in the
process that computed them. Messages are pickled tuples over a socket pair; the helper's replies
say "ok" or carry the traceback of its error.
"""
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import warnings
import weakref

import numpy as np

from dltrain import blas
from dltrain.parallel import helper_process, shared_memory
from dltrain.parallel.shared_memory import Arena, bytes_needed

#: smallest steps * batch * units worth splitting (the LSTM benchmark's loops are 2 million)
MIN_WORK = 1 << 19
#: smallest half-batch worth splitting
MIN_HALF = 16
#: seconds to wait for the helper's answer before it counts as failed (its half then runs here)
TIMEOUT = 600
ENVIRONMENT = "DLTRAIN_RECURRENT_HELPER"

_helper = None          # the running _Helper, or False once it failed (then halves run here)


def enabled():
    """Whether a layer may split its loops now (see the module docstring)."""
    return (os.environ.get(ENVIRONMENT, "1") != "0" and sys.platform.startswith("linux")
            and hasattr(os, "memfd_create") and hasattr(socket, "send_fds") and (blas.threads() or 1) >= 2)


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
            [sys.executable, "-c", f"from dltrain.parallel.helper_process import serve; serve({there.fileno()})"],
            pass_fds=(there.fileno(),), env=environment, stdin=subprocess.DEVNULL)
        there.close()
        self.socket = here
        self.socket.settimeout(TIMEOUT)
        self.call(("hello",))

    def send(self, message, fds=()):
        packet = helper_process.packet(message)
        if fds:
            sent = socket.send_fds(self.socket, [packet], list(fds))
            packet = packet[sent:]
        self.socket.sendall(packet)

    def receive(self):
        message, _ = helper_process.receive(self.socket)
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

    @staticmethod
    def worth(batch, work):
        """Whether a training pass over ``batch`` sequences and ``work`` = steps * batch * units
        should split (see the module docstring)."""
        return batch >= 2 * MIN_HALF and work >= MIN_WORK and enabled()

    def __init__(self):
        self.key = shared_memory.new_key()
        self.arena = None
        self._remote = False                 # whether the helper holds the second half's cache
        weakref.finalize(self, shared_memory.release, "cache", self.key)

    def begin(self, shapes, dtype):
        """Make room for this forward pass's shared arrays (their shapes, in any order)."""
        size = bytes_needed(shapes, np.dtype(dtype).itemsize)
        if self.arena is None or self.arena.size < size:
            if self.arena is not None:
                self.arena.close()
            self.arena = Arena(size)
            if self.arena.error is not None:     # no shared memory (limits): both halves run here
                _fail(self.arena.error)
        self.arena.reset()

    def array(self, shape, dtype):
        return self.arena.array(shape, dtype)

    def _helper_with_arena(self):
        helper = _get_helper() if self.arena.fd is not None else None
        released = shared_memory.released
        if helper and released:
            try:
                helper.call(("release", released[:]))
                released.clear()
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

    def forward(self, loops, weights, operand, units, mask, kernels):
        """h (T+1, U, B) and the cache of both halves of ``loops[0]`` (a module-level loop
        function: the helper is sent it by reference); operand and mask are arena arrays."""
        first, second = _halves(operand.shape[2])
        loop = loops[0]
        self._forward_inputs = (loops, weights, operand, units, mask, kernels)
        blas.stop_workers()
        helper = self._helper_with_arena()
        self._remote = helper is not None and _post(helper, (
            "forward", self.key, loop, weights, units, self._describe(operand[..., second]),
            self._describe(_part(mask, second)), kernels))
        with _resync_on_interrupt():
            _, cache = loop(weights, operand[..., first], units, _part(mask, first), **kernels)
            self._remote = self._remote and _collect(helper)
        other = None
        if not self._remote:
            _, other = loop(weights, operand[..., second], units, _part(mask, second), **kernels)
        return operand[:, :units], (cache, other)

    def backward(self, loops, grad_h, grad_last, h, caches, mask, kernels, out):
        """Both halves' backward loops (``loops[1]``) into ``out`` (T, width, B), an arena array,
        as are ``grad_h`` and ``mask``; ``grad_last`` (U, B) is sent by value."""
        first, second = _halves(h.shape[2])
        loop = loops[1]
        blas.stop_workers()
        remote = self._remote and _helper and _post(_helper, (
            "backward", self.key, loop, self._describe(_part(grad_h, second)),
            None if grad_last is None else np.ascontiguousarray(grad_last[:, second]),
            self._describe(_part(mask, second)), self._describe(out[..., second]), kernels))
        with _resync_on_interrupt():
            loop(_part(grad_h, first), _part(grad_last, first), h[..., first], caches[0], _part(mask, first),
                 out=out[..., first], **kernels)
            remote = remote and _collect(_helper)
        if not remote:
            other = caches[1]
            if other is None:                # the helper held it: that half's forward again
                f_loops, weights, operand, units, f_mask, f_kernels = self._forward_inputs
                _, other = f_loops[0](weights, operand[..., second], units, _part(f_mask, second),
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
