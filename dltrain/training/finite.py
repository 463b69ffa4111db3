"""Non-finite values: a cheap check every step, and a diagnosis naming the layer when it fails.

Every step the trainer checks the loss (a float it reads anyway) and, after the update, the sum of
every parameter array: one reduction per array, and a NaN or Inf anywhere makes its sum
non-finite. A NaN or Inf gradient always reaches the parameters through the update (sgd: p - lr g;
adam: inf / inf), so the parameter check covers the gradients too. Only when a check fails does
the slow diagnosis run: it re-runs the batch layer by layer (a non-finite loss) or inspects each
layer's gradients and parameters (a non-finite update), to name the first layer that went bad.
"""
import math

import numpy as np

from dltrain.errors import DivergedError
from dltrain.model import INPUT

FIX = ("lower the learning rate, add gradient clipping (optimizer clipnorm or global_clipnorm), "
       "or check the data for NaN and extreme values.")


def parameters_finite(model):
    """True when every parameter is finite (a float32 sum per array; overflow reads as non-finite)."""
    total = 0.0
    for _, param, _ in model.parameters():
        total += float(param.sum())
    return math.isfinite(total)


def state_finite(arrays):
    """The first non-finite floating array's name in a checkpoint's arrays, or None."""
    for key, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return key
    return None


def _all_finite(value):
    return value is None or bool(np.isfinite(value).all())


def first_bad_output(model, x):
    """Name of the first layer (in forward order) whose output on batch x is not finite, or None."""
    outputs, masks = {INPUT: x}, {INPUT: None}
    for node in model.nodes:
        if node.layer.multi_input:
            xs = [outputs[name] for name in node.inputs]
            mask_in = [masks[name] for name in node.inputs]
        else:
            xs, mask_in = outputs[node.inputs[0]], masks[node.inputs[0]]
        node.layer.input_mask = mask_in
        outputs[node.name] = node.layer.forward(xs, True)
        masks[node.name] = node.layer.compute_mask(xs, mask_in)
        if not _all_finite(outputs[node.name]):
            return node.name
    return None


def loss_diverged(model, x, value, epoch, batch):
    """The DivergedError for a non-finite loss at (epoch, batch), naming the first bad layer output."""
    where = f"at epoch {epoch}, batch {batch}"
    if not _all_finite(x):
        return DivergedError(f"the training loss became {value} {where}: the input batch holds NaN or Inf",
                             fix="clean the data, or add preprocessing that removes non-finite values.")
    layer = first_bad_output(model, x)
    detail = (f"the output of layer {layer!r} went non-finite first" if layer else
              "every layer's output is finite, so the loss itself overflowed (check the targets)")
    return DivergedError(f"the training loss became {value} {where}: {detail}", fix=FIX)


def update_diverged(model, epoch, batch):
    """The DivergedError for non-finite parameters after the update at (epoch, batch), or None."""
    where = f"at epoch {epoch}, batch {batch}"
    for node in reversed(model.nodes):      # backward order: the first gradient that went bad
        for key, grad in node.layer.grads.items():
            if key in node.layer.params and not _all_finite(grad):
                return DivergedError(f"the gradient of layer {node.name!r} ({key}) went non-finite {where}",
                                     fix=FIX)
    for node in model.nodes:
        for key, param in node.layer.params.items():
            if not _all_finite(param):
                return DivergedError(f"the parameters of layer {node.name!r} ({key}) went non-finite "
                                     f"in the update {where}", fix=FIX)
    return None
