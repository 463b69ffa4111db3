"""Pooling over sliding windows (channels-last): the shared base and average pooling; max pooling
and its fast paths in max_pooling.py, the global forms in global_pooling.py.

Windows are visited one kernel offset at a time (pool_h * pool_w vectorised operations over the
whole batch); gradients go to the inputs of each window with masked products: no scatter-add.
"""
from dltrain import check
from dltrain.backend import array_module
from dltrain.layers import im2col as windows
from dltrain.layers.base import Layer
from dltrain.registry import register


class WindowPooling(Layer):
    """The base of max and average pooling: the output shape, the region the windows read, and
    forward and backward one window offset at a time (a subclass gives ``_pool_forward``, and
    ``_share`` or a backward of its own)."""

    rank = 2

    def __init__(self, pool_size=2, strides=None, padding="valid"):
        super().__init__()
        pool = check.int_tuple("pool_size", pool_size, self.rank)
        stride = pool if strides is None else check.int_tuple("strides", strides, self.rank)
        self.pool_size, self.strides = pool_size, strides
        self.padding = check.one_of("padding", padding, ("valid", "same"))
        self._pool = pool if self.rank == 2 else (1, *pool)
        self._strides = stride if self.rank == 2 else (1, *stride)

    def build(self, input_shape, rng):
        hint = "give it (steps, channels)" if self.rank == 1 else "give it (height, width, channels) images"
        shape = check.rank(self, input_shape, self.rank + 1, hint=hint)
        hw = tuple(shape[:2]) if self.rank == 2 else (1, shape[0])
        out_hw, _ = windows.output_size(self, hw, self._pool, self._strides, (1, 1), self.padding)
        return (*out_hw, shape[-1]) if self.rank == 2 else (out_hw[1], shape[-1])

    def input_region(self, input_shape):
        """(rows, cols) of a 2-D input that the windows read: `valid` windows may leave out the
        last rows and columns (2x2 windows over 11x11 read 10x10); None for all of it."""
        if self.rank != 2 or self.padding != "valid":
            return None
        (out_h, out_w), _ = windows.output_size(self, input_shape[:2], self._pool, self._strides,
                                                 (1, 1), self.padding)
        return tuple((n - 1) * s + p for n, s, p in zip((out_h, out_w), self._strides, self._pool))

    def _offsets(self):
        return [(i, j) for i in range(self._pool[0]) for j in range(self._pool[1])]

    def forward(self, x, training=False):
        x = x if self.rank == 2 else x[:, None]                 # (B, T, C) -> (B, 1, T, C)
        out_hw, self._pads = windows.output_size(self, x.shape[1:3], self._pool, self._strides,
                                                 (1, 1), self.padding)
        self._out_hw = out_hw
        y = self._pool_forward(x, out_hw)                       # (B, Ho, Wo, C)
        return y if self.rank == 2 else y[:, 0]

    def backward(self, grad_y):
        grad_y = grad_y if self.rank == 2 else grad_y[:, None]
        grad_pad = array_module(grad_y).zeros(self._padded_shape, dtype=grad_y.dtype)
        for k, (i, j) in enumerate(self._offsets()):
            windows.window(grad_pad, i, j, self._out_hw, self._strides, (1, 1))[...] += \
                self._share(grad_y, k)
        grad_x = windows.unpad(grad_pad, self._pads)
        return grad_x if self.rank == 2 else grad_x[:, 0]


class _AveragePooling(WindowPooling):
    def _pool_forward(self, x, out_hw):
        x_pad = windows.pad(x, self._pads)
        self._padded_shape = x_pad.shape
        xp = array_module(x)
        y = xp.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
        for i, j in self._offsets():
            y += windows.window(x_pad, i, j, out_hw, self._strides, (1, 1))
        # with `same` padding, a window averages only the pixels inside the image (as Keras)
        inside = windows.pad(xp.ones((1, *x.shape[1:3], 1), dtype=x.dtype), self._pads)
        count = sum(windows.window(inside, i, j, out_hw, self._strides, (1, 1)) for i, j in self._offsets())
        self._scale = 1 / count                                  # (1, Ho, Wo, 1)
        return y * self._scale

    def _share(self, grad_y, k):
        return grad_y * self._scale


POOL_ARGS = """
    Args:
        pool_size: window size{dims}.
        strides: step between windows{dims}; null means pool_size.
        padding: valid (drop the incomplete windows) or same (output = ceil(input / strides)).
"""
#: the registry contract's examples, shared by max and average pooling: (arguments, input shape)
EXAMPLES_2D = (({}, (4, 4, 2)), ({"pool_size": 3, "strides": 2, "padding": "same"}, (5, 6, 2)),
               ({"pool_size": [2, 3], "strides": 1}, (4, 5, 1)), ({"pool_size": 2}, (5, 5, 3)))
EXAMPLES_1D = (({}, (6, 2)), ({"pool_size": 3, "strides": 2, "padding": "same"}, (7, 2)),
               ({"pool_size": 2, "strides": 1}, (5, 3)))


@register("average_pooling2d")
class AveragePooling2D(_AveragePooling):
    __doc__ = "Mean over each window of each channel.\n" + POOL_ARGS.format(dims=", an int or [h, w]") + \
        "\n    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, channels)\n"
    examples = EXAMPLES_2D


@register("average_pooling1d")
class AveragePooling1D(_AveragePooling):
    __doc__ = "Mean over each window of time steps, per channel.\n" + POOL_ARGS.format(dims="") + \
        "\n    Shapes: (batch, steps, channels) -> (batch, out_steps, channels)\n"
    rank = 1
    examples = EXAMPLES_1D
