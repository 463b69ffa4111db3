"""The Loss base and LossSum: ``sum(pred, target)`` and ``backward(count)``, and the helpers the
losses share (a target matched to the prediction's shape, the mean over all but the batch axis)."""
from typing import NamedTuple

import numpy as np

from dltrain.errors import DataError


class LossSum(NamedTuple):
    """One batch's loss: ``total`` the sum of (weighted) per-sample values, a 0-d array of the
    prediction's dtype; ``count`` the samples summed; ``probabilities`` the activated output when
    the loss read logits, else None (the prediction itself is the probability)."""

    total: np.ndarray
    count: int
    probabilities: np.ndarray = None

    @property
    def mean(self):
        """total / count in the prediction's dtype, exactly as ``np.mean`` computes it."""
        return (self.total / self.count).astype(self.total.dtype)     # a 0-d array on a device


class Loss:
    kind = "loss"
    #: the final activation this loss can fuse with (computing from logits instead)
    fuses = None
    #: how integer or one-hot targets should be shaped for this loss: "sparse", "dense"
    target = "dense"

    def __call__(self, pred, target, sample_weight=None, logits=False):
        return self.forward(pred, target, sample_weight, logits)

    def forward(self, pred, target, sample_weight=None, logits=False):
        """The mean over the batch (weighted per sample when weights are given)."""
        return self.sum(pred, target, sample_weight, logits).mean

    def sum(self, pred, target, sample_weight=None, logits=False):
        """The LossSum of a batch; remembers what ``backward`` needs."""
        per_sample = self.per_sample(pred, target, logits)
        self._n = len(per_sample)
        self._w = sample_weight
        if sample_weight is not None:
            per_sample = per_sample * sample_weight
        read_logits = logits or getattr(self, "from_logits", False)
        return LossSum(per_sample.sum(), self._n, self._p if read_logits else None)

    def backward(self, count=None):
        """d(total / count)/d(pred); ``count`` defaults to this batch's sample count."""
        grad = self.gradient()
        grad /= self._n if count is None else count
        if self._w is not None:
            grad *= self._w.reshape(-1, *([1] * (grad.ndim - 1)))
        return grad

    def targets(self, y, units, dtype):
        """Raw labels as the targets this loss reads: integer labels for a sparse loss, floats of
        the model's dtype otherwise (``units``: the model's outputs per sample)."""
        if self.target == "sparse":
            return np.asarray(y)
        return np.asarray(y).astype(dtype, copy=False)

    def per_sample(self, pred, target, logits):
        """(B,) loss of each sample."""
        raise NotImplementedError

    def gradient(self):
        """d(per-sample loss)/d(pred) of the last batch, a new array of the prediction's shape."""
        raise NotImplementedError


def match_target(pred, target):
    """The target as a float array of the prediction's shape ((B,) labels become (B, 1))."""
    target = target.astype(pred.dtype, copy=False)
    if target.shape != pred.shape:
        if target.size != pred.size:
            raise DataError(f"targets of shape {target.shape} do not match predictions "
                            f"of shape {pred.shape}",
                            fix="check the label format: integer classes need "
                                "sparse_categorical_crossentropy, one-hot rows categorical_crossentropy.")
        target = target.reshape(pred.shape)
    return target


def per_sample_mean(values):
    """Mean over every axis but the batch axis."""
    return values.reshape(len(values), -1).mean(axis=1)
