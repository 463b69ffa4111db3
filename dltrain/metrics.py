"""Metrics: ``reset()``, ``update(pred, target)`` per batch, ``result()`` for the epoch.

A metric's state is sums and counts (arrays of them, or the lists of scores AUC ranks), named in
``state_names``: ``state()`` returns them, ``load_state()`` puts them back (a mid-epoch resume)
and ``merge(state)`` adds another state to this one, so the states of several processes, or of the
halves of a batch, combine into exactly the state of the whole.

``accuracy`` is resolved from the loss as Keras does: sparse labels for
sparse_categorical_crossentropy, one-hot rows for categorical_crossentropy, a 0.5 threshold for
binary_crossentropy or a single output unit.
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module, like, to_host
from dltrain.registry import register


def metric_name(spec):
    """The name a metric logs under: its ``name``, else its type as written."""
    if isinstance(spec, str):
        return spec
    return spec.get("name", spec.get("type"))


class Metric:
    kind = "metric"
    #: "max" when larger is better, "min" otherwise (callbacks use it as their default mode)
    direction = "max"
    #: the attributes that hold the state: sums and counts (numbers or arrays), or lists
    state_names = ("total", "count")

    def __init__(self):
        self.reset()

    def state(self):
        """{name: value} of the accumulated state (the values themselves, not copies)."""
        return {name: getattr(self, name) for name in self.state_names}

    def load_state(self, state):
        for name in self.state_names:
            setattr(self, name, state[name])

    def merge(self, state):
        """Add another metric's ``state()`` to this one: sums add, lists extend; None is empty."""
        for name in self.state_names:
            mine, theirs = getattr(self, name), state[name]
            if theirs is None:
                continue
            if isinstance(mine, list):
                setattr(self, name, mine + list(theirs))
            else:
                setattr(self, name, theirs if mine is None else mine + theirs)

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
    """Per-class true positive, false positive and false negative counts.

    Two ways to call a prediction positive: dltrain's default, the arg-max class of each row
    (0.5 for one output unit), or Keras's threshold on every output (``thresholds`` /
    ``threshold``, or ``class_id`` at 0.5), which counts each output column as its own class.
    """

    binary = True
    #: the argument that sets Keras's element-wise threshold (Keras spells it per metric)
    threshold_argument = "thresholds"

    def __init__(self, threshold=None, class_id=None):
        self._threshold = None if threshold is None else check.fraction(self.threshold_argument, threshold,
                                                                        closed=True)
        self._class_id = None if class_id is None else check.non_negative_int("class_id", class_id)
        super().__init__()

    state_names = ("tp", "fp", "fn")

    def reset(self):
        self.tp = self.fp = self.fn = None

    @property
    def elementwise(self):
        return self._threshold is not None or self._class_id is not None

    def update(self, pred, target):
        xp = array_module(pred)
        if self.elementwise:
            tp, fp, fn = _thresholded_counts(pred, target, 0.5 if self._threshold is None else self._threshold)
        else:
            predicted, true = labels_of(pred, target)
            classes = max(2, pred.shape[-1]) if pred.ndim > 1 else 2
            cm = xp.bincount(true * classes + predicted, minlength=classes * classes)
            cm = cm.reshape(classes, classes)
            tp, fp, fn = xp.diag(cm), cm.sum(axis=0) - xp.diag(cm), cm.sum(axis=1) - xp.diag(cm)
        if self.tp is None:
            self.tp, self.fp, self.fn = tp, fp, fn
        else:
            # like(): sums restored from a checkpoint are on the host; the batch's may not be
            self.tp, self.fp, self.fn = like(self.tp, tp) + tp, like(self.fp, fp) + fp, like(self.fn, fn) + fn

    def _counts(self):
        """(tp, fp, fn) as floats, one entry per class that counts."""
        tp, fp, fn = (to_host(a).astype(float) for a in (self.tp, self.fp, self.fn))   # epoch end
        if self._class_id is not None:
            if self._class_id >= len(tp):
                from dltrain.errors import DataError

                raise DataError(f"class_id {self._class_id} is outside the model's {len(tp)} outputs",
                                fix=f"use a class_id below {len(tp)}.")
            return tp[[self._class_id]], fp[[self._class_id]], fn[[self._class_id]]
        if len(tp) == 2 and self.binary and not self.elementwise:
            return tp[1:], fp[1:], fn[1:]
        return tp, fp, fn

    def result(self):
        if self.tp is None:
            return float("nan")
        tp, fp, fn = self._counts()
        if self.elementwise:                   # Keras: micro, over every output counted
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        return float(np.mean(self.score(*_rates(tp, fp, fn))))


def _rates(tp, fp, fn):
    """(precision, recall) per entry, 0 where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
    return precision, recall


def _one_hot_like(pred, target):
    """The target as 0/1 of the prediction's shape: integer labels become one-hot rows."""
    if target.shape == pred.shape or target.size == pred.size:
        return target.reshape(pred.shape) > 0.5
    labels = target.reshape(pred.shape[:-1]).astype(np.intp)
    return labels[..., None] == array_module(pred).arange(pred.shape[-1])


