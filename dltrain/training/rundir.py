"""The records of a run directory: run.json's manifest and the data files' fingerprints.

Only building the records lives here; training/writer.py writes every file of the run.
"""
import os
import platform
import sys
import time
from pathlib import Path


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
