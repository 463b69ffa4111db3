"""K-fold cross-validation: K models, each validated on one fold and trained on the others.

``validation: {kfold: K}`` (optionally ``stratify: true``; a ``split`` beside it is ignored, so
``--set data.validation.kfold=4`` works on a config that holds out a fraction) makes ``api.fit`` call
``cross_validate``, which trains fold i into ``RUN/fold<i>`` and reports each fold's validation
metrics with their mean and standard deviation: the protocol for small data sets, where one
held-out fraction gives too noisy a score.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain import check
from dltrain.data.dataset import Split
from dltrain.errors import ConfigError, DataError


def folds(split, k, rng, stratify=False):
    """K arrays of positions into ``split``, disjoint, covering it, sizes within one."""
    positions = rng.permutation(len(split))
    if not (stratify and split.y is not None):
        return [np.sort(part) for part in np.array_split(positions, k)]
    labels = np.asarray(split.y)[split.indices[positions]]
    parts = [[] for _ in range(k)]
    offset = 0
    for label in np.unique(labels):                 # deal each class round-robin over the folds
        members = positions[labels == label]
        for j in range(k):
            parts[(j + offset) % k].append(members[j::k])
        offset += len(members)
    return [np.sort(np.concatenate(p)) for p in parts]


def fold_split(split, spec, fold, rng, where):
    """(train, validation) for fold ``fold`` = (k, i) of ``spec``; (split, None) when no fold."""
    k = spec.get("kfold")
    try:
        check.positive_int("kfold", k)
        if k < 2:
            raise ConfigError(f"kfold={k} must be at least 2", fix="use kfold: 5, or split: 0.2.")
    except ConfigError as error:
        error.where = where
        raise
    if len(split) < k:
        raise DataError(f"{k} folds need at least {k} training samples, there are {len(split)}")
    parts = folds(split, k, rng, spec.get("stratify", False))
    if fold is None:
        return split, None
    _, i = fold
    held = parts[i]
    keep = np.setdiff1d(np.arange(len(split)), held)
    return (Split(split.x, split.y, split.indices[keep], split.name),
            Split(split.x, split.y, split.indices[held], "validation"))


def requested(config):
    """K when the config asks for k-fold validation, else None."""
    data = config.get("data") if isinstance(config, dict) else None
    validation = data.get("validation") if isinstance(data, dict) else None
    return validation.get("kfold") if isinstance(validation, dict) else None


@dataclass
class CrossValidation:
    run_dir: Path
    folds: list                                  # one FitResult per fold
    scores: list = field(default_factory=list)   # one {metric: value} per fold (validation)

    def summary(self):
        """{metric: (mean, std)} over the folds (population std, ddof 0)."""
        keys = [k for k in self.scores[0] if all(k in s for s in self.scores)]
        return {k: (float(np.mean([s[k] for s in self.scores])),
                    float(np.std([s[k] for s in self.scores]))) for k in keys}


def cross_validate(fit, config, k, run_dir, **options):
    """Train ``k`` models with ``fit(config, run_dir=..., fold=(k, i), **options)``."""
    results, scores = [], []
    for i in range(k):
        result = fit(config, run_dir=Path(run_dir) / f"fold{i + 1}", fold=(k, i), **options)
        history = result.history
        best = history[result.trainer.restored_epoch - 1] if result.trainer.restored_epoch else history[-1]
        scores.append({key[4:]: value for key, value in best.items() if key.startswith("val_")})
        results.append(result)
    return CrossValidation(Path(run_dir), results, scores)
