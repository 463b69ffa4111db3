"""Losses: ``forward(pred, target) -> scalar`` (mean over the batch) and ``backward() -> grad_pred``.

Cross-entropies take ``from_logits``. When the model ends in the activation a cross-entropy
expects (softmax for categorical, sigmoid for binary) the trainer hands the loss the logits
instead (``fuses``): log-softmax / log-sigmoid are then computed stably and the gradient is the
short ``p - y`` rather than a chain through the activation's Jacobian.
"""
import numpy as np

from dltrain import check
from dltrain.activations import stable_sigmoid
from dltrain.errors import DataError
from dltrain.registry import register


class Loss:
    kind = "loss"
    #: the final activation this loss can fuse with (computing from logits instead)
    fuses = None
    #: how integer or one-hot targets should be shaped for this loss: "sparse", "dense"
    target = "dense"

    def __call__(self, pred, target, sample_weight=None, logits=False):
        return self.forward(pred, target, sample_weight, logits)

    def _weighted_mean(self, per_sample, sample_weight):
        """Mean over the batch of per-sample losses, weighted when weights are given."""
        self._n = len(per_sample)
        self._w = sample_weight
        if sample_weight is not None:
            per_sample = per_sample * sample_weight
        return per_sample.mean()

    def _scale(self, grad):
        """d(mean loss)/d(per-sample loss) applied to a per-sample gradient of shape (B, ...)."""
        grad /= self._n
        if self._w is not None:
            grad *= self._w.reshape(-1, *([1] * (grad.ndim - 1)))
        return grad


def _match(pred, target):
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


def _per_sample(values):
    """Mean over every axis but the batch axis."""
    return values.reshape(len(values), -1).mean(axis=1)


@register("mean_squared_error", aliases=("mse",))
class MeanSquaredError(Loss):
    """mean((pred - target)^2)."""

    def forward(self, pred, target, sample_weight=None, logits=False):
        self._diff = pred - _match(pred, target)
        return self._weighted_mean(_per_sample(self._diff ** 2), sample_weight)

    def backward(self):
        per_row = self._diff[0].size
        return self._scale(2 * self._diff / per_row)


@register("mean_absolute_error", aliases=("mae",))
class MeanAbsoluteError(Loss):
    """mean(|pred - target|)."""

    def forward(self, pred, target, sample_weight=None, logits=False):
        diff = pred - _match(pred, target)
        self._sign = np.sign(diff)
        return self._weighted_mean(_per_sample(np.abs(diff)), sample_weight)

    def backward(self):
        return self._scale(self._sign / self._sign[0].size)


@register("huber")
class Huber(Loss):
    """0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) beyond, with d = pred - target.

    Args:
        delta: where the loss turns from quadratic to linear, > 0.
    """

    def __init__(self, delta=1.0):
        self.delta = check.positive("delta", delta)

    def forward(self, pred, target, sample_weight=None, logits=False):
        d = pred - _match(pred, target)
        self._d = d
        a = np.abs(d)
        values = np.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))
        return self._weighted_mean(_per_sample(values), sample_weight)

    def backward(self):
        grad = np.clip(self._d, -self.delta, self.delta)
        return self._scale(grad / self._d[0].size)


class CrossEntropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0):
        self.from_logits = check.boolean("from_logits", from_logits)
        self.label_smoothing = check.fraction("label_smoothing", label_smoothing)


EPSILON = 1e-7


@register("binary_crossentropy", aliases=("bce",))
class BinaryCrossentropy(CrossEntropy):
    """-mean(y log p + (1 - y) log(1 - p)) over the outputs, p = sigmoid(logits) or the prediction.

    Probabilities are clipped to [1e-7, 1 - 1e-7], with no gradient where the clip cuts (Keras).

    Args:
        from_logits: the model outputs logits rather than probabilities.
        label_smoothing: targets become y (1 - s) + s / 2.
    """

    fuses = "sigmoid"

    def forward(self, pred, target, sample_weight=None, logits=False):
        y = _match(pred, target)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        self._y = y
        self._logits = logits or self.from_logits
        if self._logits:
            # log(1 + exp(-|z|)) + max(z, 0) - z y  ==  -[y log s(z) + (1 - y) log(1 - s(z))]
            self._p = stable_sigmoid(pred)
            values = np.logaddexp(0, -np.abs(pred)) + np.maximum(pred, 0) - pred * y
        else:
            self._p = np.clip(pred, EPSILON, 1 - EPSILON)
            self._inside = (pred > EPSILON) & (pred < 1 - EPSILON)     # where the clip passes
            values = -(y * np.log(self._p) + (1 - y) * np.log1p(-self._p))
        return self._weighted_mean(_per_sample(values), sample_weight)

    def backward(self):
        p, y = self._p, self._y
        if self._logits:
            grad = p - y
        else:
            grad = (p - y) / (p * (1 - p)) * self._inside           # 0 where the clip cuts (Keras)
        return self._scale(grad / p[0].size)


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class _Probabilities:
    """Keras's reading of probabilities: q = p / sum(p) over the classes, clipped to
    [eps, 1 - eps]; ``log`` is log(clipped q), and ``backward`` takes d/d(clipped q) to d/dp.

    d q_i / d p_k = (delta_ik - q_i) / s with s = sum(p), so grad_p = (g - sum_i g_i q_i) / s,
    with g zero where the clip cuts.
    """

    def __init__(self, pred):
        self.sum = pred.sum(axis=-1, keepdims=True)                    # (..., 1)
        self.q = pred / self.sum
        self.clipped = np.clip(self.q, EPSILON, 1 - EPSILON)
        self.log = np.log(self.clipped)

    def backward(self, grad_clipped):
        g = grad_clipped * ((self.q > EPSILON) & (self.q < 1 - EPSILON))
        return (g - (g * self.q).sum(axis=-1, keepdims=True)) / self.sum


