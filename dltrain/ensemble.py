"""Ensembles: several runs with the same inputs and outputs, their outputs averaged.

A classifier's members' probabilities are averaged; a regression's outputs. A k-fold run
directory (RUN/fold1..K, written by ``validation: {kfold: K}``) stands for its folds. Each
member applies its own saved preprocessing (a fold's standardization is its own), so members
agree on raw inputs only. Scores are those of ``evaluate`` (scoring.score) on the averaged
outputs, with each member's own beside them, on the first member's test split (or ``data``);
a held-out split drawn with different seeds is warned about (the members' splits differ).
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain import scoring
from dltrain.errors import ConfigError


def member_runs(runs):
    """The run directories (or checkpoints) the arguments stand for: a k-fold run's folds."""
    found = []
    for run in runs:
        path = Path(run)
        folds = sorted(path.glob("fold[0-9]*"), key=lambda p: int(p.name[4:])) if path.is_dir() else []
        if folds and not (path / "checkpoints").exists():
            found += folds
        else:
            found.append(path)
    return found


def check(members):
    """An error when the members (api.LoadedRun) cannot be averaged: fewer than two, or other
    inputs, outputs, task or classes."""
    if len(members) < 2:
        raise ConfigError(f"an ensemble needs two or more runs; {len(members)} given",
                          fix="list several run directories, or a k-fold run (its folds are the members).")
    first = members[0]
    for other in members[1:]:
        for what, a, b in (("input shape", first.model.input_shape, other.model.input_shape),
                           ("output shape", first.model.output_shape, other.model.output_shape),
                           ("task", scoring.is_classifier(first.experiment.loss), scoring.is_classifier(other.experiment.loss)),
                           ("class names", first.class_names, other.class_names)):
            if a != b:
                raise ConfigError(f"{other.run_dir} has {what} {b!r}, {first.run_dir} has {a!r}: they "
                                  "cannot be averaged", fix="ensemble runs trained for the same inputs and outputs.")


def average(members, x):
    """(averaged outputs, each member's outputs) for raw inputs x."""
    each = [scoring.outputs(member, x) for member in members]
    return mean_outputs(each), each


@dataclass
class EnsembleScores:
    scores: dict                                   # the ensemble's {'loss': ..., metric: ...}
    members: dict = field(default_factory=dict)    # run directory -> its own scores
    samples: int = 0
    warnings: list = field(default_factory=list)


def evaluate(members, split, data_given=False):
    """EnsembleScores of the averaged members on ``split`` (the first member's test split, or
    the data the user gave: then no warning about held-out splits)."""
    check(members)
    x, y = scoring.split_arrays(split)
    mean, each = average(members, x)
    return EnsembleScores(scoring.score(members[0].experiment, mean, y),
                          {str(m.run_dir): scoring.score(m.experiment, out, y) for m, out in zip(members, each)},
                          len(x), [] if data_given else _held_out_warnings(members))


def _held_out_warnings(members):
    """A test split cut from the training data with each run's own seed is a different split per
    member: the others may have trained on the first one's test samples."""
    test = (members[0].experiment.config.get("data") or {}).get("test")
    seeds = {m.experiment.config.get("seed") for m in members}
    if isinstance(test, dict) and "split" in test and len(seeds) > 1:
        return [f"the members hold out their test split with different seeds ({', '.join(map(str, sorted(seeds, key=str)))}): "
                f"scored on {members[0].run_dir}'s, which the others may have trained on; pass --data FILE"]
    return []


def mean_outputs(outputs):
    """The average of the members' outputs (for api.ensemble_predict), in their dtype."""
    return np.mean(outputs, axis=0, dtype=np.float64).astype(outputs[0].dtype)
