"""Regression metrics: mean absolute and squared error, its root, and R^2."""
import numpy as np

from dltrain.backend import like, to_host
from dltrain.metrics.base import Metric
from dltrain.registry import register


class Regression(Metric):
    direction = "min"

    def values(self, pred, target):
        return self.elementwise(pred - target.reshape(pred.shape).astype(pred.dtype))


@register("mae", aliases=("mean_absolute_error",))
class MAE(Regression):
    """Mean absolute error."""

    def elementwise(self, diff):
        return abs(diff)


@register("mse", aliases=("mean_squared_error",))
class MSE(Regression):
    """Mean squared error."""

    def elementwise(self, diff):
        return diff * diff


@register("rmse", aliases=("root_mean_squared_error",))
class RMSE(MSE):
    """Root of the mean squared error over the epoch."""

    def result(self):
        return float(np.sqrt(super().result()))


@register("r2", aliases=("r2_score",))
class R2(Metric):
    """Coefficient of determination, 1 - SS_res / SS_tot, over the epoch (averaged over outputs)."""

    state_names = ("n", "sum", "sum_sq", "ss_res")

    def reset(self):
        self.n = 0
        self.sum = self.sum_sq = self.ss_res = 0.0

    def update(self, pred, target):
        pred = pred.astype(np.float64).reshape(len(pred), -1)
        target = target.astype(np.float64).reshape(pred.shape)
        self.n += len(pred)
        self.sum = like(self.sum, target) + target.sum(axis=0)         # like(): as Confusion's
        self.sum_sq = like(self.sum_sq, target) + (target * target).sum(axis=0)
        self.ss_res = like(self.ss_res, target) + ((target - pred) ** 2).sum(axis=0)

    def result(self):
        if self.n == 0:
            return float("nan")
        ss_tot = to_host(self.sum_sq) - to_host(self.sum) ** 2 / self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.mean(1 - to_host(self.ss_res) / ss_tot))
