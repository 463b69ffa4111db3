"""A run's outputs as ``predict`` reports them, and scores of any outputs like ``evaluate``'s.

``outputs(loaded, x)`` applies the run's saved preprocessing and model to raw inputs and gives
probabilities for a classifier (the loss's activation applied when it read logits), batch by
batch. ``score(experiment, outputs, y)`` computes the experiment's loss and metrics on outputs
given as probabilities, so averaged outputs (an ensemble) are scored as one model is.
"""
import numpy as np

import dltrain.catalogue  # noqa: F401  (activations and metrics are built by name here)
from dltrain.registry import build

BATCH = 1024


def is_classifier(loss):
    return loss.fuses is not None or loss.target == "sparse"


def outputs(loaded, x, batch_size=BATCH):
    """(N, ...) outputs of the run for raw inputs x (N, ...)."""
    experiment, model = loaded.experiment, loaded.model
    parts = []
    for start in range(0, len(x), batch_size):
        batch = experiment.pipeline.transform(np.asarray(x[start:start + batch_size]))
        parts.append(np.asarray(model.forward(batch.astype(model.dtype, copy=False), training=False)))
    out = np.concatenate(parts) if parts else np.zeros((0, *model.output_shape), model.dtype)
    if getattr(experiment.loss, "from_logits", False):
        out = build("activation", experiment.loss.fuses).forward(out)
    return out


def split_arrays(split):
    """(raw x, raw y) of a Split, in its order."""
    return split.take(np.arange(len(split)))


def _as_logits(loss, p):
    """Logits whose activation gives p back, for a loss that reads logits."""
    p = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    return (np.log(p) if loss.fuses == "softmax" else np.log(p) - np.log1p(-p)).astype(np.float32)


def score(experiment, out, y, batch_size=BATCH):
    """{'loss': ..., metric: ...} of outputs ``out`` (probabilities) against raw labels ``y``."""
    loss, target = experiment.loss, experiment.target_fn()
    import copy

    metrics = {name: copy.deepcopy(metric) for name, metric in experiment.metrics.items()}   # fresh states
    for metric in metrics.values():
        metric.reset()
    logits = getattr(loss, "from_logits", False)
    total = 0.0
    for start in range(0, len(out), batch_size):
        p, t = out[start:start + batch_size], target(y[start:start + batch_size])
        total += float(loss(_as_logits(loss, p) if logits else p, t)) * len(p)
        for metric in metrics.values():
            metric.update(p, t)
    return {"loss": total / max(len(out), 1), **{k: m.result() for k, m in metrics.items()}}

