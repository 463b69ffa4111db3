"""Checkpoints: one .npz holding every array and a JSON record, read with allow_pickle=False.

Keys: ``model/<layer>/<array>``, ``optimizer/<key>``, ``preprocessing/<i>/<key>`` and ``meta``,
the JSON record (config, epoch, step, random states, callback state, label names, format
version) stored as UTF-8 bytes. A SHA-256 over all other arrays is kept in the record, so a
truncated or altered file is detected and named.

The file is also sealed: its zip comment, the last 79 bytes, is ``dltrain-sha256:`` and the
SHA-256 of every byte before the 64 hex digits. Zip CRCs and the array digest cover only what
a zip reader reads; 626 of a small checkpoint's 4,593 bytes (timestamps, extra fields, the
version-made-by, ...) are read by nothing, so a damaged one went unnoticed. The seal covers every
byte and travels with the file itself: a copied run, a single copied checkpoint and the
``previous.npz`` hard link keep it, and retention has no record to delete. The record says the
file is sealed (``file_checksum``), so a damaged seal is not mistaken for a checkpoint written
before seals (those are read as before, checked by their CRCs and array digest).
"""
import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from dltrain.data import npyfile
from dltrain.errors import CheckpointError
from dltrain.training import record_check
from dltrain.training.files import atomic_open

FORMAT_VERSION = 1
SEAL_MARK = b"dltrain-sha256:"
SEAL_BYTES = len(SEAL_MARK) + 64               # the zip comment: mark + hex digest
END_RECORD = 22                                 # a zip's end-of-central-directory record
CHUNK = 1 << 20


def digest(arrays):
    """SHA-256 over the names, dtypes, shapes and bytes of the arrays, in name order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def save(path, arrays, meta):
    """Write arrays and the meta record atomically; the record gets the checksum and format."""
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    write(path, arrays, {**meta, "format_version": FORMAT_VERSION, "sha256": digest(arrays)})


def write(path, arrays, record):
    """Write ``arrays`` and ``record`` as they are into a sealed .npz, atomically."""
    record = {**record, "file_checksum": "sha256"}
    encoded = np.frombuffer(json.dumps(record, default=_json_default).encode("utf-8"), dtype=np.uint8)
    with atomic_open(path, "w+b") as f:
        np.savez(f, meta=encoded, **arrays)
        _seal(f)


def _seal(f):
    """Give the zip just written to ``f`` its comment: the mark and the SHA-256 of every byte
    before the digest (the end record's comment length and the mark included)."""
    end = f.seek(0, os.SEEK_END)
    f.seek(end - END_RECORD)
    record = f.read(END_RECORD)
    if record[:4] != b"PK\x05\x06" or record[-2:] != b"\0\0":
        raise RuntimeError("np.savez did not end the archive with a comment-free end record")
    f.seek(end - 2)
    f.write(struct.pack("<H", SEAL_BYTES) + SEAL_MARK)
    f.write(_file_digest(f, end + len(SEAL_MARK)).encode("ascii"))


def _file_digest(f, size):
    """SHA-256 (hex) of the first ``size`` bytes of the binary file ``f``."""
    h = hashlib.sha256()
    f.seek(0)
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def sealed(path):
    """True when the file carries a seal that matches its bytes, False when it has none (or its
    seal's frame is damaged); a CheckpointError when the seal's digest does not match."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < END_RECORD + SEAL_BYTES:
            return False
        f.seek(size - SEAL_BYTES - END_RECORD)
        tail = f.read(END_RECORD + SEAL_BYTES)
        framed = tail[:4] == b"PK\x05\x06" and \
            tail[END_RECORD - 2:END_RECORD + len(SEAL_MARK)] == struct.pack("<H", SEAL_BYTES) + SEAL_MARK
        if not framed:
            return False
        if _file_digest(f, size - 64).encode("ascii") != tail[-64:]:
            raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum: it was altered or damaged",
                                  fix="use another checkpoint (e.g. --checkpoint last) or retrain.")
    return True


def load(path):
    """(arrays, meta) of a checkpoint; a missing, truncated or altered file is a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist",
                              fix="train first with `dltrain fit`, or name an existing checkpoint.")
    try:
        seal = sealed(path)                               # every byte, before anything is parsed
        arrays = npyfile.read_npz(path, limits={"meta": npyfile.MAX_RECORD_BYTES})  # checked first
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({error})",
                              fix="use another checkpoint (e.g. --checkpoint last) or retrain.") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{str(path)!r} is not a dltrain checkpoint (no meta record)")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} has a corrupt meta record ({error})") from None
    if isinstance(meta, dict) and meta.get("file_checksum") is not None and not seal:
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum: the seal at its end "
                              "(the last 79 bytes) is missing or damaged",
                              fix="use another checkpoint (e.g. --checkpoint last) or retrain.")
    record_check.check(meta, path, FORMAT_VERSION)       # version, keys and types, all at once
    if not seal and meta.get("sha256") != digest(arrays):   # sealed: every byte already checked
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum: it was altered or damaged",
                              fix="use another checkpoint (e.g. --checkpoint last) or retrain.")
    return arrays, meta


def section(arrays, prefix):
    """The arrays under ``prefix/`` with the prefix removed."""
    start = prefix + "/"
    return {key[len(start):]: value for key, value in arrays.items() if key.startswith(start)}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint record")
