"""Which columns of a later CSV (validation, test, evaluate --data, predict) are the features and
the label the model was trained on.

With a header, columns are matched by name (their order may differ, extra columns are ignored);
without one, by position, in the training file's order, with or without the label column. A
file that lacks a feature, or has no label column where one is needed, is a DataError naming
the missing and the extra columns.
"""
import re

from dltrain.errors import DataError


def _generic(names):
    """Whether ``names`` are the c0, c1, ... of a training file that had no header."""
    return all(re.fullmatch(r"c\d+", name) for name in names)


def _listed(names, limit=10):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def label_column(data, fitted, setting, needed):
    """Position of the label column in ``data``, or None when the file has none and ``needed``
    is False (predict); a DataError when it is needed and absent (evaluate, validation, test)."""
    wanted, name = fitted["columns"], fitted.get("label")
    if setting is None:
        return None
    if data.has_header and not _generic(wanted):
        if name and name in data.names:
            return data.names.index(name)
        extra = [n for n in data.names if n not in wanted]
        if not name and len(extra) == 1:               # a run from before the label was recorded
            return data.names.index(extra[0])
        if not needed:
            return None
        raise DataError(f"{data.path} has no label column{f' {name!r}' if name else ''}: "
                        + ("its columns are only the model's features" if not extra
                           else f"besides the features it has {_listed(extra)}"),
                        fix="add the label column, or use `dltrain predict` for data without labels.")
    width = len(data.names)
    if width == len(wanted) + 1:
        index = fitted.get("label_index")
        return index if index is not None and index < width else data.index(setting, "label")
    if not needed and width == len(wanted):
        return None
    raise DataError(f"{data.path} has {width} columns and no header; the model's {len(wanted)} "
                    f"features{' and the label' if needed else ''} make {len(wanted) + int(needed)}",
                    expected="the columns " + _listed(wanted, 20) + (" and the label" if needed else ""),
                    fix="give the columns of the training file, in its order (or with its header).")


def feature_columns(data, fitted, label):
    """Positions of the fitted feature columns in ``data``: by header name, else by position
    (the table's column names then become the training ones, for messages and encodings)."""
    wanted = fitted["columns"]
    if data.has_header and not _generic(wanted):
        missing = [w for w in wanted if w not in data.names]
        if missing:
            extra = [n for i, n in enumerate(data.names) if n not in wanted and i != label]
            raise DataError(f"{data.path} lacks the column(s) {_listed(missing)} the model was trained on"
                            + (f"; its other column(s): {_listed(extra)}" if extra else ""),
                            expected="the columns " + _listed(wanted, 20),
                            fix="rename or add the columns to match the training header (order does "
                                "not matter), or drop the header to match by position.")
        return [data.names.index(w) for w in wanted]
    positions = [i for i in range(len(data.names)) if i != label]
    if len(positions) != len(wanted):
        raise DataError(f"{data.path} has {len(positions)} feature column(s), the model was trained "
                        f"on {len(wanted)}", expected="the columns " + _listed(wanted, 20),
                        fix="give the columns of the training file, in its order (or with its header).")
    names = list(data.names)
    for position, name in zip(positions, wanted):
        names[position] = name
    data.names = names
    return positions
