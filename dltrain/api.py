"""fit, evaluate and predict as Python functions that return data; cli.py renders them.

Library code never prints and never exits: it returns values and raises DltrainError.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain.config.loader import parse
from dltrain.config.resolve import dump
from dltrain.errors import CheckpointError, ConfigError, DataError, Interrupted
from dltrain.data import prediction_inputs
from dltrain.experiment import Experiment, relative_paths
from dltrain.training import checkpoint, rundir
from dltrain.training.trainer import Trainer


@dataclass
class FitResult:
    run_dir: Path
    history: list
    trainer: Trainer = field(repr=False)
    test: dict = None


def _tune_allocator():
    """Keep large freed blocks in the heap: returning them to the system and faulting them back
    in every step costs up to half an epoch on dense networks (glibc only; harmless elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)   # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def fit(config, overrides=(), run_dir=None, overwrite=False, callbacks=(), fold=None, resume=None,
        allow_config_change=False):
    """Train the model a config describes; write the run directory; return the history.

    With ``validation: {kfold: K}`` it trains K models (RUN/fold1..K) and returns a
    ``kfold.CrossValidation``; ``fold=(K, i)`` trains only fold i. ``resume`` is "auto" or a run
    directory or checkpoint to continue exactly (training/resume.py); config may then be None."""
    from dltrain.training import resume as resuming, signals

    _tune_allocator()
    if resume not in (None, "auto"):
        config = config or resuming.config_of(resume)
        run_dir = run_dir or resuming.run_of(resume)
    experiment = Experiment(config, overrides)
    from dltrain.data import kfold

    if fold is None and kfold.requested(experiment.config):
        run_dir = Path(run_dir) if run_dir else Path("runs") / str(experiment.config["name"])
        return kfold.cross_validate(fit, config, kfold.requested(experiment.config), run_dir,
                                    overrides=overrides, overwrite=overwrite, callbacks=callbacks)
    experiment.fold = fold
    from dltrain.data import download

    with download.reporting(_download_progress(callbacks)):      # a dataset fetched on first use
        splits = experiment.load_data()
    experiment.fit_pipeline(splits["train"])
    from dltrain.feasibility import check_experiment

    check_experiment(experiment)            # before allocating: memory, labels vs the last layer
    model = experiment.build()
    _check_labels(experiment, splits)
    run_dir = Path(run_dir) if run_dir else Path("runs") / str(experiment.config["name"])
    resolved = relative_paths(experiment.config, experiment.base, run_dir)
    resumed = resuming.start(run_dir, resume, overwrite, resolved, allow_config_change)
    from dltrain.training.files import write_text

    write_text(run_dir / "config.yaml", dump(resolved))
    record = rundir.manifest(experiment.seed, _fingerprints(experiment))
    rundir.write_manifest(run_dir, record)
    meta = {"config": resolved, "class_names": experiment.class_names,
            "source_state": getattr(experiment.sources["train"], "fitted", None),
            "input_shape": list(model.input_shape), "metrics": experiment.metric_names()}
    trainer = Trainer(
        model, experiment.loss, experiment.optimizer, experiment.metric_specs, experiment.pipeline,
        experiment.streams, epochs=experiment.training["epochs"],
        batch_size=experiment.training["batch_size"], shuffle=experiment.training["shuffle"],
        callbacks=[*experiment.callbacks, rundir.MetricsLog(run_dir), *callbacks,
                   signals.StopOnSignal(caught := signals.Signals(), run_dir)],
        run_dir=run_dir, meta=meta, target_fn=experiment.target_fn())
    trainer.class_weight = experiment.class_weights()
    trainer.divergence_factor = experiment.training.get("divergence_factor")
    if resumed:
        resuming.restore(trainer, resumed[1], resumed[2], len(experiment.callbacks))
        record["resumed_from"] = {"checkpoint": str(resumed[0]), "epoch": trainer.epoch, "step": trainer.step}
        rundir.write_manifest(run_dir, record)
    try:
        with caught, np.errstate(over="ignore", invalid="ignore"):   # non-finite: training/finite.py
            history = trainer.fit(splits["train"], splits["validation"])
    except BaseException as error:
        interrupted = isinstance(error, (KeyboardInterrupt, Interrupted))
        record.update(status="interrupted" if interrupted else "failed", error=type(error).__name__,
                      finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        _quiet_manifest(run_dir, record)
        raise
    test = trainer.evaluate(splits["test"]) if splits["test"] is not None else None
    record.update(status="completed", epochs=trainer.epoch, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  restored_epoch=trainer.restored_epoch, parameters=model.count_params())
    rundir.write_manifest(run_dir, record)
    return FitResult(run_dir, history, trainer, test)


def _download_progress(callbacks):
    """``progress(file, done, total)`` passed to each callback's ``on_download``, or None."""
    hooks = [c.on_download for c in callbacks if hasattr(c, "on_download")]
    if not hooks:
        return None

    def progress(file, done, total):
        for hook in hooks:
            hook(file, done, total)
    return progress


def _quiet_manifest(run_dir, record):
    try:
        rundir.write_manifest(run_dir, record)
    except CheckpointError:
        pass


def _fingerprints(experiment):
    prints = {}
    for split, source in experiment.sources.items():
        path = getattr(source, "path", None)
        if path and (experiment.base / path).is_file():
            prints[split] = rundir.fingerprint(experiment.base / path)
    return prints


def _check_labels(experiment, splits):
    """Labels the loss cannot take are a data error (file and row named) before the first epoch."""
    prediction_inputs.check_labels(experiment, splits)


# -- loading a run ---------------------------------------------------------------------------

def checkpoint_path(run, which="best"):
    """The checkpoint file for a run directory (best, else last) or a checkpoint path."""
    run = Path(run)
    prediction_inputs.check_run_argument(run)           # a config given where a run is expected
    if run.is_file():
        return run
    if not run.exists():
        raise ConfigError(f"run {str(run)!r} does not exist",
                          fix="give a run directory written by `dltrain fit` (e.g. runs/NAME).")
    if which not in ("best", "last"):
        path = Path(which)
        if not path.exists():
            raise CheckpointError(f"checkpoint {which!r} does not exist")
        return path
    folder = run / "checkpoints"
    for name in ([f"{which}.npz", "last.npz"] if which == "best" else ["last.npz"]):
        if (folder / name).exists():
            return folder / name
    raise CheckpointError(f"run {str(run)!r} has no checkpoint ({which}.npz)",
                          fix="train it with `dltrain fit` first.")


class LoadedRun:
    """A run's model, preprocessing and config, restored from a checkpoint."""

    def __init__(self, run, which="best"):
        self.path = checkpoint_path(run, which)
        self.run_dir = self.path.parent.parent if self.path.parent.name == "checkpoints" else self.path.parent
        arrays, self.meta = checkpoint.load(self.path)
        document = parse(dump(self.meta["config"]), str(self.run_dir / "config.yaml"))
        self.experiment = Experiment(document)
        prediction_inputs.remember_data(self.experiment, self.run_dir)   # where its data was found
        if self.meta.get("source_state") is not None:     # CSV categories, fills, class names
            self.experiment.sources["train"].fitted = self.meta["source_state"]
        self.model = self.experiment.build()
        try:
            self.model.load_state_dict(checkpoint.section(arrays, "model"))
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"{self.path} does not match its config: {error}") from None
        self.experiment.pipeline.load_state_dict(checkpoint.section(arrays, "preprocessing"))
        self.class_names = self.meta.get("class_names")

    def trainer(self):
        e = self.experiment
        return Trainer(self.model, e.loss, e.optimizer, e.metric_specs, e.pipeline, e.streams,
                       batch_size=e.training["batch_size"], target_fn=e.target_fn())


