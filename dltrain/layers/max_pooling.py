"""Max pooling: the windows' first maximum, with its fast paths.

Windows that tile the image (strides = pool_size, the usual 2x2) reduce in two stages, along each
row's pixels and then across rows, keeping the first maximum of each; otherwise each kernel
offset is visited in turn and backward finds each window's first winning offset again. The graph
passes (model/passes.py) may also hand it its input as the pooling blocks of the convolution
before it (take_blocks) and fold the ReLU that reads it into the same pass (absorb_relu).
"""
import numpy as np

from dltrain.backend import array_module
from dltrain.layers import im2col as windows
from dltrain.layers.pooling import POOL_ARGS, EXAMPLES_1D, EXAMPLES_2D, WindowPooling
from dltrain.registry import register


class _MaxPooling(WindowPooling):
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


@register("max_pooling2d")
class MaxPooling2D(_MaxPooling):
    __doc__ = "Maximum over each window of each channel.\n" + POOL_ARGS.format(dims=", an int or [h, w]") + \
        "\n    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, channels)\n"
    examples = EXAMPLES_2D


@register("max_pooling1d")
class MaxPooling1D(_MaxPooling):
    __doc__ = "Maximum over each window of time steps, per channel.\n" + POOL_ARGS.format(dims="") + \
        "\n    Shapes: (batch, steps, channels) -> (batch, out_steps, channels)\n"
    rank = 1
    examples = EXAMPLES_1D
