"""Runs on disk: every run directory under a folder (`dltrain runs`), and runs side by side
(`dltrain runs compare`): what differs in their configs, and their final and best metrics.

A run directory is a folder with a run.json or a metrics.csv next to a config.yaml, as `dltrain
fit` writes them; a sweep's trials are run directories too, so `dltrain runs runs/SWEEP` lists
them. The monitored metric of a run is the one its model_checkpoint callback watches (else its
early_stopping's, else val_loss, else loss).
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dltrain.errors import ConfigError

SKIP = ("checkpoints", "logs", "__pycache__")


@dataclass
class Run:
    path: Path
    name: str = None
    status: str = "unknown"
    epochs: int = 0
    monitor: str = None
    best: float = None
    best_epoch: int = None
    seconds: float = 0.0                    # training time: the sum of metrics.csv's seconds
    started: str = None
    final: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict, repr=False)
    history: list = field(default_factory=list, repr=False)

    def as_dict(self):
        return {"run": str(self.path), "name": self.name, "status": self.status, "epochs": self.epochs,
                "monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
                "seconds": round(self.seconds, 3), "started": self.started, "final": self.final}


def is_run(folder):
    folder = Path(folder)
    return (folder / "run.json").is_file() or ((folder / "metrics.csv").is_file()
                                                and (folder / "config.yaml").is_file())


def find(folder):
    """Every run directory at or under ``folder``, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder", fix="give a folder of runs, e.g. runs/.")
    found = []
    for root, dirs, _ in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        if is_run(root):
            found.append(Path(root))
    return found


def load(path):
    """The Run of one run directory."""
    import json

    from dltrain.plot import read_history

    path = Path(path)
    if not is_run(path):
        raise ConfigError(f"{str(path)!r} is not a run directory (no run.json or metrics.csv)",
                          fix="give a folder written by `dltrain fit`, e.g. runs/NAME.")
    run = Run(path)
    try:
        manifest = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    run.status, run.started = manifest.get("status", "unknown"), manifest.get("started")
    try:
        run.config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        run.config = {}
    run.name = run.config.get("name", path.name)
    try:
        run.history = read_history(path)[1]
    except Exception:       # no metrics.csv, or no epoch yet
        run.history = []
    if run.history:
        run.epochs = int(run.history[-1].get("epoch") or len(run.history))
        run.seconds = sum(r.get("seconds") or 0.0 for r in run.history)
        run.final = {k: v for k, v in run.history[-1].items() if k not in ("epoch", "seconds")}
    run.monitor, direction = monitored(run.config, run.history)
    for row in run.history:
        value = row.get(run.monitor)
        if value is not None and value == value and (run.best is None or
                                                      (value > run.best if direction == "max" else value < run.best)):
            run.best, run.best_epoch = value, int(row["epoch"])
    return run


def monitored(config, history):
    """(name, "min" or "max") of the quantity a run is judged by."""
    from dltrain.training.callbacks import Monitor

    for kind in ("model_checkpoint", "early_stopping"):
        for spec in config.get("callbacks") or []:
            if isinstance(spec, dict) and spec.get("type") == kind and spec.get("monitor"):
                return spec["monitor"], Monitor(spec["monitor"], spec.get("mode", "auto")).direction
    columns = history[0] if history else {}
    name = "val_loss" if "val_loss" in columns else "loss"
    return name, "min"


def list_runs(folder):
    return [load(path) for path in find(folder)]


@dataclass
class Comparison:
    runs: list
    config: list            # [(key path, [value of each run])] where they differ
    metrics: list           # [(name, [final value of each run])]

    def as_dict(self):
        return {"runs": [r.as_dict() for r in self.runs],
                "config": {key: values for key, values in self.config},
                "final": {key: values for key, values in self.metrics}}


def compare(paths):
    """The runs' config differences and their final metrics, side by side."""
    if len(paths) < 2:
        raise ConfigError("compare needs two runs or more", fix="dltrain runs compare RUN RUN ...")
    runs = [load(p) for p in paths]
    flat = [flatten(r.config) for r in runs]
    keys = []
    for one in flat:
        keys += [k for k in one if k not in keys]
    missing = object()
    config = [(k, [f.get(k, missing) for f in flat]) for k in keys]
    config = [(k, [None if v is missing else v for v in values]) for k, values in config
              if any(v != values[0] for v in values) and not _same_file(k, values, runs)]
    names = []
    for run in runs:
        names += [k for k in run.final if k not in names]
    metrics = [(name, [run.final.get(name) for run in runs]) for name in names]
    metrics.append(("best " + "/".join(dict.fromkeys(r.monitor for r in runs)), [r.best for r in runs]))
    return Comparison(runs, config, metrics)


def _same_file(key, values, runs):
    """Data paths are written relative to each run directory: equal when they name one file."""
    if not key.endswith("path") or not all(isinstance(v, str) for v in values):
        return False
    return len({os.path.normpath(os.path.join(run.path.resolve(), v)) for v, run in zip(values, runs)}) == 1


def flatten(value, path=()):
    """{'model.layers[1].units': 64, ...}: every leaf of a config by its --set path."""
    from dltrain.config.loader import format_path

    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in flatten(item, path + (key,)).items()}
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, path + (i,)).items()}
    return {format_path(path): value}
