"""The run directory of DESIGN.md: config.yaml, run.json, metrics.csv, metrics.jsonl, checkpoints/."""
import csv
import io
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from dltrain.errors import CheckpointError, ConfigError
from dltrain.training.callbacks import Callback
from dltrain.training.files import clean_temporaries, write_json, write_text


def prepare(path, overwrite=False):
    """Create the run directory; a non-empty one is refused unless ``overwrite``."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise ConfigError(f"run directory {str(path)!r} already exists and is not empty",
                              fix="pass --overwrite to replace it, --run-dir to choose another, "
                                  "or --resume to continue it.")
        _empty(path)
    check_writable(path, fix="choose a writable place with --run-dir.")
    return path


def check_writable(path, fix):
    """Create path/checkpoints, write and remove a probe file there, and remove stale temporaries;
    a CheckpointError (exit 5) saying ``fix`` when the folder cannot be written."""
    path = Path(path)
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = path / "checkpoints" / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise CheckpointError(f"cannot write to run directory {str(path)!r}: {error.strerror}",
                              fix=fix) from None
    clean_temporaries(path)


def _empty(path):
    import shutil

    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def manifest(seed, fingerprints, status="running", **extra):
    """The run.json record: versions, platform, BLAS and threads, seed, data fingerprints, status."""
    import numpy as np

    from dltrain import __version__

    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
               if k in os.environ}
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except (AttributeError, KeyError, TypeError):
        blas = "unknown"
    return {
        "dltrain": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "blas": blas, "threads": threads,
        "seed": seed, "data": fingerprints, "status": status,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra,
    }


def fingerprint(path):
    """SHA-256 of a file (its first 64 MiB and its size, for very large files)."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    left = 64 << 20
    with open(path, "rb") as f:
        while left > 0 and (chunk := f.read(min(left, 1 << 20))):   # 1 MiB at a time: no big buffer
            h.update(chunk)
            left -= len(chunk)
    whole = path.stat().st_size <= 64 << 20
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest(),
            "hashed": "whole file" if whole else "first 64 MiB"}


class MetricsLog(Callback):
    """Writes metrics.csv and metrics.jsonl (atomically) after every epoch."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def on_epoch_end(self, epoch, logs=None):
        rows = self.trainer.history
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        columns = [c for c in columns if c not in ("lr", "seconds")] + ["lr", "seconds"]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        write_text(self.folder / "metrics.csv", text.getvalue())
        write_text(self.folder / "metrics.jsonl",
                   "".join(json.dumps({k: _json(v) for k, v in row.items()}) + "\n" for row in rows))


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_manifest(folder, record):
    write_json(Path(folder) / "run.json", record)
