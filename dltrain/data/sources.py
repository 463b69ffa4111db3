"""Sources read a file into arrays: ``load(base) -> (x, y)``, y None when the file has no labels.

Paths are relative to ``base``, the folder of the config file. Every problem with a file is a
DataError naming the file (and the row, for text formats); a missing file is a ConfigError, since
the config names it.
"""
import csv
import zipfile
from pathlib import Path

import numpy as np

from dltrain.errors import ConfigError, DataError
from dltrain.registry import register


class Source:
    kind = "source"
    #: names of the classes, when the source knows them (string labels, folder names)
    class_names = None

    def resolve(self, base):
        path = Path(self.path).expanduser()
        path = path if path.is_absolute() else Path(base) / path
        if not path.exists():
            raise ConfigError(f"data file {str(path)!r} does not exist",
                              fix="check `path`; it is relative to the config file's folder.")
        return path

    def load(self, base):
        raise NotImplementedError

    def load_features(self, base, expected_features=None):
        """Only the inputs, for predict (labels, when present, are dropped)."""
        return self.load(base)[0]


def _check_numeric(array, file, what):
    if array.dtype == object or array.dtype.kind in "USV":
        raise DataError(f"{file}: {what} holds {array.dtype} values, not numbers",
                        fix="store numeric arrays (no object or string arrays).")
    return array


@register("npz")
class Npz(Source):
    """Arrays from a NumPy .npz archive, read without pickle.

    Args:
        path: the .npz file, relative to the config.
        x: name of the input array.
        y: name of the label array, or null for inputs only.
    """

    def __init__(self, path, x="x", y="y"):
        self.path, self.x, self.y = path, x, y

    def _open(self, base):
        path = self.resolve(base)
        try:
            return path, np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npz archive ({error})",
                            fix="re-create the file with numpy.savez.") from None

    def _array(self, path, archive, name):
        if name not in archive.files:
            raise DataError(f"{path} has no array {name!r}", expected=", ".join(archive.files),
                            fix=f"set the source's key to one of {', '.join(archive.files)}.")
        try:
            return _check_numeric(archive[name], path, f"array {name!r}")
        except ValueError as error:           # object arrays refuse to load without pickle
            raise DataError(f"{path}: array {name!r} cannot be read without pickle ({error})",
                            fix="save numeric arrays only (no object arrays).") from None
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"{path}: array {name!r} is corrupt ({error})") from None

    def load(self, base):
        path, archive = self._open(base)
        with archive:
            x = self._array(path, archive, self.x)
            y = self._array(path, archive, self.y) if self.y and self.y in archive.files else None
            if self.y and y is None and self.y != "y":
                self._array(path, archive, self.y)
        _same_length(x, y, path)
        return x, y

    def load_features(self, base, expected_features=None):
        path, archive = self._open(base)
        with archive:
            return self._array(path, archive, self.x)


@register("npy")
class Npy(Source):
    """Arrays from .npy files, memory-mapped so large files are not read whole.

    Args:
        path: the .npy file of inputs.
        labels: the .npy file of labels, or null.
    """

    path_arguments = ("path", "labels")

    def __init__(self, path, labels=None):
        self.path, self.labels = path, labels

    def _read(self, path):
        try:
            return _check_numeric(np.load(path, mmap_mode="r", allow_pickle=False), path, "the array")
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npy file ({error})",
                            fix="re-create the file with numpy.save.") from None

    def load(self, base):
        x = self._read(self.resolve(base))
        y = None
        if self.labels:
            label_source = Npy(self.labels)
            y = self._read(label_source.resolve(base))
        _same_length(x, y, self.path)
        return x, y


