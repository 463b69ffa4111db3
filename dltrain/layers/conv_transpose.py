"""The transposed convolution: conv2d's adjoint, one product to columns and col2im."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers import im2col as windows
from dltrain.layers.base import Layer
from dltrain.registry import register


@register("conv2d_transpose")
class Conv2DTranspose(Layer):
    """Transposed convolution (the adjoint of conv2d, as Keras's Conv2DTranspose).

    Every input pixel spreads ``x[b, h, w] @ kernel[i, j].T`` onto output pixel
    (h*s + i*d, w*s + j*d): one product to columns, then col2im. Its backward is conv2d's forward.

    Args:
        filters: number of output channels.
        kernel_size: window height and width, an int or [h, w].
        strides: upsampling factor, an int or [h, w].
        padding: valid (output = (in - 1) * s + kernel) or same (output = in * s).
        dilation_rate: spacing between kernel taps, an int or [h, w].
        use_bias: whether to add a learned bias per filter.
        kernel_initializer: a registered initializer name or spec.
        bias_initializer: a registered initializer name or spec.

    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, filters)
    """

    examples = (
        ({"filters": 2, "kernel_size": 3}, (3, 3, 2)),
        ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (3, 4, 2)),
        ({"filters": 1, "kernel_size": [2, 3], "strides": [2, 1], "use_bias": False}, (3, 3, 3)),
        ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "padding": "same"}, (4, 3, 1)),
        ({"filters": 2, "kernel_size": 1, "strides": 3}, (2, 2, 2)),
    )

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros"):
        super().__init__()
        self.filters = check.positive_int("filters", filters)
        self._kernel, self._strides, self._dilation = windows.window_arguments(
            self, 2, kernel_size, strides, padding, dilation_rate)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def _geometry(self, h, w):
        """(output size, pads before, full size before cropping) along H and W."""
        out, before, full = [], [], []
        for length, k, s, d in zip((h, w), self._kernel, self._strides, self._dilation):
            span = d * (k - 1) + 1
            size = length * s + max(span - s, 0) if self.padding == "valid" else length * s
            crop = 0 if self.padding == "valid" else max(span - s, 0) // 2
            out.append(size)
            before.append(crop)
            full.append(max((length - 1) * s + span, crop + size))
        return tuple(out), tuple(before), tuple(full)

    def build(self, input_shape, rng):
        h, w, channels = check.rank(self, input_shape, 3, hint="give it (height, width, channels) images")
        (out_h, out_w), _, _ = self._geometry(h, w)
        shape = (*self._kernel, self.filters, channels)     # Keras's layout: (kh, kw, out, in)
        self.add_weight("kernel", shape, self.kernel_initializer, rng)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, rng)
        return (out_h, out_w, self.filters)

    def forward(self, x, training=False):
        b, h, w, c = x.shape
        out, before, full = self._geometry(h, w)
        self._x = x.reshape(-1, c)                                      # (N, C), N = B*H*W
        weights = self.params["kernel"].reshape(-1, c)                  # (K, C), K = kh*kw*F
        cols = self._x @ weights.T                                      # (N, C) @ (C, K) -> (N, K)
        cols = cols.reshape(b, h, w, *self._kernel, self.filters)
        y_full = windows.col2im(cols, (b, *full, self.filters), self._kernel, self._strides, self._dilation)
        self._crop, self._hw = (before, out, full), (h, w)
        y = y_full[:, before[0]:before[0] + out[0], before[1]:before[1] + out[1]]
        return y + self.params["bias"] if self.use_bias else array_module(y).ascontiguousarray(y)

    def backward(self, grad_y):
        before, out, full = self._crop
        b, f = grad_y.shape[0], grad_y.shape[-1]
        if self.use_bias and self.trainable:
            self.grads["bias"] = grad_y.sum(axis=(0, 1, 2))             # (F,)
        grad_full = array_module(grad_y).zeros((b, *full, f), dtype=grad_y.dtype)
        grad_full[:, before[0]:before[0] + out[0], before[1]:before[1] + out[1]] = grad_y
        n, c = self._x.shape
        h_w = self._hw
        grad_cols = windows.im2col(grad_full, self._kernel, h_w, self._strides, self._dilation)
        grad_cols = grad_cols.reshape(n, -1)                            # (N, K)
        weights = self.params["kernel"].reshape(-1, c)                  # (K, C)
        if self.trainable:                                              # frozen: grad_x only
            self.grads["kernel"] = (grad_cols.T @ self._x).reshape(self.params["kernel"].shape)  # (K, N) @ (N, C)
        grad_x = grad_cols @ weights                                    # (N, K) @ (K, C) -> (N, C)
        return grad_x.reshape(b, *h_w, c)

    def flops(self, input_shape, output_shape):
        return 2 * int(np.prod(input_shape)) * int(np.prod(self._kernel)) * self.filters
