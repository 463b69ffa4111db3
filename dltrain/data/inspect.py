"""What a config's data looks like, split by split, before any training: ``dltrain data inspect``.

Reads every source exactly as ``fit`` would (the same checks, so bad data fails here the same
way), makes the splits, fits the preprocessing on the training split, and reports per split the
sample count, shapes and dtypes, class balance, value ranges and NaN/Inf counts. Statistics are
gathered in chunks, so a memory-mapped file is never read whole.
"""
import numpy as np

from dltrain.data.arrays import chunk_rows


def split_stats(split, classes=None):
    """A dict of statistics for one Split (raw values, before preprocessing)."""
    n = len(split)
    lo, hi, total, nan, inf, count = np.inf, -np.inf, 0.0, 0, 0, 0
    rows = chunk_rows(split.x)
    text = split.x.dtype.kind in "USO"                   # text sources: lengths, not values
    lengths = []
    for start in range(0, n, rows):
        x, _ = split.take(np.arange(start, min(start + rows, n)))
        if text:
            lengths.append(np.strings.str_len(np.asarray(x, dtype=str)).reshape(len(x), -1).sum(axis=1))
            continue
        values = x.astype(np.float64, copy=False)
        finite = np.isfinite(values)
        nan += int(np.isnan(values).sum())
        inf += int(np.isinf(values).sum())
        if finite.any():
            lo, hi = min(lo, float(values[finite].min())), max(hi, float(values[finite].max()))
            total += float(values[finite].sum())
            count += int(finite.sum())
    stats = {"samples": n, "shape": tuple(split.x.shape[1:]), "dtype": str(split.x.dtype),
             "min": lo if count else None, "max": hi if count else None,
             "mean": total / count if count else None, "nan": nan, "inf": inf}
    if text and lengths:
        chars = np.concatenate(lengths)
        stats["characters"] = (int(chars.min()), int(chars.max()), float(chars.mean()))
    if split.y is not None:
        y = np.asarray(split.y)[split.indices]
        stats["label_dtype"] = str(y.dtype)
        stats["label_shape"] = tuple(y.shape[1:])
        if y.dtype.kind == "f":
            stats["label_nan"] = int(np.isnan(y).sum())
            stats["label_inf"] = int(np.isinf(y).sum())
        if classes and y.ndim == 1 and y.dtype.kind in "iu":
            stats["balance"] = np.bincount(y.astype(np.int64), minlength=classes).tolist()
        elif y.size:
            finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
            stats["label_range"] = (float(finite.min()), float(finite.max())) if finite.size else None
    return stats


def inspect(config, overrides=()):
    """{'splits': {name: stats}, 'class_names', 'classes', 'model_input', 'after_preprocessing'}."""
    from dltrain.experiment import Experiment

    experiment = Experiment(config, overrides)
    splits = experiment.load_data()
    loss = experiment.loss
    classifier = loss.target == "sparse" or loss.fuses is not None
    experiment.build()                                   # for the output shape (the classes)
    classes = experiment.model.output_shape[-1] if classifier else None
    if classes == 1:
        classes = 2
    report = {"splits": {name: split_stats(split, classes) for name, split in splits.items()
                         if split is not None},
              "class_names": experiment.class_names, "classes": classes,
              "model_input": tuple(experiment.model.input_shape), "after_preprocessing": None,
              "kfold": None}
    validation = experiment.sources.get("validation")
    if isinstance(validation, dict) and "kfold" in validation:
        report["kfold"] = validation["kfold"]
    if experiment.pipeline.steps:
        experiment.fit_pipeline(splits["train"])
        x, _ = splits["train"].take(np.arange(min(len(splits["train"]), 256)))
        after = np.asarray(experiment.pipeline.transform(x), dtype=np.float64)
        report["after_preprocessing"] = {"shape": tuple(after.shape[1:]), "min": float(after.min()),
                                         "max": float(after.max()), "mean": float(after.mean())}
    return report