@register("categorical_crossentropy", aliases=("cce",))
class CategoricalCrossentropy(CrossEntropy):
    """-sum(y log p) over classes, averaged over the batch; y one-hot (or soft) rows.

    Probabilities are read as Keras reads them: divided by their sum over the classes, then
    clipped to [1e-7, 1 - 1e-7] (no gradient where the clip cuts).

    Args:
        from_logits: the model outputs logits rather than probabilities.
        label_smoothing: targets become y (1 - s) + s / classes.
    """

    fuses = "softmax"

    def _targets(self, pred, target):
        y = _match(pred, target)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / pred.shape[-1]
        return y

    def forward(self, pred, target, sample_weight=None, logits=False):
        y = self._targets(pred, target)
        self._y = y
        self._logits = logits or self.from_logits
        if self._logits:
            log_p = _log_softmax(pred)
            self._p = np.exp(log_p)
        else:
            self._probabilities = _Probabilities(pred)
            self._p = self._probabilities.clipped
            log_p = self._probabilities.log
        values = -(y * log_p).sum(axis=-1)
        return self._weighted_mean(_per_sample(values.reshape(len(values), -1)), sample_weight)

    def backward(self):
        steps = self._p[0].size // self._p.shape[-1]
        if self._logits:
            grad = self._p - self._y
        else:
            grad = self._probabilities.backward(-self._y / self._p)
        return self._scale(grad / steps)


@register("sparse_categorical_crossentropy", aliases=("scce",))
class SparseCategoricalCrossentropy(CrossEntropy):
    """-log p[label], averaged over the batch; labels are class indices.

    Probabilities are renormalised and clipped as categorical_crossentropy's.

    Args:
        from_logits: the model outputs logits rather than probabilities.
        label_smoothing: as categorical_crossentropy's, on the one-hot labels.
    """

    fuses = "softmax"
    target = "sparse"

    def forward(self, pred, target, sample_weight=None, logits=False):
        classes = pred.shape[-1]
        labels = np.asarray(target).reshape(pred.shape[:-1]).astype(np.intp, copy=False)
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise DataError(f"label {bad} is outside the model's {classes} classes (0..{classes - 1})",
                            fix="check the labels, or give the last layer as many units as classes.")
        self._labels = labels
        self._logits = logits or self.from_logits
        if self._logits:
            log_p = _log_softmax(pred)
            self._p = np.exp(log_p)
        else:
            self._probabilities = _Probabilities(pred)
            self._p = self._probabilities.clipped
            log_p = self._probabilities.log
        picked = np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
        values = -picked
        if self.label_smoothing:
            s = self.label_smoothing
            values = (1 - s) * values - s * log_p.mean(axis=-1)
        return self._weighted_mean(_per_sample(values.reshape(len(values), -1)), sample_weight)

    def backward(self):
        p = self._p
        s = self.label_smoothing
        steps = p[0].size // p.shape[-1]
        if self._logits:
            grad = p.copy() if s == 0 else p - s / p.shape[-1]
            np.put_along_axis(grad, self._labels[..., None],
                              np.take_along_axis(grad, self._labels[..., None], axis=-1) - (1 - s), axis=-1)
        else:
            grad = -(s / p.shape[-1]) / p if s else np.zeros_like(p)
            picked = np.take_along_axis(p, self._labels[..., None], axis=-1)
            np.put_along_axis(grad, self._labels[..., None],
                              np.take_along_axis(grad, self._labels[..., None], axis=-1)
                              - (1 - s) / picked, axis=-1)
            grad = self._probabilities.backward(grad)
        return self._scale(grad / steps)
