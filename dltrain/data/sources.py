"""Sources read a file into arrays: ``load(base) -> (x, y)``, y None when the file has no labels.

Paths are relative to ``base``, the folder of the config file. Every problem with a file is a
DataError naming the file (and the row, for text formats); a missing file is a ConfigError, since
the config names it.
"""
import zipfile
from typing import Optional, Union
from pathlib import Path

import numpy as np

from dltrain.data import csv_columns, csv_stream, npyfile, table
from dltrain.data.arrays import check_finite
from dltrain.errors import ConfigError, DataError
from dltrain.registry import register


class Source:
    kind = "source"
    #: names of the classes, when the source knows them (string labels, folder names)
    class_names = None
    #: what the source reads (table, text, image, array, series): predict reads a file with a
    #: source of the training source's family when several sources take its extension
    family = "array"
    #: among sources of other families that take a file's extension, the lowest rank is chosen
    fallback_rank = 0

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
    if array.dtype == object or array.dtype.kind in "USVc":
        kind = "complex numbers" if array.dtype.kind == "c" else "not numbers"
        raise DataError(f"{file}: {what} holds {array.dtype} values, {kind}",
                        fix="store real-valued numeric arrays (no complex, object or string arrays).")
    return array


@register("npz")
class Npz(Source):
    """Arrays from a NumPy .npz archive, read without pickle.

    Args:
        path: the .npz file, relative to the config.
        x: name of the input array.
        y: name of the label array, or null for inputs only.
        allow_nonfinite: accept NaN and Inf values instead of rejecting the file.
    """

    def __init__(self, path, x="x", y="y", allow_nonfinite=False):
        self.path, self.x, self.y = path, x, y
        self.allow_nonfinite = allow_nonfinite

    def _open(self, base):
        path = self.resolve(base)
        try:
            return path, npyfile.NpzFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npz archive ({error})",
                            fix="re-create the file with numpy.savez.") from None

    def _array(self, path, archive, name):
        if name not in archive.files:
            raise DataError(f"{path} has no array {name!r}", expected=", ".join(archive.files),
                            fix=f"set the source's key to one of {', '.join(archive.files)}.")
        try:
            array = _check_numeric(archive[name], path, f"array {name!r}")
        except ValueError as error:           # object arrays refuse to load without pickle
            if "pickle" not in str(error):
                raise DataError(f"{path}: array {name!r} is corrupt ({error})",
                                fix="re-create the file with numpy.savez.") from None
            raise DataError(f"{path}: array {name!r} holds Python objects and cannot be read "
                            "without pickle", fix="save numeric arrays only (no object arrays)."
                            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
            raise DataError(f"{path}: array {name!r} is corrupt or truncated ({error})",
                            fix="re-create the file with numpy.savez.") from None
        _check_shape(array, path, f"array {name!r}")
        return check_finite(array, path, f"array {name!r}", allow=self.allow_nonfinite)

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
        allow_nonfinite: accept NaN and Inf values instead of rejecting the file.
    """

    path_arguments = ("path", "labels")

    def __init__(self, path, labels=None, allow_nonfinite=False):
        self.path, self.labels, self.allow_nonfinite = path, labels, allow_nonfinite

    def _read(self, path, what):
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise DataError(f"{path}: not a readable .npy file (no NUMPY header)",
                                fix="write it with numpy.save.")
        try:
            array = npyfile.open_npy(path)
        except ValueError as error:
            if "pickle" in str(error):
                raise DataError(f"{path} holds Python objects and cannot be read without pickle",
                                fix="save a numeric array (no object arrays).") from None
            raise DataError(f"{path}: not a readable .npy file, truncated or corrupt ({error})",
                            fix="re-create the file with numpy.save.") from None
        except (OSError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npy file ({error})",
                            fix="re-create the file with numpy.save.") from None
        _check_shape(_check_numeric(array, path, what), path, what)
        return check_finite(array, path, what, allow=self.allow_nonfinite)

    def load(self, base):
        path = self.resolve(base)
        x = self._read(path, "the array")
        y = None
        if self.labels:
            label_path = Npy(self.labels).resolve(base)
            y = self._read(label_path, "the labels")
            path = f"{path} and {label_path}"
        _same_length(x, y, path)
        return x, y


@register("csv")
class Csv(Source):
    """Rows of a CSV file: header and delimiter detected, string columns one-hot encoded.

    Args:
        path: the CSV file.
        label: the label column, by name or 0-based position (-1, the last, by default);
            null for a file of features only. String labels become class names.
        features: the feature columns (names or positions); null for every other column.
        delimiter: the field separator, or auto to detect it (, ; tab |).
        header: auto (detected), true or false; without one, columns are named c0, c1, ...
        categorical: auto (every column of strings), a list of columns, or null (none).
            Categories are learned from the training rows (held-out fractions excluded) and
            one-hot encoded.
        missing: empty or NA cells: error, or fill by mean, median or constant (fill_value),
            with the value learned from the training rows.
        fill_value: the constant for ``missing: constant``.
        allow_nonfinite: accept inf values instead of rejecting the file.
    """

    family = "table"

    def __init__(self, path, label: Union[int, str, None] = -1, features: Optional[list] = None,
                 delimiter="auto", header: Union[bool, str] = "auto",
                 categorical: Union[str, list, None] = "auto", missing="error",
                 fill_value: Union[float, str] = 0.0, allow_nonfinite=False):
        self.path, self.label, self.features = path, label, features
        self.delimiter, self.header, self.categorical = delimiter, header, categorical
        self.missing, self.fill_value, self.allow_nonfinite = missing, fill_value, allow_nonfinite
        table.check_settings(self)
        #: what the training file taught: columns, kinds, categories, fill values, class names
        self.fitted = None

    @property
    def class_names(self):
        return (self.fitted or {}).get("class_names")

    def adopt(self, train):
        """Use what the training source learned (for validation, test and predict files)."""
        if isinstance(train, Csv) and train.fitted is not None:
            self.fitted = train.fitted

    def _columns(self, data, label):
        if self.features is None:
            return [i for i in range(len(data.names)) if i != label]
        if not isinstance(self.features, list):
            raise ConfigError("features must be a list of column names or positions")
        return [data.index(f, "features") for f in self.features]

    def load(self, base):
        path = self.resolve(base)
        learning = self.fitted is None
        streamed = None if learning else csv_stream.labelled(self, path)   # numeric: no cell strings
        if streamed is not None:
            self._learned_from = None
            return streamed
        data = table.Table(path, self.delimiter, self.header)
        if learning:
            label = None if self.label is None else data.index(self.label, "label")
            self.fitted = table.fit_columns(self, data, self._columns(data, label))
            self.fitted.update(class_names=None, label=None if label is None else data.names[label],
                               label_index=label)
            columns = [data.index(name, "features") for name in self.fitted["columns"]]
        else:                  # a later file: columns by the training header's names, or position
            label = csv_columns.label_column(data, self.fitted, self.label, needed=True)
            columns = csv_columns.feature_columns(data, self.fitted, label)
        x = table.features(self, data, self.fitted, columns)
        self._learned_from = (data, columns) if learning else None
        return x, (None if label is None else table.labels(data, label, self.fitted, learning))

    def fit_rows(self, rows):
        """Learn categories and fill values again from the training ``rows`` of the file only
        (validation/test fractions were held out of it); the re-encoded features of every row,
        or None when there is nothing to redo."""
        learned, self._learned_from = getattr(self, "_learned_from", None), None
        if learned is None or len(rows) == len(learned[0].cells):
            return None
        return table.refit(self, *learned, rows)

    def load_features(self, base, expected_features=None):
        """The features of a CSV, with or without its label column (found by name or width)."""
        path = self.resolve(base)
        streamed = csv_stream.features(self, path)       # numeric files: in chunks, no cell strings
        if streamed is not None:
            return streamed
        data = table.Table(path, self.delimiter, self.header)
        if self.fitted is None:
            label = data.index(self.label, "label") if self.label is not None and \
                len(data.names) == (expected_features or 0) + 1 else None
            columns = self._columns(data, label)
            self.fitted = table.fit_columns(self, data, columns)
        else:
            label = csv_columns.label_column(data, self.fitted, self.label, needed=False)
            columns = csv_columns.feature_columns(data, self.fitted, label)
        return table.features(self, data, self.fitted, columns)

    @classmethod
    def for_prediction(cls, path, train):
        if train is None:
            return cls(path)
        source = cls(path, label=train.label, features=train.features, delimiter=train.delimiter,
                     header=train.header, categorical=train.categorical, missing=train.missing,
                     fill_value=train.fill_value, allow_nonfinite=train.allow_nonfinite)
        source.adopt(train)
        return source


def _is_float(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _check_shape(array, file, what):
    if array.ndim == 0 or len(array) == 0:
        raise DataError(f"{file}: {what} has shape {array.shape}, no samples",
                        fix="store one sample per row along the first axis.")


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
    # the whole name, not path.suffixes: 'train-images-idx3-ubyte.gz' has the suffix '.gz' only
    name = path.name.lower() if path.is_file() else ""
    candidates = []
    for registered in registry("source").names():
        cls = registry("source").get(registered)
        if any(name.endswith(ext) for ext in getattr(cls, "extensions", ())) \
                or (path.is_dir() and getattr(cls, "reads_folders", False)):
            candidates.append(cls)
    if not path.exists():
        raise ConfigError(f"file {str(path)!r} does not exist", fix="check the path.")
    if not candidates:
        known = sorted({e for n in registry("source").names()
                        for e in getattr(registry("source").get(n), "extensions", ())})
        kind = "a folder" if path.is_dir() else \
            (f"a {path.suffix!r} file" if path.suffix else "a file without an extension")
        raise DataError(f"{path}: cannot tell how to read {kind}",
                        expected="a file ending in " + ", ".join(known))
    same_class = [c for c in candidates if isinstance(train_source, c)]
    same_family = [c for c in candidates if c.family == getattr(train_source, "family", None)]
    cls = (same_class or same_family or sorted(candidates, key=lambda c: c.fallback_rank))[0]
    return cls.for_prediction(str(path), train_source if isinstance(train_source, cls) else None)


Npz.extensions = (".npz",)
Npz.for_prediction = classmethod(
    lambda cls, path, train: cls(path, x=train.x, y=train.y) if train else cls(path))
Npy.extensions = (".npy",)
Npy.for_prediction = classmethod(lambda cls, path, train: cls(path))
Csv.extensions = (".csv", ".tsv")
