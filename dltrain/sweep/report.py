"""A sweep's results from its journal: the ranked table (CSV, JSON), the best trial, refitting.

A trial's row is its longest job: trials that trained longer rank above those a scheduler
stopped earlier (their scores are not comparable), then by score; failed and diverged trials
come last. Wall-clock seconds are reported but never used to rank.
"""
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.errors import ConfigError
from dltrain.sweep import journal as journals

METHOD_NAMES = {"asha": "ASHA", "hyperband": "Hyperband"}


@dataclass
class Report:
    folder: Path
    name: str
    method: str
    metric: str
    mode: str
    max_epochs: int
    parameters: list                        # parameter paths, in the sweep file's order
    rows: list = field(default_factory=list)
    distributions: dict = field(default_factory=dict)
    base_file: str = None
    file: str = None

    @property
    def best(self):
        ranked = [r for r in self.rows if r["score"] is not None]
        return ranked[0] if ranked else None

    def as_dict(self):
        return {"sweep": self.name, "folder": str(self.folder), "method": self.method, "metric": self.metric,
                "mode": self.mode, "max_epochs": self.max_epochs, "parameters": self.parameters,
                "trials": self.rows}

    def columns(self):
        return ["rank", "trial", *self.parameters, "epochs", "best_epoch", self.metric, "status", "note",
                "seconds", "run"]

    def table(self):
        """One list per row, in the order of ``columns()`` (the metric's column holds the score)."""
        return [[row["rank"], row["trial"], *[row["params"].get(p) for p in self.parameters], row["epochs"],
                 row["best_epoch"], row["score"], row["status"], row["note"], row["seconds"], row["run"]]
                for row in self.rows]

    def write_csv(self, path):
        from dltrain.training.files import atomic_open

        with atomic_open(Path(path), "w") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(self.columns())
            writer.writerows([["" if v is None else v for v in row] for row in self.table()])
        return Path(path)

    def write_json(self, path):
        from dltrain.training.files import write_text

        write_text(Path(path), json.dumps(self.as_dict(), indent=1) + "\n")
        return Path(path)


def load(folder):
    """The Report of a sweep folder (a ConfigError when it holds no sweep)."""
    folder = Path(folder)
    records = journals.read(folder)
    head = journals.header(records)
    if head is None:
        raise ConfigError(f"{str(folder)!r} is not a sweep folder (it has no {journals.NAME})",
                          fix="give the folder `dltrain sweep` wrote, e.g. runs/NAME.")
    settings = head["settings"]
    report = Report(folder, head.get("name", folder.name), settings["method"], settings["metric"],
                    settings["mode"], settings["max_epochs"], list(settings["parameters"]),
                    distributions=settings["parameters"], base_file=head.get("base_file"), file=head.get("file"))
    longest, order, seconds = {}, {}, {}
    for record in records:
        if record.get("event") != "result":
            continue
        trial = record["trial"]
        order.setdefault(trial, len(order))
        seconds[trial] = seconds.get(trial, 0.0) + (record.get("seconds") or 0.0)
        if trial not in longest or record["epochs"] >= longest[trial]["epochs"]:
            longest[trial] = record
    rows = [_row(report, record, folder, seconds[trial]) for trial, record in longest.items()]
    rows.sort(key=lambda row: (row["status"] in ("failed",) or row["note"].startswith("diverged"),
                               -row["epochs"], _score_key(report.mode, row["score"]), order[row["trial"]]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    report.rows = rows
    return report


def _score_key(mode, score):
    if score is None:
        return (1, 0.0)
    return (0, -score if mode == "max" else score)


def _row(report, record, folder, seconds):
    status, note = record["status"], ""
    if status == "diverged":
        status, note = "pruned", "diverged: " + (record.get("message") or "").splitlines()[0]
    elif status == "failed":
        note = (record.get("message") or "").strip().splitlines()[0] if record.get("message") else ""
    elif record["epochs"] < report.max_epochs:
        status, note = "pruned", f"{METHOD_NAMES.get(report.method, report.method)} stopped it at epoch {record['epochs']}"
    elif status == "stopped":
        status, note = "completed", f"early stopping at epoch {record['epochs_run']}"
    return {"rank": None, "trial": record["trial"], "params": record["params"], "epochs": record["epochs"],
            "epochs_run": record["epochs_run"], "best_epoch": record["best_epoch"], "score": record["score"],
            "status": status, "note": note, "final": record.get("final", {}), "seconds": round(seconds, 2),
            "run": str(folder / "trials" / record["trial"]), "message": record.get("message")}


def refit_plan(report):
    """(base config, overrides, run directory) that train the best trial's configuration on the
    training and validation data together, for the epoch at which it scored best."""
    best = report.best
    if best is None:
        raise ConfigError(f"no trial of {report.folder} has a score yet", fix="run the sweep first.")
    if report.base_file is None or not Path(report.base_file).is_file():
        raise ConfigError(f"the sweep's base config {report.base_file!r} is gone",
                          fix="restore it, or train the best run's config: dltrain fit "
                              f"{best['run']}/config.yaml --set data.validation=null ...")
    base = json.loads(json.dumps(journals.header(journals.read(report.folder))["base"]))
    validation = (base.get("data") or {}).get("validation")
    if validation is None:
        raise ConfigError("the base config has no validation split to train on", where="data.validation",
                          fix=f"train the best run as it is: {best['run']}")
    if not (isinstance(validation, dict) and "split" in validation and set(validation) <= {"split", "stratify"}):
        raise ConfigError("refit merges a validation split back into the training data, but the base "
                          "config's validation is a file of its own", where="data.validation",
                          fix=f"train on both yourself, or use the best run as it is: {best['run']}")
    from dltrain.sweep.space import override

    callbacks = [c for c in base.get("callbacks") or []
                 if not (isinstance(c, dict) and str(c.get("monitor", "")).startswith("val_"))]
    overrides = [override(p, v) for p, v in best["params"].items()]
    overrides += ["data.validation=null", override("callbacks", callbacks),
                  override("training.epochs", best["best_epoch"] or best["epochs_run"])]
    return report.base_file, overrides, report.folder / "refit"
