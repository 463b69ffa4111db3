"""Weights in: arrays read from a run, a safetensors or a .keras file, put into a built model.

``read(source)`` gives ``{'layer/param': array}`` (dltrain's names: ``Model.state_dict``);
``assign(model, arrays, layers)`` copies those of the layers whose names match the globs,
after checking every shape, and lists every mismatch and every name missing in one error.
"""
import fnmatch
from pathlib import Path

from dltrain.errors import CheckpointError, ConfigError


def read(source):
    """{'layer/param': array} of a run directory or checkpoint, a .safetensors or a .keras file."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"{source} does not exist", fix="give a run directory, a checkpoint (.npz), "
                          "a .safetensors or a .keras file.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from dltrain.export import safetensors

        return safetensors.load(path)[0]
    if suffix == ".keras":
        from dltrain.export import keras

        return keras.load(path)[0]
    from dltrain.training import checkpoint

    arrays, _ = checkpoint.load(_checkpoint_of(path))
    return checkpoint.section(arrays, "model")


def _checkpoint_of(path):
    """A checkpoint file as given, or a run directory's best (else last) checkpoint."""
    if path.is_file():
        return path
    for name in ("best.npz", "last.npz"):
        if (path / "checkpoints" / name).is_file():
            return path / "checkpoints" / name
    raise CheckpointError(f"{path} holds no checkpoint (checkpoints/best.npz or last.npz)",
                          fix="give a run directory written by `dltrain fit`, or a weights file.")


def layer_names(model):
    """The names of the model's layers that hold arrays, in order."""
    return [node.name for node in model.nodes if node.layer.params or node.layer.state]


def select(model, layers=None):
    """The model's layer names that match any glob of ``layers`` (all when None)."""
    names = layer_names(model)
    if layers is None:
        return names
    patterns = [layers] if isinstance(layers, str) else list(layers)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def assign(model, arrays, layers=None, source="the weights", where=None):
    """Copy ``arrays`` into the model's layers matched by ``layers``; return the keys copied.

    Every expected array is checked first: a missing name or a shape that differs is listed,
    all of them, in one ConfigError, and nothing is copied."""
    import numpy as np

    chosen = select(model, layers)
    if not chosen:
        raise ConfigError(f"no layer of the model matches {layers!r}", where=where,
                          expected=", ".join(layer_names(model)) or "(the model has no weights)")
    targets, problems = {}, []
    for node in model.nodes:
        if node.name not in chosen:
            continue
        for store in (node.layer.params, node.layer.state):
            for key, value in store.items():
                full = f"{node.name}/{key}"
                if full not in arrays:
                    problems.append(f"{full}: not in {source}")
                elif tuple(np.shape(arrays[full])) != tuple(value.shape):
                    problems.append(f"{full}: {source} has shape {tuple(np.shape(arrays[full]))}, "
                                    f"the model {tuple(value.shape)}")
                else:
                    targets[full] = value
    if problems:
        present = sorted({k.split("/")[0] for k in arrays})
        raise ConfigError(f"{len(problems)} array(s) of {source} do not fit the model:\n  " + "\n  ".join(problems),
                          where=where, expected="layers in the file: " + ", ".join(present[:40]),
                          fix="name the layers as in the file, or narrow `layers:` to those that match.")
    for full, value in targets.items():
        value[...] = np.asarray(arrays[full], dtype=value.dtype)
    return sorted(targets)
