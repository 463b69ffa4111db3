"""The cross-entropies (binary, categorical, sparse categorical): from probabilities read as
Keras reads them, or from logits when the model's last activation is fused into the loss."""
import numpy as np

from dltrain import check
from dltrain.activations import stable_sigmoid
from dltrain.backend import array_module, on_host
from dltrain.errors import DataError
from dltrain.losses.base import Loss, match_target, per_sample_mean
from dltrain.registry import register


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

    def per_sample(self, pred, target, logits=False):
        y = match_target(pred, target)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        self._y = y
        self._logits = logits or self.from_logits
        xp = array_module(pred)
        if self._logits:
            # log(1 + exp(-|z|)) + max(z, 0) - z y  ==  -[y log s(z) + (1 - y) log(1 - s(z))]
            self._p = stable_sigmoid(pred)
            values = xp.logaddexp(0, -abs(pred)) + xp.maximum(pred, 0) - pred * y
        else:
            self._p = pred.clip(EPSILON, 1 - EPSILON)
            self._inside = (pred > EPSILON) & (pred < 1 - EPSILON)     # where the clip passes
            values = -(y * xp.log(self._p) + (1 - y) * xp.log1p(-self._p))
        return per_sample_mean(values)

    def gradient(self):
        p, y = self._p, self._y
        if self._logits:
            grad = p - y
        else:
            grad = (p - y) / (p * (1 - p)) * self._inside           # 0 where the clip cuts (Keras)
        return grad / p[0].size


def _log_softmax(z):
    xp = array_module(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


class _Probabilities:
    """Keras's reading of probabilities: q = p / sum(p) over the classes, clipped to
    [eps, 1 - eps]; ``log`` is log(clipped q), and ``backward`` takes d/d(clipped q) to d/dp.

    d q_i / d p_k = (delta_ik - q_i) / s with s = sum(p), so grad_p = (g - sum_i g_i q_i) / s,
    with g zero where the clip cuts.
    """

    def __init__(self, pred):
        self.sum = pred.sum(axis=-1, keepdims=True)                    # (..., 1)
        self.q = pred / self.sum
        self.clipped = self.q.clip(EPSILON, 1 - EPSILON)
        self.log = array_module(pred).log(self.clipped)

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

    def targets(self, y, units, dtype):
        """Integer labels become one-hot rows; one-hot (or soft) rows pass as floats."""
        y = np.asarray(y)
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and units > 1):
            return np.eye(units, dtype=dtype)[y.reshape(-1).astype(np.intp)]
        return y.astype(dtype, copy=False)

    def _targets(self, pred, target):
        y = match_target(pred, target)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / pred.shape[-1]
        return y

    def per_sample(self, pred, target, logits=False):
        y = self._targets(pred, target)
        self._y = y
        self._logits = logits or self.from_logits
        if self._logits:
            log_p = _log_softmax(pred)
            self._p = array_module(pred).exp(log_p)
        else:
            self._probabilities = _Probabilities(pred)
            self._p = self._probabilities.clipped
            log_p = self._probabilities.log
        values = -(y * log_p).sum(axis=-1)
        return per_sample_mean(values.reshape(len(values), -1))

    def gradient(self):
        steps = self._p[0].size // self._p.shape[-1]
        if self._logits:
            grad = self._p - self._y
        else:
            grad = self._probabilities.backward(-self._y / self._p)
        return grad / steps


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

    def per_sample(self, pred, target, logits=False):
        classes = pred.shape[-1]
        xp = array_module(pred)
        labels = xp.asarray(target).reshape(pred.shape[:-1]).astype(np.intp, copy=False)
        # on a device the range check would be a read back per batch: fit and evaluate check
        # every split's labels once before the first batch (_check_labels in api/training.py)
        if on_host(labels) and labels.size and (labels.min() < 0 or labels.max() >= classes):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise DataError(f"label {bad} is outside the model's {classes} classes (0..{classes - 1})",
                            fix="check the labels, or give the last layer as many units as classes.")
        self._labels = labels
        self._logits = logits or self.from_logits
        if self._logits:
            log_p = _log_softmax(pred)
            self._p = xp.exp(log_p)
        else:
            self._probabilities = _Probabilities(pred)
            self._p = self._probabilities.clipped
            log_p = self._probabilities.log
        picked = xp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
        values = -picked
        if self.label_smoothing:
            s = self.label_smoothing
            values = (1 - s) * values - s * log_p.mean(axis=-1)
        return per_sample_mean(values.reshape(len(values), -1))

    def gradient(self):
        p = self._p
        s = self.label_smoothing
        steps = p[0].size // p.shape[-1]
        if self._logits:
            grad = p.copy() if s == 0 else p - s / p.shape[-1]
        else:
            grad = -(s / p.shape[-1]) / p if s else array_module(p).zeros_like(p)
        # the label entry of each row, by (row, label) pairs: each row once, so no scatter-add
        rows, labels = array_module(p).arange(self._labels.size), self._labels.reshape(-1)
        at = grad.reshape(-1, grad.shape[-1])                    # (N, C), a view of grad
        at[rows, labels] -= (1 - s) if self._logits else (1 - s) / p.reshape(at.shape)[rows, labels]
        if not self._logits:
            grad = self._probabilities.backward(grad)
        return grad / steps
