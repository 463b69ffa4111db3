"""``training: {class_weight: {0: 1.0, 1: 5.0}}``: each sample's loss weighted by its class.

As in Keras, a class left out has weight 1, and the weighted losses are averaged over the batch
size (not over the weights), so the scale of the loss does not depend on the batch's classes.
"""
import numpy as np

from dltrain.backend import array_module
from dltrain.errors import ConfigError


def table(class_weight, classes, dtype=np.float32, where=None):
    """The (classes,) array of weights from a {class index: weight} mapping (None stays None)."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise ConfigError(f"class_weight must map class indices to weights, not {class_weight!r}",
                          where=where, fix="write e.g. `class_weight: {0: 1.0, 1: 5.0}`.")
    weights = np.ones(max(classes, 2), dtype=dtype)
    for key, value in class_weight.items():
        if not isinstance(key, int) or not 0 <= key < len(weights):
            raise ConfigError(f"class_weight has class {key!r}, outside the model's classes 0..{len(weights) - 1}",
                              where=where, fix="use integer class indices as keys.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"class_weight of class {key} is {value!r}", where=where,
                              expected="a number >= 0")
        weights[key] = value
    return weights


def sample_weights(weights, y):
    """(B,) weights of a batch of targets: integer labels, one-hot rows or 0/1 values."""
    xp = array_module(y)
    if y.ndim >= 2 and y.shape[-1] == len(weights) and y.shape[-1] > 1:   # one-hot (B, C)
        return (y @ weights).reshape(len(y), -1).mean(axis=1)
    labels = y.reshape(len(y), -1)[:, 0]
    return weights[xp.rint(labels).astype(np.intp)]
