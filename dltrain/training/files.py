"""Crash-safe files: written to a temporary file beside the target, flushed, fsynced, renamed.

A crash at any moment leaves either the old file or the new one, never a half-written one.
"""
import json
import os
from contextlib import contextmanager
from pathlib import Path

from dltrain.errors import CheckpointError

TEMP_MARK = ".tmp-"


@contextmanager
def atomic_open(path, mode="wb", what=None, fix="check free disk space and permissions of the run directory."):
    """A file object whose content replaces ``path`` only when the block finishes without error.

    A failure is a CheckpointError "cannot write WHAT: reason" (``what`` defaults to the path)."""
    path = Path(path)
    temp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        with open(temp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as error:
        _remove_quietly(temp)
        raise CheckpointError(f"cannot write {what or path}: {error.strerror or error}", fix=fix) from None
    except BaseException:
        _remove_quietly(temp)
        raise


def write_text(path, text):
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path, value):
    write_text(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def clean_temporaries(folder):
    """Remove temporaries that a crashed process left behind."""
    for path in Path(folder).rglob(f".*{TEMP_MARK}*"):
        _remove_quietly(path)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
