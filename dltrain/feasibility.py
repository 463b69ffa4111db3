"""What ``check`` (and ``fit``, before it allocates) can know without reading data: whether the
model fits in this machine's memory, and whether the last layer's width agrees with the label
set when the source's metadata gives it (a built-in dataset's classes, an image folder's class
folders). Each finding is a ConfigError with the place in the config and the fix.
"""
import os
from pathlib import Path

from dltrain.errors import ConfigError, join_errors

#: the share of physical memory a training run may plan to use before check calls it impossible
MEMORY_SHARE = 1.0


def physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class _Pieces:
    """What summary.summarize reads, from an Experiment (fit) or a Checked config (check)."""

    def __init__(self, model, document, optimizer):
        self.model, self.document, self.optimizer = model, document, optimizer


def memory_finding(pieces, available=None):
    """A ConfigError when parameters, gradients, optimizer state and one batch's activations
    need more bytes than this machine has; None otherwise."""
    from dltrain.summary import human_bytes, summarize

    available = available or physical_memory()
    if available is None or pieces.model is None:
        return None
    summary = summarize(pieces)
    memory = summary.memory
    if memory["total"] <= available * MEMORY_SHARE:
        return None
    def cost(row):                 # its parameters (with gradients, optimizer state) and output
        import numpy as np

        return (row.params * (2 + summary.slots)
                + int(np.prod(row.output_shape or (), dtype=object)) * summary.batch_size) * summary.itemsize

    parts = ", ".join(f"{k} {human_bytes(memory[k])}" for k in ("parameters", "gradients", "optimizer",
                                                               "activations"))
    message = (f"training this model needs about {human_bytes(memory['total'])} ({parts} at batch "
               f"size {summary.batch_size}); this machine has {human_bytes(available)}")
    if not summary.rows:
        return ConfigError(message, where=pieces.document.where(("model",)))
    biggest = max(range(len(summary.rows)), key=lambda i: cost(summary.rows[i]))
    row = summary.rows[biggest]
    return ConfigError(message, where=pieces.document.where(("model", "layers", biggest)),
                       fix=f"make layer {row.name!r} smaller ({row.params:,} parameters, output "
                           f"{tuple(row.output_shape)} per sample), or lower training.batch_size.")


def known_classes(source, base):
    """(classes, what says so) from a source's metadata without reading its data, or None."""
    from dltrain.data.datasets import Dataset
    from dltrain.data.images import ImageFolder

    if isinstance(source, Dataset):
        return (source.info.classes, f"dataset {source.name!r}") if source.info.classes else None
    if isinstance(source, ImageFolder):
        folder = Path(source.path).expanduser()
        folder = folder if folder.is_absolute() else Path(base) / folder
        if folder.is_dir():
            classes = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
            return (len(classes), f"{folder} ({len(classes)} class folders)") if classes else None
    return None


def label_finding(pieces, loss, source, base):
    """A ConfigError when the last layer's width contradicts the classes the source declares."""
    from dltrain.losses import BinaryCrossentropy, CrossEntropy

    known = known_classes(source, base)
    if known is None or pieces.model is None or not isinstance(loss, CrossEntropy):
        return None
    classes, said = known
    units = pieces.model.output_shape[-1]
    where = pieces.document.where(("model", "layers", len(pieces.document.data["model"]["layers"]) - 1))
    if isinstance(loss, BinaryCrossentropy):
        if classes > 2 and units != classes:
            return ConfigError(f"{said} has {classes} classes; binary cross-entropy with {units} "
                               "output(s) takes two", where=where,
                               fix=f"use sparse_categorical_crossentropy and {classes} units with softmax.")
        return None
    if units < classes:
        return ConfigError(f"the last layer has {units} units, and {said} has {classes} classes",
                           where=where, fix=f"give the last layer {classes} units.")
    return None


def findings(pieces, loss, sources, base, available=None):
    found = [memory_finding(pieces, available)]
    source = (sources or {}).get("train")
    if source is not None and not isinstance(source, dict):
        found.append(label_finding(pieces, loss, source, base))
    return [f for f in found if f is not None]


def check_config(checked, available=None):
    """Raise the findings for a validated config (``dltrain check``)."""
    base = Path(checked.document.file).resolve().parent if checked.document.file != "<string>" else Path.cwd()
    join_errors(findings(_Pieces(checked.model, checked.document, checked.optimizer), checked.loss,
                         checked.sources, base, available))


def check_experiment(experiment, available=None):
    """Raise the findings for an Experiment before its parameters are allocated (``fit``)."""
    if experiment.model.output_shape is None:
        experiment.model.infer_shapes()          # shapes only, no arrays
    join_errors(findings(_Pieces(experiment.model, experiment.document, experiment.optimizer),
                         experiment.loss, experiment.sources, experiment.base, available))