def evaluate(run, which="best", data=None):
    """{metric: value} of a run on its config's test split, or on ``data`` (a file or a spec)."""
    from dltrain.data import kfold

    if kfold.fold_runs(run):                            # a k-fold run: every fold, and the ensemble
        return kfold.evaluate_folds(run, which, data, LoadedRun)
    loaded = LoadedRun(run, which)
    experiment = loaded.experiment
    if data is not None:
        split = prediction_inputs.evaluation_split(data, experiment)
    else:
        if experiment.sources.get("test") is None:
            raise ConfigError(f"the config of {loaded.run_dir} has no test split",
                              fix="pass --data FILE, or add `test: {split: 0.2}` under data.")
        split = experiment.load_data()["test"]
    _check_labels(experiment, {"test": split})
    return prediction_inputs.scores(loaded.trainer().evaluate(split), loaded.path, loaded.meta)


@dataclass
class Predictions:
    outputs: np.ndarray                      # (N, ...) model outputs
    sources: list                            # (file, row) of each output
    class_names: list = None                 # names of the classes, for a classifier
    classifier: bool = False

    def top(self, k):
        """(indices, probabilities) of the k most probable classes per row."""
        probs = self.outputs.reshape(len(self.outputs), -1)
        if probs.shape[1] == 1:
            probs = np.concatenate([1 - probs, probs], axis=1)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(probs, order, axis=1)

    def label(self, index):
        return self.class_names[index] if self.class_names else int(index)

    def records(self, top_k=None):
        """One dict per input: file, row, and the predicted class and probabilities, or outputs."""
        rows = []
        if self.classifier:
            k = top_k or 1
            order, probs = self.top(k)
            classes = self.outputs.reshape(len(self.outputs), -1).shape[1]
            classes = 2 if classes == 1 else classes
            full = self.top(classes)
            for i, (file, row) in enumerate(self.sources):
                record = {"file": file, "row": row, "prediction": self.label(order[i, 0])}
                if top_k:
                    for j in range(k):
                        record[f"top{j + 1}"] = self.label(order[i, j])
                        record[f"top{j + 1}_probability"] = float(probs[i, j])
                else:
                    by_class = dict(zip(full[0][i], full[1][i]))
                    for c in range(classes):
                        record[f"p_{self.label(c)}"] = float(by_class[c])
                rows.append(record)
        else:
            flat = self.outputs.reshape(len(self.outputs), -1)
            for i, (file, row) in enumerate(self.sources):
                rows.append({"file": file, "row": row,
                             **{f"output_{j}" if flat.shape[1] > 1 else "output": float(v)
                                for j, v in enumerate(flat[i])}})
        return rows


