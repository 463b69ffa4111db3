"""Depthwise and depthwise-separable convolutions (channels-last).

A depthwise convolution filters each input channel on its own, so there is no product across
channels to hand to BLAS: it is a sum over kernel offsets of a strided window times that offset's
per-channel weights, one vectorised multiply-add per offset (kh * kw of them).
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers import im2col as windows
from dltrain.layers.base import Layer
from dltrain.registry import register


def depthwise_forward(x_pad, kernel, out_hw, strides, dilation):
    """y[b, h, w, c, m] = sum_ij x_pad[b, h*s + i*d, w*s + j*d, c] * kernel[i, j, c, m].

    x_pad (B, Hp, Wp, C), kernel (kh, kw, C, M) -> (B, Ho, Wo, C * M), channel c*M + m as Keras.
    """
    kh, kw, c, m = kernel.shape
    y = array_module(x_pad).zeros((x_pad.shape[0], *out_hw, c, m), dtype=x_pad.dtype)
    for i in range(kh):
        for j in range(kw):
            y += windows.window(x_pad, i, j, out_hw, strides, dilation)[..., None] * kernel[i, j]
    return y.reshape(*y.shape[:3], c * m)


def depthwise_backward(grad_y, x_pad, kernel, strides, dilation, kernel_grad=True):
    """(grad of x_pad, grad of kernel or None without ``kernel_grad``) for grad_y (B, Ho, Wo, C * M)."""
    kh, kw, c, m = kernel.shape
    out_hw = grad_y.shape[1:3]
    g = grad_y.reshape(*grad_y.shape[:3], c, m)                        # (B, Ho, Wo, C, M)
    xp = array_module(grad_y)
    grad_kernel = xp.empty_like(kernel) if kernel_grad else None
    grad_x = xp.zeros_like(x_pad)
    for i in range(kh):
        for j in range(kw):
            if kernel_grad:
                x_ij = windows.window(x_pad, i, j, out_hw, strides, dilation)   # (B, Ho, Wo, C)
                grad_kernel[i, j] = xp.einsum("bhwc,bhwcm->cm", x_ij, g)
            windows.window(grad_x, i, j, out_hw, strides, dilation)[...] += \
                xp.einsum("bhwcm,cm->bhwc", g, kernel[i, j])
    return grad_x, grad_kernel


class _Depthwise(Layer):
    """The window arguments and the depthwise stage that both layers share."""

    def _window_setup(self, kernel_size, strides, padding, dilation_rate, depth_multiplier):
        self._kernel, self._strides, self._dilation = windows.window_arguments(
            self, 2, kernel_size, strides, padding, dilation_rate)
        self.depth_multiplier = check.positive_int("depth_multiplier", depth_multiplier)

    def _build_depthwise(self, input_shape, rng, initializer):
        h, w, channels = check.rank(self, input_shape, 3, hint="give it (height, width, channels) images")
        out_hw, _ = windows.output_size(self, (h, w), self._kernel, self._strides, self._dilation, self.padding)
        shape = (*self._kernel, channels, self.depth_multiplier)
        self.add_weight("depthwise_kernel", shape, initializer, rng)
        return out_hw, channels * self.depth_multiplier

    def _depthwise(self, x):
        out_hw, self._pads = windows.output_size(self, x.shape[1:3], self._kernel, self._strides,
                                                 self._dilation, self.padding)
        self._x_pad = windows.pad(x, self._pads)
        return depthwise_forward(self._x_pad, self.params["depthwise_kernel"], out_hw,
                                 self._strides, self._dilation)

    def _depthwise_backward(self, grad):
        grad_x, grad_kernel = depthwise_backward(grad, self._x_pad, self.params["depthwise_kernel"],
                                                 self._strides, self._dilation, kernel_grad=self.trainable)
        if self.trainable:                                   # frozen: the input gradient only
            self.grads["depthwise_kernel"] = grad_kernel
        return windows.unpad(grad_x, self._pads)


@register("depthwise_conv2d")
class DepthwiseConv2D(_Depthwise):
    """Convolves each input channel with its own depth_multiplier filters.

    Args:
        kernel_size: window height and width, an int or [h, w].
        strides: step between windows, an int or [h, w].
        padding: valid or same.
        depth_multiplier: output channels per input channel.
        dilation_rate: spacing between kernel taps, an int or [h, w].
        use_bias: whether to add a learned bias per output channel.
        depthwise_initializer: a registered initializer name or spec.
        bias_initializer: a registered initializer name or spec.

    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, channels * depth_multiplier)
    """

    examples = (
        ({"kernel_size": 3}, (5, 5, 2)),
        ({"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2}, (5, 6, 2)),
        ({"kernel_size": [2, 3], "dilation_rate": 2, "depth_multiplier": 3, "use_bias": False}, (6, 7, 2)),
    )

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, dilation_rate=1,
                 use_bias=True, depthwise_initializer="glorot_uniform", bias_initializer="zeros"):
        super().__init__()
        self._window_setup(kernel_size, strides, padding, dilation_rate, depth_multiplier)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape, rng):
        out_hw, channels = self._build_depthwise(input_shape, rng, self.depthwise_initializer)
        if self.use_bias:
            self.add_weight("bias", (channels,), self.bias_initializer, rng)
        return (*out_hw, channels)

    def forward(self, x, training=False):
        y = self._depthwise(x)                                   # (B, Ho, Wo, C*M)
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, grad_y):
        if self.use_bias and self.trainable:
            self.grads["bias"] = grad_y.sum(axis=(0, 1, 2))
        return self._depthwise_backward(grad_y)

    def flops(self, input_shape, output_shape):
        return 2 * int(np.prod(output_shape)) * int(np.prod(self._kernel))


@register("separable_conv2d")
class SeparableConv2D(_Depthwise):
    """A depthwise convolution followed by a 1x1 (pointwise) convolution that mixes channels.

    Args:
        filters: number of output channels.
        kernel_size: window height and width of the depthwise stage.
        strides: step between windows, an int or [h, w].
        padding: valid or same.
        depth_multiplier: depthwise output channels per input channel.
        dilation_rate: spacing between kernel taps, an int or [h, w].
        use_bias: whether to add a learned bias per filter.
        depthwise_initializer: a registered initializer name or spec.
        pointwise_initializer: a registered initializer name or spec.
        bias_initializer: a registered initializer name or spec.

    Shapes: (batch, height, width, channels) -> (batch, out_height, out_width, filters)
    """

    examples = (
        ({"filters": 3, "kernel_size": 3}, (5, 5, 2)),
        ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2}, (5, 6, 3)),
        ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "use_bias": False}, (5, 5, 2)),
    )

    def __init__(self, filters, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 dilation_rate=1, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros"):
        super().__init__()
        self.filters = check.positive_int("filters", filters)
        self._window_setup(kernel_size, strides, padding, dilation_rate, depth_multiplier)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape, rng):
        out_hw, channels = self._build_depthwise(input_shape, rng, self.depthwise_initializer)
        self.add_weight("pointwise_kernel", (1, 1, channels, self.filters), self.pointwise_initializer, rng)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, rng)
        return (*out_hw, self.filters)

    def forward(self, x, training=False):
        self._mid = self._depthwise(x)                           # (B, Ho, Wo, C*M)
        pointwise = self.params["pointwise_kernel"][0, 0]        # (C*M, F)
        y = self._mid @ pointwise                                # (B, Ho, Wo, C*M) @ (C*M, F)
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, grad_y):
        f = grad_y.shape[-1]
        g = grad_y.reshape(-1, f)                                # (N, F)
        mid = self._mid.reshape(-1, self._mid.shape[-1])         # (N, C*M)
        pointwise = self.params["pointwise_kernel"][0, 0]
        if self.trainable:                                       # frozen: grad_x only
            self.grads["pointwise_kernel"] = (mid.T @ g)[None, None]   # (C*M, N) @ (N, F)
            if self.use_bias:
                self.grads["bias"] = g.sum(axis=0)
        grad_mid = (g @ pointwise.T).reshape(self._mid.shape)     # (N, F) @ (F, C*M)
        return self._depthwise_backward(grad_mid)

    def flops(self, input_shape, output_shape):
        positions = int(np.prod(output_shape[:2]))
        mid = input_shape[-1] * self.depth_multiplier
        return 2 * positions * mid * (int(np.prod(self._kernel)) + self.filters)
