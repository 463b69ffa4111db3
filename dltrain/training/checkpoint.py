"""Checkpoints: one .npz holding every array and a JSON record, read with allow_pickle=False.

Keys: ``model/<layer>/<array>``, ``optimizer/<key>``, ``preprocessing/<i>/<key>`` and ``meta``,
the JSON record (config, epoch, step, random states, callback state, label names, format
version) stored as UTF-8 bytes. A SHA-256 over all other arrays is kept in the record, so a
truncated or altered file is detected and named.
"""
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from dltrain.data import npyfile
from dltrain.errors import CheckpointError
from dltrain.training import record_check
from dltrain.training.files import atomic_open

FORMAT_VERSION = 1


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
    record = {**meta, "format_version": FORMAT_VERSION, "sha256": digest(arrays)}
    encoded = np.frombuffer(json.dumps(record, default=_json_default).encode("utf-8"), dtype=np.uint8)
    with atomic_open(path) as f:
        np.savez(f, meta=encoded, **arrays)


def load(path):
    """(arrays, meta) of a checkpoint; a missing, truncated or altered file is a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist",
                              fix="train first with `dltrain fit`, or name an existing checkpoint.")
    try:
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
    record_check.check(meta, path, FORMAT_VERSION)       # version, keys and types, all at once
    if meta.get("sha256") != digest(arrays):
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
