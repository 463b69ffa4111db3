"""Global pooling: the mean or maximum over all positions of each channel (channels-last).

The 1-D mean honours a mask (only real time steps count); the maximum routes each gradient to
the first position holding it, with one put per (sample, channel).
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers.base import Layer
from dltrain.registry import register


class _GlobalPooling(Layer):
    rank = 2

    def __init__(self, keepdims=False):
        super().__init__()
        self.keepdims = check.boolean("keepdims", keepdims)

    def build(self, input_shape, rng):
        hint = "give it (steps, channels)" if self.rank == 1 else "give it (height, width, channels) images"
        shape = check.rank(self, input_shape, self.rank + 1, hint=hint)
        return (*(1,) * self.rank, shape[-1]) if self.keepdims else (shape[-1],)

    def _finish(self, y):
        return y.reshape(y.shape[0], *(1,) * self.rank, y.shape[-1]) if self.keepdims else y

    def compute_mask(self, x, mask):
        return None


@register("global_average_pooling2d")
class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width of each channel.

    Args:
        keepdims: keep the pooled axes with size 1.

    Shapes: (batch, height, width, channels) -> (batch, channels)
    """

    examples = (({}, (3, 4, 2)), ({"keepdims": True}, (2, 2, 3)))

    def forward(self, x, training=False):
        self._shape = x.shape
        return self._finish(x.mean(axis=(1, 2)))

    def backward(self, grad_y):
        b, h, w, c = self._shape
        grad = grad_y.reshape(b, 1, 1, c) / (h * w)
        return array_module(grad).broadcast_to(grad, self._shape).copy()


@register("global_average_pooling1d")
class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over time steps of each channel; with a mask, over the real (unmasked) steps only.

    Args:
        keepdims: keep the time axis with size 1.

    Shapes: (batch, steps, channels) -> (batch, channels)
    """

    rank = 1
    examples = (({}, (5, 3)), ({"keepdims": True}, (4, 2)))

    def forward(self, x, training=False):
        self._shape = x.shape
        mask = self.input_mask
        if mask is None:
            self._weights = array_module(x).full((1, x.shape[1], 1), 1 / x.shape[1], dtype=x.dtype)
        else:
            m = mask.astype(x.dtype)[:, :, None]                    # (B, T, 1)
            self._weights = m / m.sum(axis=1, keepdims=True).clip(1, None)
        return self._finish((x * self._weights).sum(axis=1))

    def backward(self, grad_y):
        b, _, c = self._shape
        return grad_y.reshape(b, 1, c) * self._weights           # (B, 1, C) * (B|1, T, 1)


class _GlobalMax(_GlobalPooling):
    def forward(self, x, training=False):
        self._shape = x.shape
        flat = x.reshape(x.shape[0], -1, x.shape[-1])            # (B, P, C), P = positions
        self._argmax = flat.argmax(axis=1)[:, None]              # (B, 1, C), first max on ties
        return self._finish(array_module(x).take_along_axis(flat, self._argmax, axis=1)[:, 0])

    def backward(self, grad_y):
        b, c = self._shape[0], self._shape[-1]
        xp = array_module(grad_y)
        grad = xp.zeros((b, int(np.prod(self._shape[1:-1])), c), dtype=grad_y.dtype)
        # one winner per (sample, channel): a plain put, no accumulation needed
        xp.put_along_axis(grad, self._argmax, grad_y.reshape(b, 1, c), axis=1)
        return grad.reshape(self._shape)


@register("global_max_pooling2d")
class GlobalMaxPooling2D(_GlobalMax):
    """Maximum over height and width of each channel.

    Args:
        keepdims: keep the pooled axes with size 1.

    Shapes: (batch, height, width, channels) -> (batch, channels)
    """

    examples = (({}, (3, 4, 2)), ({"keepdims": True}, (2, 2, 3)))


@register("global_max_pooling1d")
class GlobalMaxPooling1D(_GlobalMax):
    """Maximum over time steps of each channel.

    Args:
        keepdims: keep the time axis with size 1.

    Shapes: (batch, steps, channels) -> (batch, channels)
    """

    rank = 1
    examples = (({}, (5, 3)), ({"keepdims": True}, (4, 2)))
