"""Area under the ROC curve: exact from ranks, or Keras's thresholded approximation."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module, to_host
from dltrain.metrics.base import Metric, one_hot_like
from dltrain.registry import register


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
        positive = one_hot_like(scores, _on_host(self.targets))      # (N, columns)
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
