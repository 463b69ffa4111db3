"""Convolutions as one matrix product over an im2col view: conv2d, conv1d (conv_transpose.py).

Channels-last throughout: images are (batch, height, width, channels), sequences (batch, steps,
channels). A conv1d is a conv2d over an image one pixel high.
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers import im2col as windows
from dltrain.layers.base import Layer
from dltrain.registry import register


@register("conv2d")
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as Keras): y = im2col(x) @ kernel + bias.

    Args:
        filters: number of output channels.
        kernel_size: window height and width, an int or [h, w].
        strides: step between windows, an int or [h, w].
        padding: valid (no padding) or same (output = ceil(input / strides)).
        dilation_rate: spacing between kernel taps, an int or [h, w].
        use_bias: whether to add a learned bias per filter.
        kernel_initializer: a registered initializer name or spec.
        bias_initializer: a registered initializer name or spec.

    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, filters)
    """

    rank = 2
    paddings = ("valid", "same")
    #: im2col rows shorter than this many values are multiplied per image and carry the bias in
    #: the product (a ones column)
    bias_column_below = 16
    examples = (
        ({"filters": 2, "kernel_size": 3}, (5, 5, 2)),
        ({"filters": 3, "kernel_size": [2, 3], "strides": 2, "padding": "same"}, (5, 6, 2)),
        ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "use_bias": False}, (6, 5, 1)),
        ({"filters": 2, "kernel_size": 2, "strides": [1, 2], "dilation_rate": [2, 1]}, (5, 6, 3)),
        ({"filters": 3, "kernel_size": 1}, (3, 3, 4)),
    )

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros"):
        super().__init__()
        self.filters = check.positive_int("filters", filters)
        self._kernel, self._strides, self._dilation = windows.window_arguments(
            self, self.rank, kernel_size, strides, padding, dilation_rate, self.paddings)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._workspace = windows.Workspace()
        self._region = None             # (rows, cols) of the output its one reader reads
        self._blocks = None             # (ph, pw) of the tiled max pooling that reads it all

    # a conv1d is a conv2d one pixel high: these give the 2-D view of the window arguments
    def _window(self):
        if self.rank == 2:
            return self._kernel, self._strides, self._dilation
        return (1, *self._kernel), (1, *self._strides), (1, *self._dilation)

    def _image_shape(self, input_shape):
        hint = ("give it (steps, channels) sequences" if self.rank == 1 else
                "give it (height, width, channels) images; add `- {type: reshape, target_shape: [28, 28, 1]}`"
                " for grayscale")
        shape = check.rank(self, input_shape, self.rank + 1, hint=hint)
        return tuple(shape) if self.rank == 2 else (1, *shape)

    def build(self, input_shape, rng):
        h, w, channels = self._image_shape(input_shape)
        kernel, strides, dilation = self._window()
        (out_h, out_w), _ = windows.output_size(self, (h, w), kernel, strides, dilation, self.padding)
        shape = (*self._kernel, channels, self.filters)
        self.add_weight("kernel", shape, self.kernel_initializer, rng)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, rng)
        return (out_h, out_w, self.filters) if self.rank == 2 else (out_w, self.filters)

    def compute_only(self, region):
        """Compute output[:, :rows, :cols] only and leave the rest zero (pass compute_read_region:
        the one layer reading the output reads no more, a `valid` 2x2 pooling of an odd size)."""
        if self.rank == 2 and self.padding == "valid":
            self._region = tuple(region)
            return True
        return False

    def emit_pool_blocks(self, pool_size):
        """Give the output in the layout of a tiled max pooling, the one layer that reads it.

        Pass pool_blocks calls this (with the pooling's ``take_blocks``) where a 2-D `valid` max
        pooling whose windows tile the image reads this output alone. The output is then
        (B, ph*pw, Ho, Wo, F): block k = i*pw + j holds output pixels (ho*ph + i, wo*pw + j), the
        window offset (i, j) of every pooling window, so the pooling compares ph*pw contiguous
        blocks instead of strided pairs of pixels. Each block is a convolution with strides
        multiplied by the pool size, so the im2col rows are simply gathered in that order and
        the products are those of the plain layout on the same rows, permuted; the pixels no
        window reads are never computed. The backward takes its gradient in the same layout.
        Returns whether it will.
        """
        if self.rank != 2:
            return False
        self._blocks = tuple(pool_size)
        return True

    def forward(self, x, training=False):
        self._crop = None
        if self._region is not None and self._blocks is None:
            (out_h, out_w), _ = windows.output_size(self, x.shape[1:3], *self._window(), self.padding)
            rows, cols = self._region
            if (rows, cols) != (out_h, out_w) and rows <= out_h and cols <= out_w:
                return self._forward_region(x, rows, cols, (out_h, out_w))
        return self._forward(x)

    def _forward_region(self, x, rows, cols, out_hw):
        kernel, strides, dilation = self._window()
        span = [(n - 1) * s + d * (k - 1) + 1 for n, k, s, d in zip((rows, cols), kernel, strides, dilation)]
        self._crop = (rows, cols, span, x.shape)
        y = windows.empty_with_zero_border((x.shape[0], *out_hw, self.filters), rows, cols, x.dtype,
                                           array_module(x))
        y[:, :rows, :cols] = self._forward(x[:, :span[0], :span[1]])     # (B, rows, cols, F)
        return y

    def backward(self, grad_y):
        if self._crop is None:
            return self._backward(grad_y)
        rows, cols, span, x_shape = self._crop
        grad_part = self._backward(array_module(grad_y).ascontiguousarray(grad_y[:, :rows, :cols]))
        if grad_part is None:
            return None
        grad_x = windows.empty_with_zero_border(x_shape, *span, grad_part.dtype, array_module(grad_part))
        grad_x[:, :span[0], :span[1]] = grad_part
        return grad_x

    def _forward(self, x):
        x = x if self.rank == 2 else x[:, None]            # (B, T, C) -> (B, 1, T, C)
        b, h, w, c = x.shape
        kernel, strides, dilation = self._window()
        out_hw, self._pads = windows.output_size(self, (h, w), kernel, strides, dilation, self.padding)
        x_pad = windows.pad(x, self._pads)
        self._padded_shape = x_pad.shape
        blocks = self._blocks or (1, 1)
        if self._blocks is not None:                    # the region the pooling reads
            out_hw = (out_hw[0] // blocks[0] * blocks[0], out_hw[1] // blocks[1] * blocks[1])
        block_hw = (out_hw[0] // blocks[0], out_hw[1] // blocks[1])
        self._computed_hw = out_hw                       # the output pixels computed, for backward
        taps = kernel[0] * kernel[1] * c                                  # K
        weights = self.params["kernel"].reshape(taps, -1)                # (K, F)
        # short rows (a first layer's K = 9): the products run per image (see _per_image), and
        # the bias rides in the product as a column of ones instead of a pass over a large output
        self._short_rows = taps < self.bias_column_below
        if kernel == (1, 1) and strides == (1, 1) and self._blocks is None:
            self._bias_column = False
            self._cols = x_pad.reshape(-1, taps)           # a 1x1 convolution needs no copy
        else:
            self._bias_column = self.use_bias and self._short_rows
            shape = (b, blocks[0] * blocks[1], *block_hw, taps + self._bias_column)
            buffer, new = self._workspace.get("cols", shape, x.dtype, new=True, xp=array_module(x))
            windows.im2col(x_pad, kernel, out_hw, strides, dilation, blocks=blocks,
                           out=buffer[..., :taps].reshape(*shape[:4], *kernel, c))
            if self._bias_column:
                if new:                                  # the ones column stays from step to step
                    buffer[..., taps] = 1
                weights = array_module(x).concatenate([weights, self.params["bias"][None]])   # (K+1, F)
            self._cols = buffer.reshape(-1, buffer.shape[-1])              # (N, K[+1]), N = B*Ho*Wo
        if self._short_rows:
            y = _per_image(self._cols, weights, b)                       # (N, K[+1]) @ (K[+1], F) -> (N, F)
        else:
            y = self._cols @ weights                                     # (N, K) @ (K, F) -> (N, F)
        if self.use_bias and not self._bias_column:
            y += self.params["bias"]
        if self._blocks is not None:
            return y.reshape(b, blocks[0] * blocks[1], *block_hw, self.filters)   # (B, ph*pw, Ho, Wo, F)
        y = y.reshape(b, *out_hw, self.filters)
        return y if self.rank == 2 else y[:, 0]

    def _weight_grads(self, g, b):
        if self._short_rows:
            grad_weights = _per_image_weight_grad(self._cols, g, b)      # (K[+1], N) @ (N, F) -> (K[+1], F)
        else:
            grad_weights = self._cols.T @ g                              # (K, N) @ (N, F) -> (K, F)
        if self._bias_column:
            grad_weights, self.grads["bias"] = grad_weights[:-1], grad_weights[-1]
        elif self.use_bias:
            ones = self._workspace.ones(len(g), g.dtype, array_module(g))
            self.grads["bias"] = ones @ g                                # (N,) @ (N, F) -> (F,)
        self.grads["kernel"] = grad_weights.reshape(self.params["kernel"].shape)

    def _backward(self, grad_y):
        grad_y = grad_y if self.rank == 2 or self._blocks is not None else grad_y[:, None]
        b, f = grad_y.shape[0], grad_y.shape[-1]
        g = grad_y.reshape(-1, f)                                       # (N, F)
        if self.trainable:                                               # frozen: grad_x only
            self._weight_grads(g, b)
        if not self.input_grad:                                          # the model's first layer
            return None
        kernel, strides, _ = self._window()
        c = self._padded_shape[-1]
        if kernel == (1, 1) and strides == (1, 1) and self._blocks is None:
            weights = self.params["kernel"].reshape(c, f)                # (C, F)
            grad_x = (g @ weights.T).reshape(self._padded_shape)         # (N, F) @ (F, C) -> (N, C)
        else:
            grad_x = self._col2im_product(g, b, c)
        grad_x = windows.unpad(grad_x, self._pads)
        return grad_x if self.rank == 2 else grad_x[:, 0]

    def _col2im_product(self, g, b, c):
        """grad_x (B, Hp, Wp, C) = col2im(g @ kernel.T).

        One product per kernel offset, so that each offset's slab of column gradients is
        contiguous (a single (N, F) @ (F, K) product leaves runs of C floats for col2im's adds).
        A gradient in pooling blocks is first laid out as an image again (one copy of g): then
        each offset's add covers whole rows of the window, not every other pixel.
        """
        kernel, strides, dilation = self._window()
        taps, f, out_hw = kernel[0] * kernel[1], g.shape[1], self._computed_hw
        xp = array_module(g)
        if self._blocks is not None:
            (ph, pw) = self._blocks
            block_hw = (out_hw[0] // ph, out_hw[1] // pw)
            image = self._workspace.get("grad_image", (b, block_hw[0], ph, block_hw[1], pw, f), g.dtype, xp=xp)
            xp.copyto(image, g.reshape(b, ph, pw, *block_hw, f).transpose(0, 3, 1, 4, 2, 5))
            g = image.reshape(-1, f)                                     # (B*Ho*ph*Wo*pw, F)
        weights = self.params["kernel"].reshape(taps, c, f).transpose(0, 2, 1)    # (T, F, C)
        slabs = self._workspace.get("grad_cols", (taps, len(g), c), g.dtype, xp=xp)
        xp.matmul(g, weights, out=slabs)                                # (N, F) @ (T, F, C) -> (T, N, C)
        slabs = slabs.reshape(*kernel, b, *out_hw, c)
        return windows.col2im_slabs(slabs, self._padded_shape, strides, dilation)

    def flops(self, input_shape, output_shape):
        taps = int(np.prod(self._kernel)) * self._image_shape(input_shape)[-1]
        return 2 * int(np.prod(output_shape)) * taps


def _per_image(cols, weights, images):
    """cols (N, K) @ weights (K, F) -> (N, F) as one product per image, N = images * pixels.

    For short im2col rows (K < 16, a first layer's) the product only streams memory, and
    OpenBLAS runs it about 2x faster per image, whose operands stay in cache: (43264, 10) @
    (10, 32) 0.55 -> 0.30 ms at 1 thread. ``_per_image_weight_grad`` is its weight gradient.
    """
    return array_module(cols).matmul(cols.reshape(images, -1, cols.shape[1]), weights).reshape(-1, weights.shape[1])


def _per_image_weight_grad(cols, g, images):
    """cols.T (K, N) @ g (N, F) -> (K, F), summed over per-image products: (10, 43264) @
    (43264, 32) 0.78 -> 0.35 ms at 1 thread."""
    per_image = array_module(cols).matmul(cols.reshape(images, -1, cols.shape[1]).transpose(0, 2, 1),
                          g.reshape(images, -1, g.shape[1]))        # (I, K, n) @ (I, n, F) -> (I, K, F)
    return per_image.sum(axis=0)


@register("conv1d")
class Conv1D(Conv2D):
    """1-D convolution over time steps: y[t] = sum_k x[t*s + k*d] @ kernel[k] + bias.

    Args:
        filters: number of output channels.
        kernel_size: window length.
        strides: step between windows.
        padding: valid, same, or causal (all padding before, so y[t] sees no x after t).
        dilation_rate: spacing between kernel taps.
        use_bias: whether to add a learned bias per filter.
        kernel_initializer: a registered initializer name or spec.
        bias_initializer: a registered initializer name or spec.

    Shapes: (batch, steps, channels) -> (batch, out_steps, filters)
    """

    rank = 1
    paddings = ("valid", "same", "causal")
    examples = (
        ({"filters": 2, "kernel_size": 3}, (6, 2)),
        ({"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same"}, (7, 2)),
        ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "causal"}, (6, 3)),
    )
