""".npy files and .npz archives read defensively: header, dtype and shape are checked against
the bytes actually there, and against a size bound, before anything is allocated.

``np.load`` trusts the header: an archive member whose header declares shape (10**12,) makes it
try to allocate terabytes (a MemoryError traceback), and a zip entry's declared size is taken on
faith. Here every array is read into a buffer of exactly the size its header declares, and only
once that size is known to match the member's (or file's) length and to fit the bound; a damaged
byte anywhere surfaces as ``FormatError`` (a ValueError, so callers' existing handlers name the
file), including a bad CRC of a zip member.
"""
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

#: the most bytes one array read into memory may take (memory-mapped .npy files are not bounded)
MAX_ARRAY_BYTES = int(os.environ.get("DLTRAIN_MAX_ARRAY_BYTES", 0)) or None
#: the most bytes a JSON record stored in an archive (a checkpoint's ``meta``) may take
MAX_RECORD_BYTES = 64 << 20
#: deflate cannot expand data by more than about 1032:1; a member claiming more is damaged
MAX_DEFLATE_RATIO = 1100


class FormatError(ValueError):
    """A .npy header or an .npz member is malformed, inconsistent or too large."""


def _memory_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def array_bound():
    """The size bound for an array read into memory: DLTRAIN_MAX_ARRAY_BYTES, else physical RAM."""
    return MAX_ARRAY_BYTES or _memory_bytes()


def read_header(f, what):
    """(dtype, shape, fortran_order, header bytes) of the .npy stream ``f``, validated."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise FormatError(f"{what}: unsupported .npy format version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except FormatError:
        raise
    except (ValueError, SyntaxError, TypeError, EOFError, OverflowError, UnicodeDecodeError) as error:
        raise FormatError(f"{what}: not a valid .npy header ({error})") from None
    if dtype.hasobject:
        raise FormatError(f"{what} holds Python objects and cannot be read without pickle")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise FormatError(f"{what}: the header declares an invalid shape {shape}")
    return dtype, tuple(shape), fortran, f.tell()


def declared_bytes(dtype, shape):
    """Bytes an array of ``shape`` and ``dtype`` takes (Python ints: no overflow)."""
    count = 1
    for n in shape:
        count *= n
    return count * dtype.itemsize


def check_length(what, dtype, shape, have, bound=None):
    """FormatError unless the header's size equals the ``have`` data bytes and fits ``bound``."""
    need = declared_bytes(dtype, shape)
    if need != have:
        raise FormatError(f"{what}: the header declares shape {shape} of {dtype} ({need:,} bytes) "
                          f"but {have:,} bytes of data follow (truncated or damaged)")
    if bound is not None and need > bound:
        raise FormatError(f"{what}: shape {shape} of {dtype} takes {need:,} bytes, more than the "
                          f"{bound:,} allowed (set DLTRAIN_MAX_ARRAY_BYTES to raise the bound)")
    return need


READ_BYTES = 16 << 20


def _fill(f, dtype, shape, fortran, nbytes, what):
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    buffer = memoryview(array.reshape(-1, order="A").view(np.uint8)) if nbytes else memoryview(b"")
    done = 0
    while done < nbytes:     # in pieces: a zip member's readinto reads (and copies) whatever it is asked for at once
        got = f.readinto(buffer[done:done + READ_BYTES])
        if not got:
            raise FormatError(f"{what}: the data ends after {done:,} of {nbytes:,} bytes (truncated)")
        done += got
    return array


def open_npy(path):
    """A read-only memory map of a .npy file, its header checked against the file's length."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        dtype, shape, fortran, offset = read_header(f, str(path))
    check_length(str(path), dtype, shape, size - offset)
    if declared_bytes(dtype, shape) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                     order="F" if fortran else "C")


class NpzFile:
    """The arrays of an .npz archive by name (``files``, ``archive[name]``, a context manager),
    each member checked before it is read; ``limits`` bound named members' bytes."""

    def __init__(self, path, limits=None):
        self.path = str(path)
        self.limits = dict(limits or {})
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                NotImplementedError, struct.error) as error:
            raise FormatError(f"not a readable zip archive ({error})") from None
        self.members = {}
        for info in self.zip.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self.members[name] = info
        self.files = list(self.members)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.zip.close()

    def __contains__(self, name):
        return name in self.members

    def __getitem__(self, name):
        info = self.members[name]
        what = f"array {name!r}"
        bound = min(self.limits.get(name, array_bound()), array_bound())
        if info.compress_type != zipfile.ZIP_STORED and \
                info.file_size > max(info.compress_size, 1) * MAX_DEFLATE_RATIO:
            raise FormatError(f"{what}: its zip entry claims {info.file_size:,} bytes from "
                              f"{info.compress_size:,} compressed (damaged)")
        try:
            with self.zip.open(info) as f:
                dtype, shape, fortran, offset = read_header(f, what)
                nbytes = check_length(what, dtype, shape, info.file_size - offset, bound)
                array = _fill(f, dtype, shape, fortran, nbytes, what)
                if f.read(1):                       # also makes zipfile check the CRC
                    raise FormatError(f"{what}: more data than its header declares")
        except FormatError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError, zlib.error, struct.error) as error:
            raise FormatError(f"{what} is damaged ({error})") from None
        return array

    def read_all(self):
        return {name: self[name] for name in self.files}


def read_npz(path, limits=None):
    """{name: array} of every member of an .npz archive, each checked before it is allocated."""
    with NpzFile(path, limits) as archive:
        return archive.read_all()
