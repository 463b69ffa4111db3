"""The run writer: the one object that creates, writes and deletes files in a run directory.

    RUN/config.yaml  run.json  metrics.csv  metrics.jsonl  curves.png (dltrain plot)
    RUN/checkpoints/last.npz  previous.npz  best.npz  epoch_NNN.npz

Every file is written through files.atomic_open (temporary beside the target, fsync, rename), so
a crash leaves the old file or the new one. ``last.npz`` keeps the one before it as
``previous.npz`` (a hard link: there is no moment without a last.npz). Retention of the
``epoch_NNN.npz`` files is ordered by epoch number, not by name. The training loop, the
callbacks (through the control object) and ``api.fit`` all write through one writer; a process
that must not write (a rank other than 0) gets a ``NullWriter``, which writes nothing.
"""
import csv
import io
import json
import math
import os
import re
import shutil
from pathlib import Path

from dltrain.errors import CheckpointError, ConfigError
from dltrain.training import checkpoint, finite
from dltrain.training.files import TEMP_MARK, atomic_open, clean_temporaries, write_json, write_text

CHECKPOINTS = "checkpoints"
PREVIOUS = "previous.npz"
LOCK = ".dltrain.lock"
#: what a run directory holds: --overwrite replaces a folder of only these (or one whose run.json
#: says dltrain wrote it), never someone's own files
RUN_FILES = {"config.yaml", "run.json", "metrics.csv", "metrics.jsonl", "curves.png", CHECKPOINTS, LOCK}
EPOCH_FILE = re.compile(r"epoch_(\d+)\.npz$")


