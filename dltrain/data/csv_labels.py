"""The label column of a CSV: class indices for string labels (by the training file's sorted
class names), else numbers: int64 class indices when every label is a whole number, float32
targets otherwise. A missing, non-numeric, infinite or out-of-float32 label names its file, row
and column."""
import numpy as np

from dltrain.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def numeric_labels(y):
    """Finite float64 labels as the model gets them: int64 class indices when all are whole
    numbers that int64 holds exactly, else float32 targets."""
    if np.all(y == np.round(y)) and (np.abs(y) <= 2.0 ** 62).all():
        return y.astype(np.int64)
    return y.astype(np.float32)


def labels(table, label, fitted, learn=False):
    """Integer class indices (string labels, by the fitted class names) or numeric targets."""
    name = table.names[label]
    missing = table.missing(label)
    if missing.any():
        r = int(np.argmax(missing))
        raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: the label is missing",
                        fix="every training row needs a label.")
    raw = table.cells[:, label]
    if fitted.get("class_names") is None:
        try:
            y = raw.astype(np.float64)
        except ValueError:
            if not learn:
                table.numbers(label)                  # raises, naming the first bad cell
            fitted["class_names"] = sorted(set(raw.tolist()))
        else:
            if not np.isfinite(y).all():
                r = int(np.argmax(~np.isfinite(y)))
                raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: {str(raw[r])!r} is not "
                                "a finite number")
            if not (np.abs(y) <= FLOAT32_MAX).all():
                r = int(np.argmax(~(np.abs(y) <= FLOAT32_MAX)))
                raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: the label {str(raw[r])!r} "
                                "is beyond float32's range", fix="fix the label, or rescale the targets.")
            return numeric_labels(y)
    names = np.asarray(fitted["class_names"], dtype=str)
    order = np.argsort(names)
    codes = np.searchsorted(names[order], raw)
    unknown = (codes >= len(names)) | (names[order][np.minimum(codes, len(names) - 1)] != raw)
    if unknown.any():
        r = int(np.argmax(unknown))
        raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: label {str(raw[r])!r} is not "
                        "one of the training classes", expected=", ".join(names[:20]),
                        fix="fix the label, or retrain with that class in the training data.")
    return order[np.minimum(codes, len(names) - 1)].astype(np.int64)
