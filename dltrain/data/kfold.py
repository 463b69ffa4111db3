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

from dltrain import activations, check  # noqa: F401  (activations: the ensemble of from_logits models)
from dltrain.data.dataset import Split
from dltrain.data.prediction_inputs import fold_runs  # noqa: F401  (api and evaluate_folds)
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


# -- evaluating a k-fold run ---------------------------------------------------------------------

@dataclass
class FoldScores:
    run_dir: Path
    folds: list                  # one {metric: value} per fold, each fold's model on the test split
    ensemble: dict               # the metrics of the fold models' averaged outputs
    checkpoints: list            # which checkpoint of each fold was scored

    def summary(self):
        """{metric: (mean, std)} over the folds (population std, ddof 0)."""
        keys = [k for k in self.folds[0] if all(k in s for s in self.folds)]
        return {k: (float(np.mean([s[k] for s in self.folds])), float(np.std([s[k] for s in self.folds])))
                for k in keys}

    def as_dict(self):
        return {"folds": self.folds, "mean": {k: m for k, (m, _) in self.summary().items()},
                "std": {k: s for k, (_, s) in self.summary().items()}, "ensemble": self.ensemble,
                "checkpoints": self.checkpoints}


def evaluate_folds(run, which, data, load_run):
    """Each fold's model on the test split (or ``data``), and the ensemble of all folds: the
    averaged probabilities (a classifier) or outputs (a regression), scored like one model."""
    from dltrain.data import prediction_inputs

    loaded = [load_run(fold, which) for fold in fold_runs(run)]
    splits = []
    for one in loaded:
        if data is not None:
            split = prediction_inputs.evaluation_split(data, one.experiment)
        else:
            if one.experiment.sources.get("test") is None:
                raise ConfigError(f"the config of {one.run_dir} has no test split",
                                  fix="pass --data FILE, or add `test: {split: 0.2}` under data.")
            split = one.experiment.load_data()["test"]
        prediction_inputs.check_labels(one.experiment, {"test": split})
        splits.append(split)
    trainers = [one.trainer() for one in loaded]
    scores = [trainer.evaluate(split) for trainer, split in zip(trainers, splits)]
    return FoldScores(Path(run), scores, _ensemble(trainers, splits),
                      [f"{one.run_dir.name}/{prediction_inputs.describe_checkpoint(one.path, one.meta)}"
                       for one in loaded])


def _ensemble(trainers, splits, batch_size=256):
    """Loss and metrics of the mean of the fold models' outputs (probabilities, not logits)."""
    from dltrain.registry import build
    from dltrain.training.step import Step

    first = trainers[0]
    from_logits = getattr(first.loss, "from_logits", False)
    activation = build("activation", first.loss.fuses) if from_logits else None
    for metric in first.metrics.values():        # the fold scores are taken: reuse its metrics
        metric.reset()
    total, seen = 0.0, 0
    for start in range(0, len(splits[0]), batch_size):
        positions = np.arange(start, min(start + batch_size, len(splits[0])))
        outputs = []
        for trainer, split in zip(trainers, splits):      # each fold has its own preprocessing
            x, y = trainer._batch(split, positions)
            out = trainer.model.forward(x, training=False)
            outputs.append(activation.forward(out) if from_logits else out)
        mean = np.mean(outputs, axis=0)
        if from_logits:                    # logits whose softmax (sigmoid) is the mean probability
            clipped = np.clip(mean, 1e-7, 1 - 1e-7)
            mean = np.log(clipped) - (np.log1p(-clipped) if first.loss.fuses == "sigmoid" else 0)
        value = first.loss.sum(mean, y)
        total += float(value.mean) * value.count
        seen += value.count
        Step.update_metrics(first.metrics, mean if value.probabilities is None else value.probabilities, y)
    return first._results(total, seen)
