"""The accuracies: the fraction of samples a prediction gets right, in each label format."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.metrics.base import Metric, labels_of
from dltrain.registry import register


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
