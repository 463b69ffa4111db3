"""What evaluate and predict are given, checked and brought to the form the model was trained on.

- the run argument: a config file where a run directory is expected is named as such;
- labels: integer-valued class indices in range for a classifier (the file and the row of the
  first bad one named), within [0, 1] for binary cross-entropy; any number for a regression;
- inputs: a missing trailing channel axis is added ((N, 28, 28) for a (28, 28, 1) model), a
  trailing axis of one dropped for a model without one; images are resized to the model's
  input and converted to its colour mode;
- --top-k: capped at the number of classes (with a note), refused for a regression;
- --json: strict JSON (NaN and Inf become null).
"""
import math
from pathlib import Path

import numpy as np

from dltrain.errors import CheckpointError, ConfigError, DataError

CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


# -- the run argument ----------------------------------------------------------------------------

def check_run_argument(run):
    """ConfigError when ``run`` is a config file rather than a run directory or checkpoint."""
    path = Path(run)
    if path.is_dir():
        folds = fold_runs(path)
        if folds:                    # evaluate scores the folds together; the rest takes one model
            raise ConfigError(f"{path} is a k-fold run of {len(folds)} fold models, not one model",
                              fix=f"name one fold ({folds[0]}), or score them all with "
                                  f"`dltrain evaluate {path}`.")
    if not path.is_file() or path.suffix.lower() == ".npz":
        return
    with open(path, "rb") as f:
        start = f.read(4)
    if path.suffix.lower() in CONFIG_SUFFIXES or start[:2] != b"PK":
        name = _config_name(path)
        guess = f"runs/{name}" if name else "runs/NAME"
        raise ConfigError(
            f"{path} is {'a config file' if path.suffix.lower() in CONFIG_SUFFIXES else 'not a checkpoint'}"
            ", not a run", fix=f"give the run directory `dltrain fit` wrote (e.g. {guess}), "
                               f"or train first: dltrain fit {path}")


def fold_runs(run):
    """The fold run directories (fold1, fold2, ...) of a k-fold run, in fold order, or []."""
    run = Path(run)
    if not run.is_dir() or (run / "checkpoints").is_dir():
        return []
    found = [p for p in run.glob("fold*") if p.name[4:].isdigit() and (p / "checkpoints").is_dir()]
    return sorted(found, key=lambda p: int(p.name[4:]))


def _config_name(path):
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")[:1 << 20])
        return str(data["name"]) if isinstance(data, dict) and data.get("name") else None
    except Exception:                            # only a guess for the message
        return None


class Scores(dict):
    """{metric: value}; ``checkpoint`` says which weights were scored ('best.npz (epoch 7)')."""
    checkpoint = None


def scores(values, path, meta):
    result = Scores(values)
    result.checkpoint = describe_checkpoint(path, meta)
    return result


def run_record(run_dir, limit=16 << 20):
    """A run's run.json as a dict ({} when it is missing, damaged or over ``limit`` bytes)."""
    import json

    path = Path(run_dir) / "run.json"
    try:
        if path.stat().st_size > limit:
            return {}
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def remember_data(experiment, run_dir):
    """Dataset sources look where the run found its files first (before any download)."""
    from dltrain.data.datasets import remember_folders

    remember_folders(experiment.sources, run_record(run_dir))


def describe_checkpoint(path, meta):
    """'best.npz (epoch 7)' for messages and titles."""
    epoch = (meta or {}).get("epoch")
    return f"{Path(path).name}" + (f" (epoch {epoch})" if epoch is not None else "")


# -- labels --------------------------------------------------------------------------------------

def _where(source, index):
    """'data.csv, row 8' / 'x.npz, sample 7' for sample ``index`` of a source's file."""
    file = getattr(source, "path", None) or "the data"
    csv_like = str(file).lower().endswith((".csv", ".tsv"))
    return f"{file}, row {index + 1}" if csv_like else f"{file}, sample {index}"


