"""Gradient checks: backward against central finite differences, in float64.

Used by the test suite over the whole registry and by ``dltrain gradcheck``. Inputs are kept away
from the kinks of piecewise functions (ReLU at 0) so the finite difference is meaningful.
"""
import numpy as np


def relative_error(analytic, numeric):
    """max |a - n| / max(|a|, |n|, tiny), over all elements."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-8)
    scale = np.maximum(scale, 1e-3 * max(np.abs(analytic).max(initial=0), np.abs(numeric).max(initial=0)))
    return float((np.abs(analytic - numeric) / scale).max(initial=0.0))


def numeric_gradient(f, x, eps=1e-6, max_elements=None, rng=None):
    """Central differences of the scalar f() w.r.t. x (modified in place and restored).

    With ``max_elements``, only that many randomly chosen elements are perturbed; the others are
    returned as NaN (callers compare only the finite entries).
    """
    grad = np.full(x.shape, np.nan)
    flat = x.reshape(-1)
    indices = np.arange(flat.size)
    if max_elements is not None and flat.size > max_elements:
        indices = (rng or np.random.default_rng(0)).choice(flat.size, max_elements, replace=False)
    out = grad.reshape(-1)
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[i] = (plus - minus) / (2 * eps)
    return grad


def compare(analytic, numeric):
    mask = np.isfinite(numeric)
    return relative_error(np.asarray(analytic)[mask], numeric[mask])


def check_layer(layer, x, rng=None, training=False, max_elements=200, eps=1e-6):
    """{'input': err, param: err, ...} for a built float64 layer at input x (or list of inputs).

    The scalar is sum(y * w) for a fixed random w, so every output element contributes.
    """
    rng = rng or np.random.default_rng(0)
    xs = x if isinstance(x, list) else [x]
    y = layer.forward(x, training)
    w = rng.standard_normal(np.shape(y))

    def f():
        return float((np.asarray(layer.forward(x, training)) * w).sum())

    grad_x = layer.backward(w.copy())
    grad_xs = grad_x if isinstance(grad_x, list) else [grad_x]
    analytic_params = {k: np.array(v) for k, v in layer.grads.items()}
    errors = {}
    for i, (xi, gi) in enumerate(zip(xs, grad_xs)):
        if not np.issubdtype(np.asarray(xi).dtype, np.floating):
            continue   # integer inputs (token ids) have no gradient
        numeric = numeric_gradient(f, xi, eps, max_elements, rng)
        errors["input" if len(xs) == 1 else f"input{i}"] = compare(gi, numeric)
    for key, param in layer.params.items():
        numeric = numeric_gradient(f, param, eps, max_elements, rng)
        errors[key] = compare(analytic_params[key], numeric)
    return errors


def away_from_kinks(x, kinks=(0.0,), margin=1e-2):
    """x with every element within margin of a kink pushed out of the band."""
    x = np.array(x, dtype=np.float64)
    for k in kinks:
        close = np.abs(x - k) < margin
        x[close] = k + np.where(x[close] >= k, margin, -margin) * 2
    return x
