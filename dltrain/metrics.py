"""Metrics: ``reset()``, ``update(pred, target)`` per batch, ``result()`` for the epoch.

``accuracy`` is resolved from the loss as Keras does: sparse labels for
sparse_categorical_crossentropy, one-hot rows for categorical_crossentropy, a 0.5 threshold for
binary_crossentropy or a single output unit.
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module, to_host
from dltrain.registry import register


class Metric:
    kind = "metric"
    #: "max" when larger is better, "min" otherwise (callbacks use it as their default mode)
    direction = "max"

    def __init__(self):
        self.reset()

    def reset(self):
        self.total = 0.0
        self.count = 0

    def update(self, pred, target):
        values = self.values(pred, target)
        self.total += values.sum().astype(np.float64)     # stays on the device: read in result()
        self.count += values.size

    def result(self):
        return float(self.total) / self.count if self.count else float("nan")


def labels_of(pred, target):
    """(predicted class, true class) arrays, whatever the label format."""
    if pred.shape[-1] == 1 or pred.ndim == 1:
        p = pred.reshape(len(pred), -1)
        return (p > 0.5).astype(np.intp).ravel(), target.reshape(p.shape).round().astype(np.intp).ravel()
    predicted = pred.argmax(axis=-1)
    if target.shape == pred.shape:
        return predicted.ravel(), target.argmax(axis=-1).ravel()
    return predicted.ravel(), target.reshape(predicted.shape).astype(np.intp).ravel()


@register("accuracy", aliases=("acc",))
class Accuracy(Metric):
    """Fraction of samples whose predicted class is the true class (format taken from the shapes)."""

    def values(self, pred, target):
        predicted, true = labels_of(pred, target)
        return predicted == true


@register("binary_accuracy")
class BinaryAccuracy(Metric):
    """Fraction of outputs on the right side of threshold.

    Args:
        threshold: predictions above it count as 1.
    """

    def __init__(self, threshold=0.5):
        self.threshold = check.number("threshold", threshold)
        super().__init__()

    def values(self, pred, target):
        return (pred > self.threshold) == (target.reshape(pred.shape) > 0.5)


@register("categorical_accuracy")
class CategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max matches the one-hot target's."""

    def values(self, pred, target):
        return pred.argmax(axis=-1) == target.argmax(axis=-1)


@register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max equals the integer label."""

    def values(self, pred, target):
        predicted = pred.argmax(axis=-1)
        return predicted == target.reshape(predicted.shape)


@register("top_k_accuracy", aliases=("top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"))
class TopKAccuracy(Metric):
    """Fraction of samples whose true class is among the k highest predictions.

    Args:
        k: how many of the top predictions count, a positive integer.
    """

    def __init__(self, k=5):
        self.k = check.positive_int("k", k)
        super().__init__()

    def values(self, pred, target):
        true = target.argmax(axis=-1) if target.shape == pred.shape else target.reshape(pred.shape[:-1])
        true_score = array_module(pred).take_along_axis(pred, true.astype(np.intp)[..., None], axis=-1)
        return (pred > true_score).sum(axis=-1) < self.k


class Confusion(Metric):
    """Per-class true positive, false positive and false negative counts (macro over classes)."""

    def reset(self):
        self.tp = self.fp = self.fn = None

    def update(self, pred, target):
        xp = array_module(pred)
        predicted, true = labels_of(pred, target)
        classes = max(2, pred.shape[-1]) if pred.ndim > 1 else 2
        cm = xp.bincount(true * classes + predicted, minlength=classes * classes)
        cm = cm.reshape(classes, classes)
        tp, fp, fn = xp.diag(cm), cm.sum(axis=0) - xp.diag(cm), cm.sum(axis=1) - xp.diag(cm)
        if self.tp is None:
            self.tp, self.fp, self.fn = tp, fp, fn
        else:
            self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn

    def _per_class(self):
        tp, fp, fn = (to_host(a).astype(float) for a in (self.tp, self.fp, self.fn))   # epoch end
        if len(tp) == 2 and self.binary:
            tp, fp, fn = tp[1:], fp[1:], fn[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        return precision, recall

    binary = True

    def result(self):
        if self.tp is None:
            return float("nan")
        return float(np.mean(self.score(*self._per_class())))


@register("precision")
class Precision(Confusion):
    """tp / (tp + fp): of the positive class for one output unit, macro-averaged over classes otherwise."""

    def score(self, precision, recall):
        return precision


@register("recall")
class Recall(Confusion):
    """tp / (tp + fn): of the positive class for one output unit, macro-averaged over classes otherwise."""

    def score(self, precision, recall):
        return recall


@register("f1", aliases=("f1_score",))
class F1(Confusion):
    """Harmonic mean of precision and recall (macro-averaged over classes for several outputs)."""

    def score(self, precision, recall):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)


@register("auc")
class AUC(Metric):
    """Exact area under the ROC curve from ranks (ties counted half); macro one-vs-rest for classes."""

    def reset(self):
        self.scores, self.targets = [], []

    def update(self, pred, target):
        self.scores.append(pred.astype(np.float64).reshape(len(pred), -1))   # read at epoch end
        self.targets.append(target)

    def result(self):
        if not self.scores:
            return float("nan")
        scores = np.concatenate([to_host(s) for s in self.scores])
        target = np.concatenate([to_host(t) for t in self.targets])
        if scores.shape[1] == 1:
            return _binary_auc(scores[:, 0], target.reshape(-1) > 0.5)
        true = target.argmax(axis=-1) if target.shape == scores.shape else target.reshape(-1)
        aucs = [_binary_auc(scores[:, c], true == c) for c in range(scores.shape[1])]
        aucs = [a for a in aucs if not np.isnan(a)]
        return float(np.mean(aucs)) if aucs else float("nan")


def _binary_auc(scores, positive):
    """Mann-Whitney U / (n_pos n_neg), with average ranks for ties."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2                 # 1-based average rank of each tie group
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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

    def reset(self):
        self.n = 0
        self.sum = self.sum_sq = self.ss_res = 0.0

    def update(self, pred, target):
        pred = pred.astype(np.float64).reshape(len(pred), -1)
        target = target.astype(np.float64).reshape(pred.shape)
        self.n += len(pred)
        self.sum = self.sum + target.sum(axis=0)
        self.sum_sq = self.sum_sq + (target * target).sum(axis=0)
        self.ss_res = self.ss_res + ((target - pred) ** 2).sum(axis=0)

    def result(self):
        if self.n == 0:
            return float("nan")
        ss_tot = to_host(self.sum_sq) - to_host(self.sum) ** 2 / self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.mean(1 - to_host(self.ss_res) / ss_tot))
