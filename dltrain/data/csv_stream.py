"""Large numeric CSVs for predict, read in chunks by numpy's C parser instead of whole as cells.

``table.Table`` holds every cell of a file as a string (100,000 rows x 30 columns: ~340 MiB and
~10 s, most of it string work); a file to predict on whose feature columns are all numeric is
read here instead, ``CHUNK_BYTES`` of lines at a time, each chunk parsed with ``np.loadtxt`` and
only the feature columns kept as float32. The fast path gives way to the full reader (which has
the exact messages, missing-value fills and categories) whenever a chunk is anything but plain
finite numbers: a quote, an empty or NA cell, a ragged row, a value that is not a number.
"""
import numpy as np

from dltrain.data import csv_columns, table
from dltrain.errors import DltrainError

CHUNK_BYTES = 4 << 20        # text read per chunk (then to the end of its line)
HEAD_ROWS = 101               # the rows Table looks at to detect a header


def features(source, path):
    """(rows, features) float32 of a CSV to predict on, or None when the full reader is needed."""
    fitted = source.fitted
    if fitted is None or any(fitted["kinds"].get(name) != "numeric" for name in fitted["columns"]):
        return None
    try:
        head = table.Table(path, source.delimiter, source.header, limit=HEAD_ROWS)
        label = csv_columns.label_column(head, fitted, source.label, needed=False)
        columns = csv_columns.feature_columns(head, fitted, label)
    except DltrainError:
        return None                                   # the full reader reports it, with rows
    blocks = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = head.has_header
            while text := f.read(CHUNK_BYTES):
                text += f.readline()                  # whole lines only
                if '"' in text:
                    return None                       # quoted fields may span lines: full reader
                lines = text.splitlines()
                if header:                            # the first non-blank line
                    first = next(i for i, line in enumerate(lines + ["x"]) if line.strip())
                    lines, header = lines[first + 1:], False
                values = np.loadtxt(lines, delimiter=head.delimiter, comments=None, quotechar=None,
                                    dtype=np.float64, ndmin=2)
                if not values.size:
                    continue
                if values.shape[1] != len(head.names):
                    return None
                values = values[:, columns]
                if not (np.abs(values) <= np.finfo(np.float32).max).all():
                    return None                       # NA/nan/inf cells, float32 overflow: full reader
                blocks.append(values.astype(np.float32))
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    return np.concatenate(blocks) if blocks else None
