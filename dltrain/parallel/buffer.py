"""The flat gradient buffer: every gradient and the loss's sum and count in one array.

Reducing one contiguous array is one allreduce per step, whatever the number of layers. The
buffer is allocated once, at the first step, from the parameters' shapes:

    flat = [grad of param 0 | grad of param 1 | ... | loss sum | count | diverged | stop]
                                                             (float64 when any parameter is)

The two flags ride in the same allreduce: summed over the ranks, a nonzero one means some rank
diverged or was asked to stop at this step, and every rank acts on it at the same step.
``pack`` copies the layers' gradients in, ``unpack`` hands back views into the reduced buffer
(the optimizer reads those, so nothing is copied back). With one process the step never packs.
"""
import numpy as np

TAIL = 4                # loss sum, count, diverged, stop


class GradientBuffer:
    def __init__(self, parameters):
        """``parameters``: (key, param, grad) triples, as ``Model.parameters()`` yields them."""
        params = [(key, param) for key, param, _ in parameters]
        self.keys = [key for key, _ in params]
        self.shapes = [param.shape for _, param in params]
        dtype = np.result_type(np.float32, *[param.dtype for _, param in params])
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.flat = np.zeros(int(self.offsets[-1]) + TAIL, dtype=dtype)   # (P + 4,)
        self.views = [self.flat[a:b].reshape(shape)
                      for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def pack(self, grads, loss_sum, count, diverged=False, stop=False):
        """Copy ``grads`` (arrays in parameter order), the loss's sum and count, and the flags in."""
        for view, grad in zip(self.views, grads):
            view[...] = grad
        self.flat[-TAIL:] = (loss_sum, count, bool(diverged), bool(stop))

    def unpack(self):
        """(gradient views in parameter order, loss sum, count, diverged, stop) of the reduced
        buffer; the flags are True when any rank set them."""
        loss_sum, count, diverged, stop = self.flat[-TAIL:]
        return self.views, loss_sum, int(round(float(count))), bool(diverged), bool(stop)
