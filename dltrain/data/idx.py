"""The ``idx`` source: MNIST's IDX files (images and labels), gzipped or not.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in row-major order.
"""
import gzip
import zlib

import numpy as np

from dltrain.errors import DataError
from dltrain.registry import register
from dltrain.data.sources import Source

READ_BYTES = 16 << 20       # read into the array this much at a time

# type code -> big-endian dtype
TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array an IDX file holds (uint8 data stays uint8); a DataError names a bad file. The
    data is read straight into the array, piece by piece: no copy of the file is held beside it."""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(path, "rb") as f:
            return _read(f, path)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read the file ({error})",
                        fix="download it again; gzipped (.gz) and plain IDX files both work.") from None


def _read(f, path):
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {magic.hex()!r})",
                        expected="00 00 <type> <dims>, e.g. 00000803 for MNIST images",
                        fix="give an MNIST-format file such as train-images-idx3-ubyte.gz.")
    dims = magic[3]
    sizes = f.read(4 * dims)
    if len(sizes) < 4 * dims:
        raise DataError(f"{path}: the IDX header is cut short")
    shape = tuple(int(v) for v in np.frombuffer(sizes, ">u4", dims))
    dtype = np.dtype(TYPES[magic[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    data = np.empty(shape, dtype)
    view, done = memoryview(data.reshape(-1).view(np.uint8)), 0
    while done < expected:
        got = f.readinto(view[done:done + READ_BYTES])
        if not got:
            break
        done += got
    while done == expected and (extra := len(f.read(READ_BYTES))):
        done += extra                                   # a file too long: count what is too much
    if done != expected:
        raise DataError(f"{path}: the header promises shape {shape} ({expected:,} bytes of data) "
                        f"but the file holds {done:,}", fix="the file is truncated; download it again.")
    return data if dtype.itemsize == 1 else data.astype(dtype.newbyteorder("="))


@register("idx")
class Idx(Source):
    """MNIST-format IDX files: images (N, rows, cols) and labels (N,), gzipped or not.

    Images come out channels-last, (N, rows, cols, 1), as uint8 0..255: rescale them in
    preprocessing (`{type: rescale, scale: 0.00392156862745098}`, i.e. 1/255).

    Args:
        path: the images file, e.g. train-images-idx3-ubyte.gz.
        labels: the labels file, or null.
    """

    family = "image"

    path_arguments = ("path", "labels")
    extensions = (".idx", "-ubyte", "-ubyte.gz", ".idx.gz")

    def __init__(self, path, labels=None):
        self.path, self.labels = path, labels

    def _images(self, path):
        x = read_idx(path)
        if x.ndim == 3:
            x.shape = x.shape + (1,)                 # (N, rows, cols) -> (N, rows, cols, 1), no view
        if x.ndim not in (1, 2, 4):
            raise DataError(f"{path} holds a {x.ndim}-D array of shape {x.shape}, not images")
        return x

    def load(self, base):
        path = self.resolve(base)
        x = self._images(path)
        y = None
        if self.labels:
            label_path = Idx(self.labels).resolve(base)
            y = read_idx(label_path)
            if y.ndim != 1:
                raise DataError(f"{label_path} holds shape {y.shape}, not one label per image",
                                fix="give the labels file (…-labels-idx1-ubyte.gz) as `labels`.")
            if len(y) != len(x):
                raise DataError(f"{path} has {len(x):,} images but {label_path} has {len(y):,} labels",
                                fix="pair the images and labels files of the same split.")
            y = y.astype(np.int64)
        return x, y

    def load_features(self, base, expected_features=None):
        return self._images(self.resolve(base))

    @classmethod
    def for_prediction(cls, path, train):
        return cls(path)
