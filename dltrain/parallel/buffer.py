"""The flat gradient buffer: every gradient, the loss's sum and count, and two flags in one array.

Reducing one contiguous array is one allreduce per step, whatever the number of layers. The
buffer is allocated once, at the first step, from the parameters' shapes:

    flat = [grad of param 0 | ... | loss sum | count | diverged | signalled]   (float64 when any
                                                                               parameter is)
The flags are 0 or 1 on each process, so after the sum they count the processes whose loss
diverged and that received SIGINT/SIGTERM: every process takes the same decision at the same
step without a collective of its own.
``pack`` copies the layers' gradients in, ``unpack`` hands back views into the reduced buffer
(the optimizer reads those, so nothing is copied back). With one process the step never packs.
"""
import numpy as np


class GradientBuffer:
    def __init__(self, parameters):
        """``parameters``: (key, param, grad) triples, as ``Model.parameters()`` yields them."""
        params = [(key, param) for key, param, _ in parameters]
        self.keys = [key for key, _ in params]
        self.shapes = [param.shape for _, param in params]
        dtype = np.result_type(np.float32, *[param.dtype for _, param in params])
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.flat = np.zeros(int(self.offsets[-1]) + 4, dtype=dtype)   # (P + 4,)
        self.views = [self.flat[a:b].reshape(shape)
                      for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def pack(self, grads, loss_sum, count, diverged=False, signalled=False):
        """Copy ``grads`` (arrays in parameter order), the loss's sum and count and the flags in."""
        for view, grad in zip(self.views, grads):
            view[...] = grad
        self.flat[-4:] = loss_sum, count, diverged, signalled

    def unpack(self):
        """(gradient views in parameter order, loss sum, count) of the (reduced) buffer."""
        return self.views, self.flat[-4], int(round(float(self.flat[-3])))

    def flags(self):
        """(processes whose loss diverged, processes that were signalled), after the reduction."""
        return int(round(float(self.flat[-2]))), int(round(float(self.flat[-1])))
