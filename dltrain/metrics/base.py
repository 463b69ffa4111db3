"""The Metric base: ``reset()``, ``update(pred, target)`` per batch, ``result()`` for the epoch,
and its state as sums and counts (``state()``, ``load_state()``, ``merge()``); the name a metric
logs under; predicted and true classes whatever the label format."""
import numpy as np

from dltrain.backend import array_module


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


def one_hot_like(pred, target):
    """The target as 0/1 of the prediction's shape: integer labels become one-hot rows."""
    if target.shape == pred.shape or target.size == pred.size:
        return target.reshape(pred.shape) > 0.5
    labels = target.reshape(pred.shape[:-1]).astype(np.intp)
    return labels[..., None] == array_module(pred).arange(pred.shape[-1])
