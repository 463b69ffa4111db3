"""The sweep's journal: SWEEP_DIR/journal.jsonl, one JSON object a line, appended and fsynced.

The first line records what the sweep is (its settings and the resolved base config); every
finished job adds a ``result`` line. `dltrain sweep` on a folder with a journal continues that
sweep: the method replays its decisions, jobs with a result are not run again. A sweep whose
settings or base config changed since is refused with the differences, unless allowed (then a
``change`` line records the new ones). A line cut short by a crash is ignored.
"""
import json
import os
from pathlib import Path

from dltrain.errors import CheckpointError, ConfigError

NAME = "journal.jsonl"
VERSION = 1


def _plain(value):
    """The value as JSON gives it back (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value))


def read(folder):
    """Every complete record of a sweep folder's journal ([] when there is none)."""
    path = Path(folder) / NAME
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise CheckpointError(f"{path}:{number} is not a JSON record",
                                      fix="restore the journal, or start the sweep in a new folder.") from None
    return records


def _drop_cut_line(path):
    """Remove a last line a crash left half written, so that new records start on a line."""
    try:
        text = path.read_bytes()
    except OSError:
        return
    if text and not text.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(text.rfind(b"\n") + 1)


def header(records):
    """The sweep's current description: the last ``sweep`` or ``change`` record."""
    described = [r for r in records if r.get("event") in ("sweep", "change")]
    if not described:
        return None
    return described[-1]


def results(records):
    """{(trial, epochs): result record}, the last one of each."""
    return {(r["trial"], r["epochs"]): r for r in records if r.get("event") == "result"}


class Journal:
    """Appends to a sweep folder's journal, opened for a given sweep."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / NAME
        _drop_cut_line(self.path)
        self.records = read(self.folder)
        self.changed = False

    def open(self, sweep, allow_change=False):
        """Start the journal for ``sweep``, or check it describes the same sweep as before."""
        described = {"event": "sweep", "version": VERSION, "file": str(Path(sweep.file).resolve()),
                     "base_file": str(Path(sweep.base).resolve()), "name": sweep.name,
                     "settings": _plain(sweep.settings()), "base": _plain(sweep.base_config)}
        old = header(self.records)
        if old is None:
            self.append(described)
            return
        changes = differences(old, described)
        if changes and not allow_change:
            raise ConfigError(f"the sweep in {self.folder} was started with different settings:\n    "
                              + "\n    ".join(changes),
                              fix="continue it with the sweep file as it was, start a new sweep with "
                                  "--sweep-dir NEW, or pass --allow-change to continue with the new "
                                  "settings (results so far are kept; trials continue with the new config).")
        if changes:
            self.changed = True
            self.append({**described, "event": "change", "changes": changes})

    def append(self, record):
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:
            raise CheckpointError(f"cannot write {self.path}: {error.strerror or error}",
                                  fix="check free disk space and permissions of the sweep folder.") from None
        self.records.append(record)

    def results(self):
        return results(self.records)


def differences(old, new):
    """'sweep.key: old -> new' / 'base.key: ...' lines between two journal headers."""
    from dltrain.training.resume import config_changes

    return ([f"sweep.{line}" for line in config_changes(old.get("settings"), new["settings"])]
            + [f"base config: {line}" for line in config_changes(old.get("base"), new["base"])])
