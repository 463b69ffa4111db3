"""Predictions as CSV, a block of rows at a time: the same cells as ``Predictions.records`` gives
(and as ``csv.writer`` writes them: floats as ``repr``, text quoted when it holds a comma, a quote
or a line break), without a dict per row or a csv call per row. 100,000 rows x 6 columns: 0.2 s
instead of 0.36 s with ``csv.writer`` (4.5 s as records)."""
import numpy as np

BLOCK_ROWS = 20_000


def columns(predictions, top_k=None):
    """(header, one column per header name): float columns as float64 arrays, the others as
    lists or integer arrays."""
    flat = predictions.outputs.reshape(len(predictions.outputs), -1)
    files = [file for file, _ in predictions.sources]
    rows = [row for _, row in predictions.sources]
    if all(type(row) is int for row in rows):
        rows = np.asarray(rows, dtype=np.int64)
    if not predictions.classifier:
        names = [f"output_{j}" if flat.shape[1] > 1 else "output" for j in range(flat.shape[1])]
        return ["file", "row", *names], [files, rows, *flat.astype(np.float64).T]
    probs = flat if flat.shape[1] > 1 else np.concatenate([1 - flat, flat], axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")
    names = predictions.class_names

    def labels(indices):
        return np.asarray(names, dtype=object)[indices] if names else indices

    header, cells = ["file", "row", "prediction"], [files, rows, labels(order[:, 0])]
    if top_k:
        ranked = np.take_along_axis(probs, order[:, :top_k], axis=1).astype(np.float64)
        for j in range(top_k):
            header += [f"top{j + 1}", f"top{j + 1}_probability"]
            cells += [labels(order[:, j]), ranked[:, j]]
    else:
        for c in range(probs.shape[1]):
            header.append(f"p_{names[c] if names else c}")
            cells.append(probs[:, c].astype(np.float64))
    return header, cells


def write_csv(f, predictions, top_k=None):
    """The prediction table as CSV on the text stream ``f``."""
    header, cells = columns(predictions, top_k)
    f.write(",".join(map(_quoted, header)) + "\n")
    quoted = {}
    for start in range(0, len(predictions.outputs), BLOCK_ROWS):
        block = [_texts(column[start:start + BLOCK_ROWS], quoted) for column in cells]
        f.write("\n".join(map(",".join, zip(*block))) + "\n")


def _texts(values, quoted):
    """The CSV cells of a slice of one column; ``quoted`` caches the cells of repeated text."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return list(map(float.__repr__, values.tolist()))
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return list(map(int.__repr__, values.tolist()))
    values = values.tolist() if isinstance(values, np.ndarray) else values
    out = []
    for value in values:
        cell = quoted.get(value) if isinstance(value, str) else None
        if cell is None:
            cell = _quoted(value)
            if isinstance(value, str):
                quoted[value] = cell
        out.append(cell)
    return out


def _quoted(value):
    """``value`` as csv.writer (QUOTE_MINIMAL, lineterminator "\\n") writes one cell of a row."""
    if value is None:
        return ""
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
