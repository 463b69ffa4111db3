"""Precision, recall and F1: from per-class true positive, false positive and false negative counts."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module, like, to_host
from dltrain.metrics.base import Metric, labels_of, one_hot_like
from dltrain.registry import register


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


def _thresholded_counts(pred, target, threshold):
    """Per output column (tp, fp, fn) with a prediction positive where it exceeds threshold."""
    pred = pred.reshape(len(pred), -1) if pred.ndim == 1 else pred
    true = one_hot_like(pred, target).reshape(-1, pred.shape[-1])
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