class RunWriter:
    #: whether this writer writes at all (a NullWriter does not: the trainer skips gathering state)
    writes = True

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoints = self.path / CHECKPOINTS

    # -- opening -------------------------------------------------------------------------------

    def create(self, overwrite=False):
        """A fresh run: create the directory; a non-empty one is refused unless ``overwrite``,
        and even then unless it holds a dltrain run (or only a run's files)."""
        if self.path.exists() and any(c.name != LOCK for c in self.path.iterdir()):
            if not overwrite:
                raise ConfigError(f"run directory {str(self.path)!r} already exists and is not empty",
                                  fix="pass --overwrite to replace it, --run-dir to choose another, "
                                      "or --resume to continue it.")
            if not holds_run(self.path):
                others = sorted(c.name for c in self.path.iterdir() if c.name not in RUN_FILES)
                raise ConfigError(f"{str(self.path)!r} is not a dltrain run directory (it holds "
                                  f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}), so "
                                  "--overwrite and --resume leave it alone",
                                  fix="choose another --run-dir (a new or empty folder, or a run).")
            self._empty()
        self.check_writable(fix="choose a writable place with --run-dir.")

    def reopen(self):
        """A resumed run: check it can be written and remove temporaries a crash left behind."""
        self.check_writable(fix="make it writable, or copy the run somewhere writable.")

    def check_writable(self, fix):
        """Create checkpoints/, write and remove a probe file there, remove stale temporaries;
        a CheckpointError (exit 5) saying ``fix`` when the folder cannot be written."""
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            probe = self.checkpoints / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as error:
            raise CheckpointError(f"cannot write to run directory {str(self.path)!r}: {error.strerror}",
                                  fix=fix) from None
        clean_temporaries(self.path)

    def _empty(self):
        for child in self.path.iterdir():
            if child.name == LOCK:                 # held by this process for the whole fit
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    # -- the lock: one fit per run directory ------------------------------------------------------

    def lock(self):
        """Hold RUN/.dltrain.lock (flock) until ``unlock``; another process holding it is a
        ConfigError naming its PID (exit 2). Where file locks are not supported, nothing is held."""
        import fcntl

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / LOCK, "a+")
        except OSError as error:
            raise CheckpointError(f"cannot write to run directory {str(self.path)!r}: "
                                  f"{error.strerror or error}",
                                  fix="choose a writable place with --run-dir.") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "unknown"
            self._lock.close()
            self._lock = None
            raise ConfigError(f"run directory {str(self.path)!r} is in use by another dltrain "
                              f"process (PID {holder})",
                              fix="wait for it to finish, or choose another --run-dir.") from None
        except OSError:
            return                                # no locks on this file system
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()

    def unlock(self):
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.close()                          # closing the descriptor releases the flock

    # -- files ---------------------------------------------------------------------------------

    def config(self, text):
        write_text(self.path / "config.yaml", text)

    def manifest(self, record, quiet=False):
        """run.json; ``quiet``: a failure to write it is ignored (while reporting another error)."""
        try:
            write_json(self.path / "run.json", record)
        except CheckpointError:
            if not quiet:
                raise

    def metrics(self, history):
        """metrics.csv and metrics.jsonl: one row per epoch, lr and seconds last."""
        columns = []
        for row in history:
            columns += [k for k in row if k not in columns]
        columns = [c for c in columns if c not in ("lr", "seconds")] + ["lr", "seconds"]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in history:
            writer.writerow([_cell(row.get(c)) for c in columns])
        write_text(self.path / "metrics.csv", text.getvalue())
        write_text(self.path / "metrics.jsonl",
                   "".join(json.dumps({k: _json(v) for k, v in row.items()}) + "\n" for row in history))

    def curves(self, draw, name="curves.png"):
        """RUN/curves.png: ``draw(file)`` writes the image into an open binary file; its path."""
        with atomic_open(self.path / name) as file:
            draw(file)
        return self.path / name

    def checkpoint(self, name, arrays, meta, keep=None):
        """checkpoints/NAME.npz; never one holding NaN or Inf. ``last`` keeps the one it replaces
        as previous.npz; ``keep``: of the epoch_NNN files keep only the newest ``keep`` epochs."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        filename = f"{name}.npz"
        finite.check_state(arrays, filename, meta["epoch"])
        if name == "last":
            self._keep_previous(self.checkpoints / filename)
        checkpoint.save(self.checkpoints / filename, arrays, meta)
        if keep:
            self._retain(keep)

    def _keep_previous(self, path):
        if not path.exists():
            return
        previous = path.with_name(PREVIOUS)
        temp = path.with_name(f".{PREVIOUS}{TEMP_MARK}{os.getpid()}")
        try:
            try:
                os.link(path, temp)
            except OSError:                       # no hard links on this file system: copy
                shutil.copyfile(path, temp)
            os.replace(temp, previous)
        except OSError as error:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise CheckpointError(f"cannot keep {path} as {previous.name}: {error.strerror or error}",
                                  fix="check free disk space and permissions of the run directory.") from None

    def _retain(self, keep):
        """Delete all but the ``keep`` highest-numbered epoch_NNN.npz (epoch_1000 is newer than
        epoch_999 although it sorts before it by name)."""
        numbered = sorted((int(m.group(1)), path) for path in self.checkpoints.iterdir()
                          if (m := EPOCH_FILE.match(path.name)))
        for _, path in numbered[:-keep]:
            path.unlink(missing_ok=True)


def holds_run(path):
    """Whether ``path`` holds a dltrain run: its run.json says so, or it has only a run's files."""
    path = Path(path)
    try:
        record = json.loads((path / "run.json").read_text(encoding="utf-8")[:1 << 24])
        if isinstance(record, dict) and "dltrain" in record:
            return True
    except (OSError, ValueError):
        pass
    return all(child.name in RUN_FILES for child in path.iterdir())


class NullWriter(RunWriter):
    """The writer of a process that must not write (a rank other than 0): every call does nothing."""

    writes = False

    def create(self, overwrite=False):
        pass

    def reopen(self):
        pass

    def lock(self):
        pass

    def config(self, text):
        pass

    def manifest(self, record, quiet=False):
        pass

    def metrics(self, history):
        pass

    def curves(self, draw, name="curves.png"):
        return None

    def checkpoint(self, name, arrays, meta, keep=None):
        pass


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