def check_labels(experiment, splits, sources=None):
    """DataError for labels the loss cannot take: fractional or out-of-range class indices,
    binary targets outside [0, 1]; names the file and row of the first bad one."""
    from dltrain.losses import BinaryCrossentropy, CategoricalCrossentropy, CrossEntropy

    loss = experiment.loss
    if not isinstance(loss, CrossEntropy):
        return                                     # a regression: any finite number
    units = experiment.model.output_shape[-1]
    sources = sources or experiment.sources
    for name, split in splits.items():
        if split is None or split.y is None:
            continue
        y = np.asarray(split.y)
        indexed = loss.target == "sparse" or (
            isinstance(loss, CategoricalCrossentropy) and (y.ndim == 1 or y.shape[1:] == (1,)) and units > 1)
        source = sources.get(name)
        source = source if source is not None and not isinstance(source, dict) else sources.get("train")
        rows = np.asarray(split.indices)
        y = y[rows].reshape(len(rows), -1) if y.ndim > 1 else y[rows][:, None]
        if isinstance(loss, BinaryCrossentropy):
            bad = ~((y >= 0) & (y <= 1)).all(axis=1)
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(f"{_where(source, int(rows[i]))}: the {name} label "
                                f"{_value(y[i])} is outside [0, 1]",
                                where=_config_where(experiment, name),
                                fix="binary cross-entropy takes targets 0..1; for classes 0..K-1 use "
                                    "sparse_categorical_crossentropy with K units.")
            continue
        if not indexed:
            continue
        fractional = y != np.round(y) if y.dtype.kind == "f" else np.zeros(y.shape, bool)
        if fractional.any():
            i = int(np.argmax(fractional.any(axis=1)))
            raise DataError(f"{_where(source, int(rows[i]))}: the {name} label {_value(y[i])} is "
                            "not a whole number, and the model's loss takes class indices",
                            where=_config_where(experiment, name),
                            fix="give class labels 0, 1, 2, ...; for numeric targets use a "
                                "regression loss (mse, mae, huber).")
        out = (y < 0) | (y >= units)
        if out.any():
            i = int(np.argmax(out.any(axis=1)))
            value = y[i].reshape(-1)[0]
            shown = str(int(value)) if abs(value) <= 2 ** 62 else repr(float(value))
            wanted = float(np.nanmax(y)) + 1
            raise DataError(f"{_where(source, int(rows[i]))}: the {name} label {shown} is outside "
                            f"the model's {units} classes (0..{units - 1})",
                            where=_config_where(experiment, name),
                            fix="class labels are 0, 1, 2, ...: fix the negative labels." if value < 0 else
                            f"give the last layer {int(wanted)} units, or fix the labels."
                            if wanted <= max(100 * units, 10_000) else
                            "fix the labels: class labels are 0, 1, 2, ..., one per class.")


def _value(row):
    value = row.reshape(-1)[0]
    return repr(float(value)) if np.asarray(value).dtype.kind == "f" else str(value)


def _config_where(experiment, name):
    source = experiment.sources.get(name)
    located = name if source is not None and not isinstance(source, dict) else "train"
    try:
        return experiment.document.where(("data", located))
    except Exception:
        return None


# -- inputs --------------------------------------------------------------------------------------

def shape_fix(shape, expected):
    """The fix to suggest when samples of ``shape`` meet a model expecting ``expected``."""
    shape, expected = tuple(shape), tuple(expected)
    if shape + (1,) == expected:
        return ("add the missing channel axis: save the array as x[..., None] (shape "
                f"{(-1, *expected)}); evaluate and predict add it themselves.")
    if shape == expected + (1,):
        return f"drop the trailing axis of one (x[..., 0]), or set model.input_shape to {list(shape)}."
    return f"set model.input_shape to {list(shape)}, or reshape the data."


def conform(x, expected, file):
    """``x`` with a missing trailing channel axis added (or a trailing 1 dropped) to match the
    model's per-sample ``expected`` shape; other shapes unchanged (the caller reports them)."""
    shape, expected = tuple(x.shape[1:]), tuple(expected)
    if shape + (1,) == expected:
        return x[..., None]
    if shape == expected + (1,):
        return x[..., 0]
    return x


def prepare_image_source(source, expected):
    """Images to predict on are resized to the model's input and read in its colour mode."""
    from dltrain.data.images import ImageFiles

    if not isinstance(source, ImageFiles) or len(expected) not in (2, 3):
        return source
    height, width = expected[:2]
    channels = expected[2] if len(expected) == 3 else 1
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    source.target_size = [int(height), int(width)]
    if mode:
        source.color_mode, source._keep_gray = mode, False
    return source


# -- output --------------------------------------------------------------------------------------

def cap_top_k(k, predictions):
    """(k to use, a note or None); ConfigError for a model that has no classes."""
    if k is None:
        return None, None
    if not predictions.classifier:
        raise ConfigError("--top-k ranks classes, and this model is a regression (its loss is "
                          "not a cross-entropy)", fix="drop --top-k; predict prints every output.")
    width = predictions.outputs.reshape(len(predictions.outputs), -1).shape[1]
    classes = 2 if width == 1 else width
    if k > classes:
        return classes, f"note: --top-k {k} is more than the model's {classes} classes; showing {classes}"
    return k, None


def strict(value):
    """``value`` with every NaN and Inf replaced by None, so json.dumps writes strict JSON."""
    if isinstance(value, float) or isinstance(value, np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


# -- evaluate --data ------------------------------------------------------------------------------

def evaluation_split(data, experiment):
    """The test split of ``data`` (a file, or a source spec in YAML), checked against the model:
    labels present and valid (the file and row of a bad one named), a missing channel added."""
    from dltrain.config.loader import parse
    from dltrain.data.dataset import Split
    from dltrain.data.sources import for_file
    from dltrain.registry import build

    text = str(data).strip()
    if text.startswith("{"):
        source = build("source", parse(text, "--data").data, "--data")
    else:
        source = for_file(text, experiment.sources.get("train"))
    x, y = source.load(Path.cwd())
    if y is None:
        raise DataError(f"{data}: no labels to evaluate against",
                        fix="give a file that holds labels as the training data did; "
                            "`dltrain predict` takes data without labels.")
    split = Split(conform(x, experiment.model.input_shape, data), y, name="test")
    experiment.check_data({"test": split})
    check_labels(experiment, {"test": split}, {"test": source})
    return split
