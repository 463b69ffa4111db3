"""Weight penalties added to the loss: ``kernel_regularizer`` / ``bias_regularizer`` on a layer.

``{type: dense, units: 64, kernel_regularizer: {type: l2, l2: 0.001}}``: the model builder takes
the two keys off the layer spec (as it does ``activation``) and puts the built regularizers in
``layer.regularizers`` by parameter name; after each backward pass the trainer calls
``apply(terms)``, which adds every penalty's gradient to its parameter's gradient and returns
the total penalty, added to the logged loss as Keras does.
"""
from dltrain import check
from dltrain.backend import array_module
from dltrain.errors import ConfigError
from dltrain.registry import build, register

#: layer-spec keys that name a regularizer, and the parameter each one applies to
SPEC_KEYS = {"kernel_regularizer": "kernel", "bias_regularizer": "bias"}


class Regularizer:
    kind = "regularizer"

    def penalty(self, w):
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError


@register("l1_l2")
class L1L2(Regularizer):
    """penalty = l1 * sum|w| + l2 * sum w^2;  gradient = l1 * sign(w) + 2 l2 * w.

    Args:
        l1: weight of the absolute values, >= 0.
        l2: weight of the squares, >= 0.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = check.non_negative("l1", l1)
        self.l2 = check.non_negative("l2", l2)

    def penalty(self, w):
        total = 0.0
        if self.l1:
            total += self.l1 * float(abs(w).sum())
        if self.l2:
            total += self.l2 * float((w * w).sum())
        return total

    def gradient(self, w):
        grad = array_module(w).zeros_like(w)
        if self.l1:
            grad += w.dtype.type(self.l1) * array_module(w).sign(w)
        if self.l2:
            grad += w.dtype.type(2 * self.l2) * w
        return grad


@register("l1")
class L1(L1L2):
    """penalty = l1 * sum|w| (pushes weights to exactly zero).

    Args:
        l1: weight of the penalty, >= 0 (Keras's default 0.01).
    """

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)


@register("l2")
class L2(L1L2):
    """penalty = l2 * sum w^2 (weight decay through the loss).

    Args:
        l2: weight of the penalty, >= 0 (Keras's default 0.01).
    """

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)


def from_spec(arguments, where):
    """Take the regularizer keys out of a layer spec's arguments: {param name: Regularizer}."""
    found = {}
    for key, param in SPEC_KEYS.items():
        spec = arguments.pop(key, None)
        if spec is not None:
            found[param] = build("regularizer", spec, where)
    return found


def terms(model):
    """(layer, param name, regularizer) of every regularized parameter of a built model."""
    found = []
    for node in model.nodes:
        for param, regularizer in getattr(node.layer, "regularizers", {}).items():
            if param not in node.layer.params:
                key = next(k for k, p in SPEC_KEYS.items() if p == param)
                raise ConfigError(f"layer {node.name!r} has no {param!r} for its {key}",
                                  where=node.where, expected=", ".join(node.layer.params) or "no parameters",
                                  fix=f"remove {key} from this layer.")
            found.append((node.layer, param, regularizer))
    return found


def apply(found):
    """Add each penalty's gradient to its parameter's gradient (after backward); the total penalty."""
    total = 0.0
    for layer, param, regularizer in found:
        w = layer.params[param]
        total += regularizer.penalty(w)
        layer.grads[param] += regularizer.gradient(w)
    return total