def predict(run, files, which="best"):
    """The model's outputs for every sample of every file, with the saved preprocessing applied."""
    from dltrain.data.sources import for_file

    loaded = LoadedRun(run, which)
    experiment, model = loaded.experiment, loaded.model
    expected = tuple(model.input_shape)
    outputs, sources = [], []
    for file in files:
        source = prediction_inputs.prepare_image_source(for_file(file, experiment.sources.get("train")),
                                                        expected)
        reshapes = any(getattr(step, "changes_shape", False) for step in experiment.pipeline.steps)
        features = None if reshapes else int(np.prod(expected))
        x = source.load_features(Path.cwd(), expected_features=features)
        if features and x.ndim == 2 and len(expected) > 1 and x.shape[1] == features:
            x = x.reshape(len(x), *expected)        # flat CSV rows for shaped inputs (8x8 digits)
        x = prediction_inputs.conform(x, expected, file)    # a missing channel axis added
        if tuple(x.shape[1:]) != expected and not reshapes:     # text: checked by check_data
            raise DataError(f"{file}: each sample has shape {tuple(x.shape[1:])}, the model expects {expected}",
                            fix="give inputs shaped like the training data.")
        x = experiment.pipeline.transform(x)
        outputs.append(model.predict(x, batch_size=experiment.training["batch_size"] * 8))
        names = getattr(source, "sample_names", None)
        sources += [(str(file), names[i] if names else i) for i in range(len(x))]
    loss = experiment.loss
    classifier = loss.fuses is not None or loss.target == "sparse"
    outputs = np.concatenate(outputs)
    if getattr(loss, "from_logits", False):          # report probabilities, not logits
        from dltrain.registry import build

        outputs = build("activation", loss.fuses).forward(outputs)
    class_names = loaded.class_names or getattr(experiment.sources.get("train"), "class_names", None)
    return Predictions(outputs, sources, class_names, classifier)


def write_predictions(predictions, output, format=None, top_k=None):
    """Write predictions to ``output`` as csv, json or npy (by ``format`` or the extension)."""
    from dltrain.data import prediction_output
    from dltrain.training.files import atomic_open

    output = Path(output)
    format = format or (output.suffix.lstrip(".").lower() or "csv")
    if format not in ("csv", "json", "npy"):
        raise ConfigError(f"unknown output format {format!r}", expected="csv, json or npy")
    try:
        if format == "npy":
            with atomic_open(output) as f:
                np.save(f, predictions.outputs)
            return output
        with atomic_open(output, "w") as f:
            if format == "json":
                json.dump(predictions.records(top_k), f, indent=1)
            else:                                   # column by column: no dict per row
                prediction_output.write_csv(f, predictions, top_k)
    except CheckpointError as error:
        raise CheckpointError(f"cannot write predictions to {output}: {error.message}") from None
    return output
