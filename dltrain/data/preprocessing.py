"""Preprocessing steps, fitted on the training split only and saved with the model.

A step has ``fit(x)`` (learn statistics), ``transform(x)`` and ``state_dict()`` /
``load_state_dict()``, so ``evaluate`` and ``predict`` apply exactly what ``fit`` applied.
"""
import numpy as np

from dltrain import check
from dltrain.registry import register


class Preprocessing:
    kind = "preprocessing"

    def fit(self, x):
        pass

    def transform(self, x):
        raise NotImplementedError

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        for key, value in state.items():
            setattr(self, key, np.asarray(value))


@register("rescale")
class Rescale(Preprocessing):
    """x * scale + offset (e.g. scale 1/255 for 8-bit images).

    Args:
        scale: multiplier.
        offset: added after scaling.
    """

    def __init__(self, scale, offset=0.0):
        self.scale = check.number("scale", scale)
        self.offset = check.number("offset", offset)

    def transform(self, x):
        y = np.multiply(x, np.float32(self.scale), dtype=np.float32)
        if self.offset:
            y += np.float32(self.offset)
        return y


@register("standardize")
class Standardize(Preprocessing):
    """(x - mean) / std per feature, with mean and std from the training split.

    Args:
        epsilon: floor of the standard deviation (constant features are left centred).
    """

    def __init__(self, epsilon=1e-7):
        self.epsilon = check.positive("epsilon", epsilon)
        self.mean = self.std = None

    def fit(self, x):
        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(axis=0).astype(np.float32)
        self.std = np.maximum(x.std(axis=0), self.epsilon).astype(np.float32)

    def transform(self, x):
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}
