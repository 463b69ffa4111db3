"""Regression losses: mean squared error, mean absolute error, Huber."""
from dltrain import check
from dltrain.backend import array_module
from dltrain.losses.base import Loss, match_target, per_sample_mean
from dltrain.registry import register


@register("mean_squared_error", aliases=("mse",))
class MeanSquaredError(Loss):
    """mean((pred - target)^2)."""

    def per_sample(self, pred, target, logits=False):
        self._diff = pred - match_target(pred, target)
        return per_sample_mean(self._diff ** 2)

    def gradient(self):
        per_row = self._diff[0].size
        return 2 * self._diff / per_row


@register("mean_absolute_error", aliases=("mae",))
class MeanAbsoluteError(Loss):
    """mean(|pred - target|)."""

    def per_sample(self, pred, target, logits=False):
        diff = pred - match_target(pred, target)
        self._sign = array_module(diff).sign(diff)
        return per_sample_mean(abs(diff))

    def gradient(self):
        return self._sign / self._sign[0].size


@register("huber")
class Huber(Loss):
    """0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) beyond, with d = pred - target.

    Args:
        delta: where the loss turns from quadratic to linear, > 0.
    """

    def __init__(self, delta=1.0):
        self.delta = check.positive("delta", delta)

    def per_sample(self, pred, target, logits=False):
        d = pred - match_target(pred, target)
        self._d = d
        a = abs(d)
        values = array_module(d).where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))
        return per_sample_mean(values)

    def gradient(self):
        grad = self._d.clip(-self.delta, self.delta)
        return grad / self._d[0].size
