"""Sources read a file into arrays: ``load(base) -> (x, y)``, y None when the file has no labels.

Paths are relative to ``base``, the folder of the config file. Every problem with a file is a
DataError naming the file (and the row, for text formats); a missing file is a ConfigError, since
the config names it.
"""
import zipfile
from pathlib import Path

import numpy as np

from dltrain.data import npyfile
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
