"""Pooling: max and average over sliding windows (channels-last); global forms in global_pooling.py.

Windows are visited one kernel offset at a time (pool_h * pool_w vectorised operations over the
whole batch). Max pooling whose windows tile the image (strides = pool_size, the usual 2x2)
reduces in two stages instead, along each row's pixels and then across rows, keeping the first
maximum of each; otherwise its backward finds each window's first winning offset again. Either
way gradients go to one input per window with masked products: no scatter-add.
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers import im2col as windows
from dltrain.layers.base import Layer
from dltrain.registry import register


class _Pooling2D(Layer):
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


class _MaxPooling(_Pooling2D):
    _blocked = False
    _relu = False

    def commutes_with_relu(self):
        """max(relu(x)) = relu(max(x)), and so are the gradients: where a window's maximum is
        positive it is the same first maximum, elsewhere both give zero."""
        return True

    def _tiled(self):
        """Whether the windows tile the (cropped or padded) input: strides equal to pool_size."""
        return self._strides == self._pool

    def blocks_for(self, input_shape):
        """The pool size, where this pooling could read its input as the pooling blocks of
        Conv2D.emit_pool_blocks (2-D, `valid`, windows that tile the image); else None."""
        if self.rank == 2 and self.padding == "valid" and self._tiled():
            return self._pool
        return None

    def take_blocks(self):
        """From now on the input comes as (B, ph*pw, Ho, Wo, C) blocks, one per window offset,
        and its gradient goes back in that layout (the pool_blocks pass pairs this with
        Conv2D.emit_pool_blocks)."""
        self._blocked = True

    def absorb_relu(self):
        """Also apply the ReLU that alone reads this (blocked) output: max(0, blocks), the zero
        first so that it wins ties, as relu(max) routes no gradient where the maximum is <= 0.
        Pass absorb_relu then drops that ReLU layer from the plan."""
        if not self._blocked:
            return False
        self._relu = True
        return True

    def forward(self, x, training=False):
        if not self._blocked:
            return super().forward(x, training)
        b, blocks = x.shape[:2]
        self._blocked_shape = x.shape
        xp = array_module(x)
        y = xp.empty((b, *x.shape[2:]), dtype=x.dtype)                  # (B, Ho, Wo, C)
        self._winner = xp.empty((b, y[0].size), dtype=np.uint8)
        # the first maximum of the blocks: the first window offset in row-major order
        _first_max(x.reshape(b, blocks, -1), 1, y.reshape(b, -1), self._winner, self._relu)
        return y

    def _pool_forward(self, x, out_hw):
        if self._tiled():
            return self._tiled_forward(x, out_hw)
        self._x_pad = windows.pad(x, self._pads, -np.inf)
        self._padded_shape = self._x_pad.shape
        offsets = self._offsets()
        y = windows.window(self._x_pad, *offsets[0], out_hw, self._strides, (1, 1)).copy()
        for i, j in offsets[1:]:
            array_module(x).maximum(y, windows.window(self._x_pad, i, j, out_hw, self._strides, (1, 1)), out=y)
        self._y = y
        return y

    def _tiled_forward(self, x, out_hw):
        """Windows that tile the image, reduced in two stages along contiguous runs.

        First the maximum of each row's pw pixels (and which column holds it), then the maximum
        of ph such row maxima (and which row). Both stages keep the first maximum on ties, so
        the winner is the first in row-major order, as the per-offset path picks it.
        """
        (ph, pw), (ho, wo) = self._pool, out_hw
        self._input_shape = x.shape
        tiled = windows.pad(x, self._pads, -np.inf)[:, :ho * ph, :wo * pw]   # (B, Ho*ph, Wo*pw, C)
        self._padded_shape = tiled.shape
        b, h, _, c = tiled.shape
        xp = array_module(x)
        rows = xp.empty((b, h, wo, c), dtype=x.dtype)                     # row maxima
        self._column = xp.empty((b, h, wo, c), dtype=np.uint8)
        y = xp.empty((b, ho, wo, c), dtype=x.dtype)
        self._row = xp.empty((b, ho, wo * c), dtype=np.uint8)
        _first_max(tiled.reshape(b, h, wo, pw, c), 3, rows, self._column)
        _first_max(rows.reshape(b, ho, ph, wo * c), 2, y.reshape(b, ho, wo * c), self._row)
        return y

    def _tiled_backward(self, grad_y):
        (ph, pw), (ho, wo) = self._pool, self._out_hw
        b, h, w, c = self._padded_shape
        g = grad_y.reshape(b, ho, wo * c)
        xp = array_module(grad_y)
        grad_rows = xp.empty((b, ho, ph, wo * c), dtype=grad_y.dtype)
        (top, _), (left, _) = self._pads
        # the windows lie inside the input (`valid`; never `same`, whose padding may all come
        # after the image): the rows and columns no window reaches get zero
        inside = (top, left) == (0, 0) and h <= self._input_shape[1] and w <= self._input_shape[2]
        if inside:
            grad_x = windows.empty_with_zero_border(self._input_shape, h, w, grad_y.dtype, xp)
            grad_tiled = grad_x[:, :h, :w].reshape(b, h, wo, pw, c)
        else:
            grad_tiled = xp.empty((b, h, wo, pw, c), dtype=grad_y.dtype)

        # to the winning row, then the winning column, as float32 one-hot masks (see
        # _blocked_backward) times the gradient
        xp.equal(self._row[:, :, None], xp.arange(ph, dtype=np.uint8)[:, None], out=grad_rows)
        grad_rows *= g[:, :, None]
        grad_rows = grad_rows.reshape(b, h, wo, 1, c)
        xp.equal(self._column[:, :, :, None], xp.arange(pw, dtype=np.uint8)[:, None], out=grad_tiled)
        grad_tiled *= grad_rows
        if inside:
            return grad_x
        # `same` padded the image
        grad_tiled = grad_tiled.reshape(b, h, w, c)
        grad_x = xp.zeros(self._input_shape, dtype=grad_y.dtype)
        rows, cols = min(h - top, grad_x.shape[1]), min(w - left, grad_x.shape[2])
        grad_x[:, :rows, :cols] = grad_tiled[:, top:top + rows, left:left + cols]
        return grad_x

    def backward(self, grad_y):
        """Each window's gradient goes to the first offset that holds its maximum.

        The winners are found again here, branch-free (masked copies in the forward pass are
        several times slower on random data): offset k wins where it equals the maximum and no
        earlier offset did.
        """
        if self._blocked:
            return self._blocked_backward(grad_y)
        grad_y = grad_y if self.rank == 2 else grad_y[:, None]
        if self._tiled():
            grad_x = self._tiled_backward(grad_y)
            return grad_x if self.rank == 2 else grad_x[:, 0]
        y = self._y                                              # (B, Ho, Wo, C), also for 1-D
        xp = array_module(grad_y)
        grad_pad = xp.zeros(self._padded_shape, dtype=grad_y.dtype)
        # windows that do not overlap can be written instead of added to
        disjoint = all(s >= p for s, p in zip(self._strides, self._pool))
        taken = xp.zeros(y.shape, dtype=bool)
        for i, j in self._offsets():
            args = (i, j, self._out_hw, self._strides, (1, 1))
            wins = windows.window(self._x_pad, *args) == y
            wins &= ~taken
            taken |= wins
            target = windows.window(grad_pad, *args)
            if disjoint:
                xp.multiply(grad_y, wins, out=target)
            else:
                target += grad_y * wins
        grad_x = windows.unpad(grad_pad, self._pads)
        return grad_x if self.rank == 2 else grad_x[:, 0]


    def _blocked_backward(self, grad_y):
        b, blocks = self._blocked_shape[:2]
        xp = array_module(grad_y)
        grad_x = xp.empty(self._blocked_shape, dtype=grad_y.dtype)
        flat = grad_x.reshape(b, blocks, -1)
        # 1.0 where offset k won, written as float32 by the comparison itself (a bool mask would
        # be cast in the multiply: 0.72 -> 0.31 ms for a first layer's pooling), times grad_y
        # (with the ReLU absorbed, index 0 is the zero and offset k is k + 1)
        offsets = xp.arange(self._relu, blocks + self._relu, dtype=np.uint8)
        xp.equal(self._winner[:, None], offsets[:, None], out=flat)
        flat *= grad_y.reshape(b, 1, -1)
        return grad_x


def _first_max(a, axis, top, where, above_zero=False):
    """Write the maximum of a along a short axis into ``top`` and the uint8 index of its first
    occurrence into ``where``. With ``above_zero`` the maximum of a zero and a, the zero first:
    index 0 is the zero, k + 1 the k-th entry."""
    parts = [a[(slice(None),) * axis + (k,)] for k in range(a.shape[axis])]     # views
    xp = array_module(a)
    if above_zero:
        xp.maximum(parts[0], top.dtype.type(0), out=top)
        xp.greater(parts[0], 0, out=where.view(np.bool_))
        rest = enumerate(parts[1:], 2)
    elif len(parts) == 1:
        xp.copyto(top, parts[0])
        where[...] = 0
        return
    else:
        xp.maximum(parts[0], parts[1], out=top)
        xp.not_equal(top, parts[0], out=where.view(np.bool_))  # reads half the strided input again
        rest = enumerate(parts[2:], 2)
    later = xp.empty(where.shape, dtype=np.uint8)
    for k, part in rest:
        # where part beats all before it, k; k exceeds every earlier index, so a maximum does
        # it (a masked np.copyto is some 30x slower)
        xp.greater(part, top, out=later.view(np.bool_))
        xp.multiply(later, np.uint8(k), out=later)
        xp.maximum(where, later, out=where)
        xp.maximum(top, part, out=top)


class _AveragePooling(_Pooling2D):
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


_POOL_ARGS = """
    Args:
        pool_size: window size{dims}.
        strides: step between windows{dims}; null means pool_size.
        padding: valid (drop the incomplete windows) or same (output = ceil(input / strides)).
