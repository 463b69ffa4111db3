"""Where training stands inside an epoch, saved so that a run resumes mid-epoch exactly.

The trainer keeps ``trainer.position = (epoch, batches done, loss total, samples seen, metrics)``
after every batch (one tuple, no copy). A checkpoint written mid-epoch (on SIGINT or SIGTERM)
stores it as a JSON record: the running sums as exact floats (JSON keeps every bit of a double),
each metric's state (``Metric.state()``: its sums and counts), and the learning rate the epoch
started with (the value metrics.csv logs for it). Batch order comes from (seed, epoch), so
skipping the batches done is enough.
"""
import numpy as np

from dltrain.backend import on_host, to_host


def record(position, lr):
    """The JSON-ready record of a position, or None at an epoch boundary (``position`` None)."""
    if position is None:
        return None
    epoch, batches, total, seen, metrics = position
    return {"epoch": epoch, "batch": batches, "total": total, "seen": seen, "lr": lr,
            "metrics": {name: encode(metric.state()) for name, metric in metrics.items()}}


def restore(saved, epoch, metrics):
    """(batches done, loss total, samples seen) from a saved record; fills ``metrics`` in place."""
    assert saved["epoch"] == epoch, (saved["epoch"], epoch)
    for name, metric in metrics.items():
        metric.load_state(decode(saved["metrics"][name]))
    return saved["batch"], saved["total"], saved["seen"]


def encode(value):
    """Arrays, numpy scalars, lists and dicts as JSON values that decode to equal objects."""
    if hasattr(value, "shape") and not on_host(value):      # a device array: to the host first
        value = to_host(value)
        value = value[()] if value.ndim == 0 else value
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {"__scalar__": value.item(), "dtype": value.dtype.str}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__scalar__" in value:
            return np.dtype(value["dtype"]).type(value["__scalar__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
