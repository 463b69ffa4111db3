"""The flat gradient buffer: every gradient, the loss's sum and count, and two flags in one array.

Reducing one contiguous array is one allreduce per step, whatever the number of layers. The
buffer is allocated once, at the first step, from the parameters' shapes, where the parameters
live (the host, or a GPU):

    flat = [grad of param 0 | ... | loss sum | count | diverged | signalled]   (float64 when any
                                                                               parameter is)
The flags are 0 or 1 on each process, so after the sum they count the processes whose loss
diverged and that received SIGINT/SIGTERM: every process takes the same decision at the same
step without a collective of its own.
``pack`` copies the layers' gradients in, ``reduce`` sums the buffer over the processes,
``unpack`` hands back views into the reduced buffer (the optimizer reads those, so nothing is
copied back). With one process the step never packs.

On a GPU the reduction goes device -> host -> MPI -> device: one copy of the whole buffer into
a host mirror allocated once (page-locked when CuPy can have it, so the copies run at full
speed), the MPI allreduce of the mirror, one copy back. The loss sum, count and flags are read
from the mirror, so the step reads nothing else back from the device. (No CUDA-aware MPI path:
the MPICH wheel of dltrain[mpi] is not built with CUDA.)
"""
import numpy as np

from dltrain.backend import array_module


def _host_mirror(xp, size, dtype):
    """A host array for the device buffer's copies: page-locked under CuPy, else plain."""
    if getattr(xp, "__name__", "") == "cupy":
        try:
            import cupyx

            return cupyx.empty_pinned((size,), dtype=dtype)
        except Exception:               # no pinned memory to be had: a plain array works too
            pass
    return np.empty(size, dtype=dtype)


class GradientBuffer:
    def __init__(self, parameters):
        """``parameters``: (key, param, grad) triples, as ``Model.parameters()`` yields them."""
        params = [(key, param) for key, param, _ in parameters]
        self.keys = [key for key, _ in params]
        self.shapes = [param.shape for _, param in params]
        self.xp = xp = array_module(params[0][1]) if params else np
        dtype = np.result_type(np.float32, *[param.dtype for _, param in params])
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        size = int(self.offsets[-1]) + 4
        self.flat = xp.zeros(size, dtype=dtype)                         # (P + 4,)
        self.host = None if xp is np else _host_mirror(xp, size, dtype)  # the device's mirror
        self.views = [self.flat[a:b].reshape(shape)
                      for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def pack(self, grads, loss_sum, count, diverged=False, signalled=False):
        """Copy ``grads`` (arrays in parameter order), the loss's sum and count and the flags in."""
        for view, grad in zip(self.views, grads):
            view[...] = grad
        for index, value in zip(range(-4, 0), (loss_sum, count, diverged, signalled)):
            self.flat[index] = value               # a device scalar stays on the device

    def reduce(self, comm):
        """Sum the buffer over ``comm``'s processes, in place (on a device: through the host)."""
        if self.host is None:
            comm.allreduce_sum(self.flat)
            return
        self.xp.asnumpy(self.flat, out=self.host)                    # device -> host, once
        comm.allreduce_sum(self.host)
        self.flat[...] = self.xp.asarray(self.host)                  # host -> device, once

    def _tail(self):
        """The loss sum, count and flags as host numbers (from the mirror on a device)."""
        return self.flat[-4:] if self.host is None else self.host[-4:]

    def unpack(self):
        """(gradient views in parameter order, loss sum, count) of the (reduced) buffer."""
        tail = self._tail()
        return self.views, tail[0], int(round(float(tail[1])))

    def flags(self):
        """(processes whose loss diverged, processes that were signalled), after the reduction."""
        tail = self._tail()
        return int(round(float(tail[2]))), int(round(float(tail[3])))