@register("csv")
class Csv(Source):
    """Rows of a CSV file with a header: every column a feature but the label column.

    Args:
        path: the CSV file.
        label: the label column, by name or 0-based position (-1, the last, by default);
            null for a file of features only.
        delimiter: the field separator.
    """

    def __init__(self, path, label=-1, delimiter=","):
        self.path, self.label, self.delimiter = path, label, delimiter

    def _rows(self, path):
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f, delimiter=self.delimiter))
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error})") from None
        except csv.Error as error:
            raise DataError(f"{path}: malformed CSV ({error})") from None
        rows = [r for r in rows if r]
        if not rows:
            raise DataError(f"{path} is empty", fix="give a CSV with a header line and rows.")
        return rows[0], rows[1:]

    def _label_index(self, header, path):
        if self.label is None:
            return None
        if isinstance(self.label, int):
            index = self.label if self.label >= 0 else len(header) + self.label
            if not 0 <= index < len(header):
                raise DataError(f"{path} has {len(header)} columns, no column {self.label}")
            return index
        if self.label not in header:
            from dltrain.registry import suggest

            raise DataError(f"{path} has no column {self.label!r}", expected=", ".join(header),
                            fix=suggest(self.label, header, "set `label` to a column of the header."))
        return header.index(self.label)

    def _parse(self, path, header, rows, columns):
        width = len(header)
        values = np.empty((len(rows), len(columns)), dtype=np.float64)
        for number, row in enumerate(rows, start=2):
            if len(row) != width:
                raise DataError(f"row {number} of {path} has {len(row)} columns, the header has {width}",
                                fix="every row needs one value per header column.")
            try:
                values[number - 2] = [float(row[c]) for c in columns]
            except ValueError:
                bad = next(c for c in columns if not _is_float(row[c]))
                raise DataError(
                    f"row {number} of {path}, column {header[bad]!r}: {row[bad]!r} is not a number",
                    fix="fix or remove that value.") from None
        if not np.isfinite(values).all():
            r, c = np.argwhere(~np.isfinite(values))[0]
            raise DataError(f"row {r + 2} of {path}, column {header[columns[c]]!r}: "
                            f"{rows[r][columns[c]]!r} is not a finite number")
        return values

    def load(self, base):
        path = self.resolve(base)
        header, rows = self._rows(path)
        if not rows:
            raise DataError(f"{path} has a header but no rows")
        label = self._label_index(header, path)
        features = [i for i in range(len(header)) if i != label]
        x = self._parse(path, header, rows, features).astype(np.float32)
        if label is None:
            return x, None
        raw = [row[label] for row in rows]
        if all(_is_float(v) for v in raw):
            y = np.array([float(v) for v in raw])
            y = y.astype(np.int64) if np.all(y == np.round(y)) else y.astype(np.float32)
        else:
            names = sorted(set(raw))
            self.class_names = names
            y = np.array([names.index(v) for v in raw], dtype=np.int64)
        return x, y

    def load_features(self, base, expected_features=None):
        """The features of a CSV, with or without its label column (decided by the width)."""
        path = self.resolve(base)
        header, rows = self._rows(path)
        label = self._label_index(header, path) if self.label is not None else None
        columns = list(range(len(header)))
        if expected_features is not None and len(header) == expected_features + 1 and label is not None:
            columns.remove(label)
        if expected_features is not None and len(columns) != expected_features:
            raise DataError(
                f"{path} has {len(columns)} feature columns, the model expects {expected_features}",
                expected=f"{expected_features} columns (or {expected_features + 1} with the label column)",
                fix="give the same feature columns the model was trained on.")
        return self._parse(path, header, rows, columns).astype(np.float32)


def _is_float(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _same_length(x, y, file):
    if y is not None and len(x) != len(y):
        raise DataError(f"{file}: x has {len(x)} samples but y has {len(y)}",
                        fix="give one label per sample.")


def for_file(path, train_source=None):
    """A source that reads ``path`` for predict or evaluate, chosen by its extension.

    Sources declare ``extensions`` and may take settings from the training source (the CSV label
    column, the npz keys) through ``for_prediction``.
    """
    from dltrain.registry import registry

    path = Path(path)
    suffixes = "".join(path.suffixes).lower() if path.is_file() else ""
    candidates = []
    for name in registry("source").names():
        cls = registry("source").get(name)
        if any(suffixes.endswith(ext) for ext in getattr(cls, "extensions", ())) \
                or (path.is_dir() and getattr(cls, "reads_folders", False)):
            candidates.append(cls)
    if not path.exists():
        raise ConfigError(f"file {str(path)!r} does not exist", fix="check the path.")
    if not candidates:
        known = sorted({e for n in registry("source").names()
                        for e in getattr(registry("source").get(n), "extensions", ())})
        raise DataError(f"{path}: cannot tell how to read a {suffixes or 'folder'!r} file",
                        expected="a file ending in " + ", ".join(known))
    preferred = [c for c in candidates if isinstance(train_source, c)]
    cls = (preferred or candidates)[0]
    return cls.for_prediction(str(path), train_source if isinstance(train_source, cls) else None)


Npz.extensions = (".npz",)
Npz.for_prediction = classmethod(
    lambda cls, path, train: cls(path, x=train.x, y=train.y) if train else cls(path))
Npy.extensions = (".npy",)
Npy.for_prediction = classmethod(lambda cls, path, train: cls(path))
Csv.extensions = (".csv", ".tsv")
Csv.for_prediction = classmethod(
    lambda cls, path, train: cls(path, label=train.label, delimiter=train.delimiter) if train
    else cls(path, delimiter="\t" if path.endswith(".tsv") else ","))