"""


@register("max_pooling2d")
class MaxPooling2D(_MaxPooling):
    __doc__ = "Maximum over each window of each channel.\n" + _POOL_ARGS.format(dims=", an int or [h, w]") + \
        "\n    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, channels)\n"
    examples = (({}, (4, 4, 2)), ({"pool_size": 3, "strides": 2, "padding": "same"}, (5, 6, 2)),
                ({"pool_size": [2, 3], "strides": 1}, (4, 5, 1)), ({"pool_size": 2}, (5, 5, 3)))


@register("average_pooling2d")
class AveragePooling2D(_AveragePooling):
    __doc__ = "Mean over each window of each channel.\n" + _POOL_ARGS.format(dims=", an int or [h, w]") + \
        "\n    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, channels)\n"
    examples = MaxPooling2D.examples


@register("max_pooling1d")
class MaxPooling1D(_MaxPooling):
    __doc__ = "Maximum over each window of time steps, per channel.\n" + _POOL_ARGS.format(dims="") + \
        "\n    Shapes: (batch, steps, channels) -> (batch, out_steps, channels)\n"
    rank = 1
    examples = (({}, (6, 2)), ({"pool_size": 3, "strides": 2, "padding": "same"}, (7, 2)),
                ({"pool_size": 2, "strides": 1}, (5, 3)))


@register("average_pooling1d")
class AveragePooling1D(_AveragePooling):
    __doc__ = "Mean over each window of time steps, per channel.\n" + _POOL_ARGS.format(dims="") + \
        "\n    Shapes: (batch, steps, channels) -> (batch, out_steps, channels)\n"
    rank = 1
    examples = MaxPooling1D.examples
