"""Gradient check of a whole model through its loss, in float64: ``dltrain gradcheck``.

The model a config describes is rebuilt in float64 and run on a small random batch with targets of
the form its loss expects. Each parameter's analytic gradient (model.backward of loss.backward,
fused with the final activation exactly as the trainer fuses them) is compared with central
differences of the loss, element by element (a random sample of elements in large arrays), with a
small and a large step (see ``_numeric``). Random layers (dropout) replay the same mask on every
evaluation, so the loss is a deterministic function.
"""
from dataclasses import dataclass

import numpy as np

from dltrain.gradcheck import compare, numeric_gradient


@dataclass
class LayerCheck:
    name: str
    type: str
    errors: dict        # parameter name -> relative error
    skipped: int = 0    # elements left out because the loss has a kink there

    @property
    def worst(self):
        return max(self.errors.values(), default=0.0)


def check_model(checked, batch_size=4, max_elements=30, eps=1e-5, seed=0):
    """[LayerCheck] for every layer with parameters, for a validated config (``Checked``)."""
    from dltrain.model import Model

    document = checked.document
    model = Model.from_config(document.data["model"], document.where, np.float64)
    rng = np.random.default_rng(seed)
    model.build(rng)
    loss = checked.loss
    x = _inputs(model, batch_size, rng)
    y = _targets(loss, model.output_shape, batch_size, rng)
    fused = (not getattr(loss, "from_logits", False) and loss.fuses is not None
             and loss.fuses == model.final_activation)
    random_layers = [n.layer for n in model.nodes if getattr(n.layer, "random", False)]

    def value():
        for i, layer in enumerate(random_layers):     # the same dropout mask every time
            layer.rng = np.random.default_rng(seed + 1 + i)
        return float(loss(model.forward(x, training=True, logits=fused), y, logits=fused))

    value()
    model.backward(loss.backward(), logits=fused, input_grad=False)      # as training runs it
    analytic = {(n.name, k): np.array(g) for n in model.nodes for k, g in n.layer.grads.items()}
    checks = []
    for node in model.nodes:
        if not node.layer.params or not node.layer.trainable:          # frozen: nothing to check
            continue
        errors = {}
        skipped = 0
        for key, param in node.layer.params.items():
            grad, numeric, kinked = _numeric(value, param, analytic[(node.name, key)], eps,
                                             max_elements, rng)
            errors[key] = compare(grad, numeric)
            skipped += kinked
        checks.append(LayerCheck(node.name, node.layer.registered_name, errors, skipped))
    return checks


def _numeric(value, param, analytic, eps, max_elements, rng):
    """(analytic, numeric with NaN where not checked, number of elements left out at kinks).

    A small step (central differences at eps and 2 eps) loses digits to rounding where a gradient
    is tiny next to the loss (recurrent kernels); a large step (the five-point stencil
    (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h, error O(h^4), h = 100 eps) is free of that
    but may cross a kink of ReLU or max pooling. Each element takes the estimate closer to the
    analytic value; a wrong analytic gradient disagrees with both. Where the two small steps
    disagree the loss has a kink within 2 eps: no difference quotient is meaningful there, and
    the element is left out.
    """
    seed = int(rng.integers(1 << 31))
    small = numeric_gradient(value, param, eps, max_elements, np.random.default_rng(seed))
    double = numeric_gradient(value, param, 2 * eps, max_elements, np.random.default_rng(seed))
    chosen = np.isfinite(small)
    h = 100 * eps
    flat, large = param.reshape(-1), np.full(param.size, np.nan)
    for i in np.flatnonzero(chosen.reshape(-1)):
        old = flat[i]
        f = {}
        for step in (-2, -1, 1, 2):
            flat[i] = old + step * h
            f[step] = value()
        flat[i] = old
        large[i] = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
    large = large.reshape(param.shape)
    closer = np.where(np.abs(large - analytic) < np.abs(small - analytic), large, small)
    scale = np.maximum(np.maximum(np.abs(small), np.abs(double)),
                       1e-3 * np.nanmax(np.abs(small), initial=0.0) + 1e-12)
    kinked = chosen & (np.abs(small - double) > 1e-3 * scale)
    return analytic, np.where(chosen & ~kinked, closer, np.nan), int(kinked.sum())


def _inputs(model, batch_size, rng):
    """Random inputs; integer ids below ``input_dim`` when the first layer reads token ids."""
    first = [n.layer for n in model.nodes if "input" in n.inputs]
    vocabulary = next((getattr(layer, "input_dim") for layer in first
                       if isinstance(getattr(layer, "input_dim", None), int)), None)
    shape = (batch_size, *model.input_shape)
    if vocabulary:
        return rng.integers(0, vocabulary, size=shape)
    return rng.standard_normal(shape)


def _targets(loss, output_shape, batch_size, rng):
    """Targets of the form the loss reads: class ids, one-hot rows, 0/1 labels or real values."""
    units = output_shape[-1]
    if getattr(loss, "target", None) == "sparse":
        return rng.integers(0, units, size=(batch_size, *output_shape[:-1]))
    if loss.fuses == "softmax":
        return np.eye(units)[rng.integers(0, units, size=(batch_size, *output_shape[:-1]))]
    if loss.fuses == "sigmoid":
        return rng.integers(0, 2, size=(batch_size, *output_shape)).astype(np.float64)
    return rng.standard_normal((batch_size, *output_shape))