def _thresholded_counts(pred, target, threshold):
    """Per output column (tp, fp, fn) with a prediction positive where it exceeds threshold."""
    pred = pred.reshape(len(pred), -1) if pred.ndim == 1 else pred
    true = _one_hot_like(pred, target).reshape(-1, pred.shape[-1])
    positive = pred.reshape(-1, pred.shape[-1]) > threshold
    return ((positive & true).sum(axis=0), (positive & ~true).sum(axis=0), (~positive & true).sum(axis=0))


_CONFUSION_ARGS = """
    Args:
        thresholds: Keras's element-wise reading: every output above it counts as predicted
            (micro over outputs); null (default): the arg-max class, macro over classes.
        class_id: score only this output column, thresholded (at 0.5 unless thresholds is set).
"""


@register("precision")
class Precision(Confusion):
    __doc__ = ("tp / (tp + fp): of the positive class for one output unit, macro-averaged over "
               "classes otherwise.\n" + _CONFUSION_ARGS)

    def __init__(self, thresholds=None, class_id=None):
        self.thresholds, self.class_id = thresholds, class_id
        super().__init__(thresholds, class_id)

    def score(self, precision, recall):
        return precision


@register("recall")
class Recall(Confusion):
    __doc__ = ("tp / (tp + fn): of the positive class for one output unit, macro-averaged over "
               "classes otherwise.\n" + _CONFUSION_ARGS)

    def __init__(self, thresholds=None, class_id=None):
        self.thresholds, self.class_id = thresholds, class_id
        super().__init__(thresholds, class_id)

    def score(self, precision, recall):
        return recall


@register("f1", aliases=("f1_score",))
class F1(Confusion):
    """Harmonic mean of precision and recall, per class, then averaged.

    Args:
        average: macro (default: the mean over classes), micro (from the summed counts) or
            weighted (by each class's true count), as Keras's F1Score; one output unit scores
            its positive class. Keras's default, one value per class, is not offered: a metric
            here is one number.
        threshold: Keras's element-wise reading: every output above it counts as predicted;
            null (default, as Keras): the arg-max class (0.5 for one output unit).
    """

    threshold_argument = "threshold"

    def __init__(self, average="macro", threshold=None):
        self.average = check.one_of("average", average, ("macro", "micro", "weighted"))
        self.threshold = threshold
        super().__init__(threshold)

    def result(self):
        if self.tp is None:
            return float("nan")
        tp, fp, fn = self._counts()
        if self.average == "micro":
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        f1 = self.score(*_rates(tp, fp, fn))
        if self.average == "weighted":
            support = tp + fn
            return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
        return float(np.mean(f1))

    def score(self, precision, recall):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)


@register("auc")
class AUC(Metric):
    """Area under the ROC curve.

    dltrain's default is exact (from ranks, ties counted half) and, for several outputs, macro
    one-vs-rest; Keras's default is ``{multi_label: false, num_thresholds: 200}``.

    Args:
        num_thresholds: null (default): exact; an integer > 1: Keras's approximation over that
            many evenly spaced thresholds, summed by trapezoids.
        multi_label: for several outputs, the mean of one AUC per output column (true, default)
            or one AUC over every (output, target) pair (false, Keras's default).
    """

    def __init__(self, num_thresholds=None, multi_label=True):
        if num_thresholds is not None and (check.positive_int("num_thresholds", num_thresholds) < 2):
            check._fail("num_thresholds", num_thresholds, "an integer > 1, or null for the exact area")
        self.num_thresholds = num_thresholds
        self.multi_label = check.boolean("multi_label", multi_label)
        super().__init__()

    state_names = ("scores", "targets")

    def reset(self):
        self.scores, self.targets = [], []

    def update(self, pred, target):
        self.scores.append(pred.astype(np.float64).reshape(len(pred), -1))   # read at epoch end
        self.targets.append(target)

    def result(self):
        if not self.scores:
            return float("nan")
        scores = _on_host(self.scores)
        positive = _one_hot_like(scores, _on_host(self.targets))      # (N, columns)
        area = _binary_auc if self.num_thresholds is None else self._thresholded_auc
        if not self.multi_label or scores.shape[1] == 1:
            return area(scores.ravel(), positive.ravel())
        aucs = [area(scores[:, c], positive[:, c]) for c in range(scores.shape[1])]
        aucs = [a for a in aucs if not np.isnan(a)]
        return float(np.mean(aucs)) if aucs else float("nan")

    def _thresholded_auc(self, scores, positive):
        """Keras's AUC: tp and fp rates at thresholds -eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps,
        a prediction counting where it exceeds the threshold; trapezoids between them."""
        n = self.num_thresholds
        thresholds = np.array([-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7])
        above = scores[None, :] > thresholds[:, None]                    # (n, N)
        tp, fp = (above & positive).sum(axis=1), (above & ~positive).sum(axis=1)
        n_pos, n_neg = positive.sum(), (~positive).sum()
        tpr = tp / n_pos if n_pos else np.zeros(n)
        fpr = fp / n_neg if n_neg else np.zeros(n)
        return float(((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2).sum())


def _on_host(arrays):
    """The arrays concatenated, as one host array: one read back from a device, not one each."""
    xp = array_module(arrays[0])
    if xp is not np and all(array_module(a) is xp for a in arrays):
        return to_host(xp.concatenate(arrays))
    return np.concatenate([to_host(a) for a in arrays])


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
