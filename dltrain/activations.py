"""Activation functions, each a forward/backward pair with its derivative beside it.

An activation is used through the ``activation`` layer or the ``activation:`` shorthand on any
layer. Forward caches what backward needs; backward maps grad_y to grad_x.
"""
import math

import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.registry import register


class Activation:
    kind = "activation"
    #: points where the function has a kink; gradient checks keep inputs away from them
    kinks = ()

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_y):
        raise NotImplementedError


def stable_sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@register("linear")
class Linear(Activation):
    """Identity: y = x."""

    def forward(self, x):
        return x

    def backward(self, grad_y):
        return grad_y


@register("relu")
class ReLU(Activation):
    """Rectified linear unit: y = max(x, 0)."""

    kinks = (0.0,)

    def forward(self, x):
        self._positive = x > 0
        return np.maximum(x, 0, dtype=x.dtype) if array_module(x) is np else x * self._positive

    def backward(self, grad_y):
        return grad_y * self._positive


@register("leaky_relu")
class LeakyReLU(Activation):
    """y = x for x > 0, negative_slope * x otherwise.

    Args:
        negative_slope: slope for x < 0, >= 0 (Keras 3's default 0.2).
    """

    kinks = (0.0,)

    def __init__(self, negative_slope=0.2):
        self.negative_slope = check.non_negative("negative_slope", negative_slope)

    def forward(self, x):
        xp = array_module(x)
        self._slope = xp.where(x > 0, 1, self.negative_slope).astype(x.dtype)
        return x * self._slope

    def backward(self, grad_y):
        return grad_y * self._slope


@register("elu")
class ELU(Activation):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise; dy/dx = y + alpha for x <= 0.

    Args:
        alpha: scale of the negative part, > 0.
    """

    kinks = (0.0,)

    def __init__(self, alpha=1.0):
        self.alpha = check.positive("alpha", alpha)

    def forward(self, x):
        xp = array_module(x)
        self._x = x
        self._y = xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype)
        return self._y

    def backward(self, grad_y):
        xp = array_module(grad_y)
        return grad_y * xp.where(self._x > 0, 1, self._y + self.alpha).astype(grad_y.dtype)


@register("selu")
class SELU(Activation):
    """Scaled ELU: y = scale * elu(x, alpha) with the self-normalizing constants."""

    kinks = (0.0,)
    alpha = 1.6732632423543772
    scale = 1.0507009873554805

    def forward(self, x):
        xp = array_module(x)
        self._x = x
        neg = self.scale * self.alpha * xp.expm1(xp.minimum(x, 0))
        self._y = xp.where(x > 0, self.scale * x, neg).astype(x.dtype)
        return self._y

    def backward(self, grad_y):
        xp = array_module(grad_y)
        slope = xp.where(self._x > 0, self.scale, self._y + self.scale * self.alpha)
        return grad_y * slope.astype(grad_y.dtype)


_erf = np.frompyfunc(math.erf, 1, 1)
#: Numerical Recipes' erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + |z| / 2): relative error < 1.2e-7
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
         1.48851587, -0.82215223, 0.17087277)


def erf(z):
    """erf(z) elementwise, in z's dtype: exact on the host (math.erf), cupyx's on cupy, and on
    another array module a rational approximation (absolute error below 1.2e-7)."""
    xp = array_module(z)
    if xp is np:
        return _erf(z).astype(z.dtype)
    if xp.__name__ == "cupy":
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(z).astype(z.dtype)
    a = abs(z)
    t = 1 / (1 + 0.5 * a)
    poly = t * 0 + _ERFC[-1]
    for c in reversed(_ERFC[:-1]):
        poly = poly * t + c
    erfc = t * xp.exp(-a * a + poly)
    return xp.where(z >= 0, 1 - erfc, erfc - 1).astype(z.dtype)


@register("gelu")
class GELU(Activation):
    """Gaussian error linear unit: y = x * Phi(x).

    Args:
        approximate: use the tanh approximation instead of the exact erf form (Keras's default
            is the exact form, which is slower here: numpy has no vectorized erf).
    """

    def __init__(self, approximate=False):
        self.approximate = check.boolean("approximate", approximate)

    def forward(self, x):
        xp = array_module(x)
        self._x = x
        if self.approximate:
            c = math.sqrt(2 / math.pi)
            self._t = xp.tanh(c * (x + 0.044715 * x ** 3))
            return (0.5 * x * (1 + self._t)).astype(x.dtype)
        self._cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self._cdf

    def backward(self, grad_y):
        x = self._x
        xp = array_module(x)
        if self.approximate:
            c = math.sqrt(2 / math.pi)
            dt = (1 - self._t ** 2) * c * (1 + 3 * 0.044715 * x ** 2)
            return grad_y * (0.5 * (1 + self._t) + 0.5 * x * dt).astype(x.dtype)
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad_y * (self._cdf + x * pdf).astype(x.dtype)


@register("sigmoid")
class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)."""

    def forward(self, x):
        self._y = stable_sigmoid(x)
        return self._y

    def backward(self, grad_y):
        return grad_y * self._y * (1 - self._y)


@register("tanh")
class Tanh(Activation):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x):
        self._y = array_module(x).tanh(x)
        return self._y

    def backward(self, grad_y):
        return grad_y * (1 - self._y * self._y)


@register("softmax")
class Softmax(Activation):
    """y_i = exp(x_i) / sum_j exp(x_j) over the last axis; grad_x = y * (grad_y - sum(grad_y * y))."""

    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        self._y = e
        return e

    def backward(self, grad_y):
        y = self._y
        return y * (grad_y - (grad_y * y).sum(axis=-1, keepdims=True))


@register("swish", aliases=("silu",))
class Swish(Activation):
    """y = x * sigmoid(x); dy/dx = s + x s (1 - s)."""

    def forward(self, x):
        self._x = x
        self._s = stable_sigmoid(x)
        return x * self._s

    def backward(self, grad_y):
        s = self._s
        return grad_y * (s + self._x * s * (1 - s))


@register("softplus")
class Softplus(Activation):
    """y = log(1 + exp(x)), computed stably; dy/dx = sigmoid(x)."""

    def forward(self, x):
        xp = array_module(x)
        self._x = x
        return (xp.logaddexp(0, x)).astype(x.dtype)

    def backward(self, grad_y):
        return grad_y * stable_sigmoid(self._x)
