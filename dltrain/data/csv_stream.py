"""Large numeric CSVs for predict and evaluate, parsed by numpy's C reader instead of held whole
as cells.

``table.Table`` holds every cell of a file as a string (100,000 rows x 30 columns: ~340 MiB and
~10 s, most of it string work); a file to predict on whose feature columns are all numeric is
read here instead: ``np.loadtxt`` reads the open file in its own chunks straight into float32
(the same values as parsing float64 and rounding: it parses each number as a double), and only
the feature columns are kept. A later file with numeric labels (evaluate --data, validation and
test files) is parsed as float64, so labels keep their digits, and split as the full reader does. The fast path gives way to the full reader (which has the exact
messages, missing-value fills and categories) whenever the file is anything but plain finite
numbers (quoted or not, as a spreadsheet's "save as CSV" may quote every cell): an empty or NA
cell, a ragged row, a value that is not a number, one beyond float32's range (inf here).
"""
import warnings

import numpy as np

from dltrain.data import csv_columns, csv_labels, table
from dltrain.errors import DltrainError

HEAD_ROWS = 101               # the rows Table looks at to detect a header


def features(source, path):
    """(rows, features) float32 of a CSV to predict on, or None when the full reader is needed."""
    parsed = _parse(source, path, needed=False, dtype=np.float32)
    if parsed is None:
        return None
    values, columns, _ = parsed
    values = values[:, columns] if columns != list(range(values.shape[1])) else values
    if not np.isfinite(values).all():
        return None                       # nan/inf cells, float32 overflow: the full reader says which
    return np.ascontiguousarray(values)


def labelled(source, path):
    """(features float32, labels) of a later CSV with numeric labels (validation, test, evaluate
    --data), as the full reader gives them (labels int64 when all are whole numbers, else
    float32), or None when the full reader is needed."""
    if source.fitted is None or source.fitted.get("class_names") is not None:
        return None                       # labels named by strings: the full reader encodes them
    parsed = _parse(source, path, needed=True, dtype=np.float64)   # labels keep a double's digits
    if parsed is None:
        return None
    values, columns, label = parsed
    x, y = values[:, columns], values[:, label]
    if not (np.abs(x) <= csv_labels.FLOAT32_MAX).all() or not (np.abs(y) <= csv_labels.FLOAT32_MAX).all():
        return None                       # nan/inf cells, float32 overflow: the full reader says which
    return x.astype(np.float32), csv_labels.numeric_labels(y)


def _parse(source, path, needed, dtype):
    """(every column as ``dtype``, the feature positions, the label position or None) of a file
    whose fitted feature columns are all numeric and whose cells are plain numbers, else None."""
    fitted = source.fitted
    if fitted is None or any(fitted["kinds"].get(name) != "numeric" for name in fitted["columns"]):
        return None
    try:
        head = table.Table(path, source.delimiter, source.header, limit=HEAD_ROWS)
        label = csv_columns.label_column(head, fitted, source.label, needed=needed)
        columns = csv_columns.feature_columns(head, fitted, label)
    except DltrainError:
        return None                                   # the full reader reports it, with rows
    if needed and label is None:
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            if head.has_header:                       # past the first non-blank line
                while (line := f.readline()) and not line.strip():
                    pass
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")       # "input contained no data": None below
                values = np.loadtxt(f, delimiter=head.delimiter, comments=None, quotechar='"',
                                    dtype=dtype, ndmin=2)      # "1.5" as the csv module reads it
    except (ValueError, UnicodeDecodeError, OSError):
        return None                       # an empty or NA cell, a ragged row, a word, a line break in quotes
    if not values.size or values.shape[1] != len(head.names):
        return None
    return values, columns, label
