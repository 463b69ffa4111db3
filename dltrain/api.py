"""fit, evaluate and predict as Python functions that return data; cli.py renders them.

Library code never prints and never exits: it returns values and raises DltrainError.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import dltrain.catalogue  # noqa: F401  (every kind can be built by name from here)
from dltrain import device as devices
from dltrain.allocator import tune as _tune_allocator
from dltrain.config.loader import parse
from dltrain.config.resolve import dump
from dltrain.errors import CheckpointError, ConfigError, DataError, Interrupted
from dltrain.data import prediction_inputs
from dltrain.experiment import Experiment, relative_paths
from dltrain.parallel.communicator import SingleProcess
from dltrain.training import checkpoint, record_check, rundir
from dltrain.training.trainer import Trainer
from dltrain.training.writer import NullWriter, RunWriter


@dataclass
class FitResult:
    run_dir: Path
    history: list
    trainer: Trainer = field(repr=False)
    test: dict = None
    note: str = None                     # e.g. a resumed run with nothing left to train


def fit(config, overrides=(), run_dir=None, overwrite=False, callbacks=(), fold=None, resume=None,
        allow_config_change=False, comm=None, check_replicas=None, device=None):
    """Train the model a config describes; write the run directory; return the history.

    With ``validation: {kfold: K}`` it trains K models (RUN/fold1..K) and returns a
    ``kfold.CrossValidation``; ``fold=(K, i)`` trains only fold i. ``resume`` is "auto" or a run
    directory or checkpoint to continue exactly (training/resume.py); config may then be None.
    ``comm``: the communicator (parallel/communicator.py) when this is one of several processes;
    only rank 0 writes the run directory; ``check_replicas=N`` compares the ranks' parameters
    every N steps (``--debug``). ``device``: cpu, cuda or auto (default: the config's
    ``device:``, else cpu; dltrain/device.py)."""
    from dltrain.data import kfold
    from dltrain.training import resume as resuming, signals

    _tune_allocator()
    if resume not in (None, "auto"):
        config = config or resuming.config_of(resume)
        run_dir = run_dir or resuming.run_of(resume)
    experiment = Experiment(config, overrides, fold=fold)
    device = devices.choose(device, experiment.config.get("device"), experiment.document.where(("device",)))
    if fold is None and kfold.requested(experiment.config):
        run_dir = Path(run_dir) if run_dir else Path("runs") / str(experiment.config["name"])
        return kfold.cross_validate(fit, config, kfold.requested(experiment.config), run_dir,
                                    overrides=overrides, overwrite=overwrite, callbacks=callbacks,
                                    device=device)
    comm = comm or SingleProcess()
    devices.refuse_with_workers(device, comm.size)       # one GPU per rank: not yet
    caught = signals.Signals()
    with caught:                            # a signal while the data loads: handled at the first batch
        splits = _prepare(experiment, callbacks)
    run_dir = Path(run_dir) if run_dir else Path("runs") / str(experiment.config["name"])
    writer = RunWriter(run_dir) if comm.is_root else NullWriter(run_dir)
    writer.lock()                           # one fit per run directory, held to the end
    try:
        with caught:                        # SIGINT/SIGTERM in every phase: exit 130, run.json says so
            resolved = relative_paths(experiment.config, experiment.base, run_dir)
            resumed = resuming.start(writer, resume, overwrite, resolved, allow_config_change)
            done = resumed and resuming.finished(resumed[2], resolved)
            if done:                        # an early stop is final; a finished run has no epochs left
                trainer = _trainer(experiment, writer, callbacks, resolved, comm, caught)
                resuming.restore(trainer, resumed[1], resumed[2])
                return FitResult(run_dir, trainer.history, trainer, None,
                                 note=f"nothing to do: {done} (raise training.epochs with --set to "
                                      "train a finished run further; an early stop is final)")
            writer.config(dump(resolved))
            record = rundir.manifest(experiment.seed, _fingerprints(experiment))
            record["device"] = devices.describe(device)
            writer.manifest(record)
            trainer = _trainer(experiment, writer, callbacks, resolved, comm, caught)
            if resumed:
                resuming.restore(trainer, resumed[1], resumed[2])
                record["resumed_from"] = {"checkpoint": str(resumed[0]), "epoch": trainer.epoch, "step": trainer.step}
                writer.manifest(record)
            _join(trainer, comm, check_replicas)
            devices.place(trainer, device)          # after any resume: the host state moves once
            try:
                with np.errstate(over="ignore", invalid="ignore"):   # non-finite: training/finite.py
                    history = trainer.fit(splits["train"], splits["validation"])
            except BaseException as error:
                interrupted = isinstance(error, (KeyboardInterrupt, Interrupted))
                record.update(status="interrupted" if interrupted else "failed", error=type(error).__name__,
                              finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                writer.manifest(record, quiet=True)
                raise
            test = trainer.evaluate(splits["test"]) if splits["test"] is not None else None
            if caught.received:             # during the test evaluation: every checkpoint is written
                record.update(status="interrupted", error="Interrupted", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                writer.manifest(record, quiet=True)
                raise Interrupted(f"{caught.received} received after training, during the test "
                                  f"evaluation; the run's checkpoints are complete",
                                  fix=f"score it with: dltrain evaluate {run_dir}")
            record.update(status="completed", epochs=trainer.epoch, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          restored_epoch=trainer.restored_epoch, parameters=experiment.model.count_params())
            writer.manifest(record)
            return FitResult(run_dir, history, trainer, test)
    finally:
        writer.unlock()


def _join(trainer, comm, check_replicas):
    """Under data parallelism: every rank starts from rank 0's state (also after a resume)."""
    from dltrain.parallel import replicas

    replicas.join(trainer.model, comm)
    if check_replicas and comm.size > 1:
        trainer.checksums = replicas.Checksums(trainer.model, comm, check_replicas)


def _prepare(experiment, callbacks):
    """The splits, read (a built-in dataset fetched on first use) and checked; the preprocessing
    fitted on the training split; the parameters created."""
    from dltrain.data import download

    with download.reporting(_download_progress(callbacks)):
        splits = experiment.load_data()
    experiment.fit_pipeline(splits["train"])
    from dltrain.feasibility import check_experiment

    check_experiment(experiment)            # before allocating: memory, labels vs the last layer
    experiment.build()
    _check_labels(experiment, splits)
    return splits


def _trainer(experiment, writer, callbacks, resolved, comm, signals=None):
    """The trainer of an experiment: the config's callbacks (saved in checkpoints), then the
    caller's; every setting read from the resolved config (its defaults: config/resolve.py)."""
    training = experiment.training
    meta = {"config": resolved, "class_names": experiment.class_names,
            "source_state": getattr(experiment.sources["train"], "fitted", None),
            "input_shape": list(experiment.model.input_shape), "metrics": experiment.metric_names()}
    return Trainer(
        experiment.model, experiment.loss, experiment.optimizer, experiment.metrics,
        experiment.pipeline, experiment.streams, epochs=training["epochs"],
        batch_size=training["batch_size"], shuffle=training["shuffle"],
        callbacks=[*experiment.callbacks.values(), *callbacks], saved=experiment.callbacks,
        writer=writer, meta=meta, target_fn=experiment.target_fn(),
        class_weight=experiment.class_weights(), divergence_factor=training.get("divergence_factor"),
        comm=comm, signals=signals)


def _download_progress(callbacks):
    """``progress(file, done, total)`` passed to each callback's ``on_download``, or None."""
    hooks = [c.on_download for c in callbacks if hasattr(c, "on_download")]
    if not hooks:
        return None

    def progress(file, done, total):
        for hook in hooks:
            hook(file, done, total)
    return progress


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
        record_check.check(self.meta, self.path, checkpoint.FORMAT_VERSION, record_check.RUN)
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
        """A trainer that scores this run (it writes nothing)."""
        e = self.experiment
        return Trainer(self.model, e.loss, e.optimizer, e.metrics, e.pipeline, e.streams,
                       batch_size=e.training["batch_size"], target_fn=e.target_fn())


def evaluate(run, which="best", data=None, device=None):
    """{metric: value} of a run on its config's test split, or on ``data`` (a file or a spec)."""
    from dltrain.data import kfold

    if kfold.fold_runs(run):                            # a k-fold run: every fold, and the ensemble
        return kfold.evaluate_folds(run, which, data, LoadedRun)
    loaded = LoadedRun(run, which)
    experiment = loaded.experiment
    device = devices.choose(device, experiment.config.get("device"))
    if data is not None:
        split = prediction_inputs.evaluation_split(data, experiment)
    else:
        if experiment.sources.get("test") is None:
            raise ConfigError(f"the config of {loaded.run_dir} has no test split",
                              fix="pass --data FILE, or add `test: {split: 0.2}` under data.")
        split = experiment.load_data()["test"]
    _check_labels(experiment, {"test": split})
    return prediction_inputs.scores(devices.place(loaded.trainer(), device).evaluate(split), loaded.path,
                                    loaded.meta)


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

    def capped_top_k(self, k):
        """(k to use, a note or None): --top-k capped at the classes; refused for a regression."""
        return prediction_inputs.cap_top_k(k, self)

    def write_csv(self, stream, top_k=None):
        """The prediction table as CSV on a text stream, column by column (no dict per row)."""
        from dltrain.data import prediction_output

        prediction_output.write_csv(stream, self, top_k)

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


def predict(run, files, which="best", device=None):
    """The model's outputs for every sample of every file, with the saved preprocessing applied."""
    from dltrain.data.sources import for_file

    loaded = LoadedRun(run, which)
    experiment, model = loaded.experiment, loaded.model
    xp = devices.device_module(devices.choose(device, experiment.config.get("device")))
    devices.move_model(model, xp)
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
        outputs.append(devices.predict(model, x, experiment.training["batch_size"] * 8, xp))
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
                json.dump(prediction_inputs.strict(predictions.records(top_k)), f, indent=1, allow_nan=False)
            else:                                   # column by column: no dict per row
                prediction_output.write_csv(f, predictions, top_k)
    except CheckpointError as error:
        raise CheckpointError(f"cannot write predictions to {output}: {error.message}") from None
    return output


# -- the other commands: each returns what its command renders ----------------------------------

def check(config, overrides=()):
    """Validate a config and infer every shape, reading no data and training nothing.

    Returns the model's ``summary.Summary``; raises ConfigError (every problem found) otherwise."""
    from dltrain.config.validate import validate
    from dltrain.feasibility import check_config
    from dltrain.summary import summarize

    checked = validate(config, overrides, files=True)
    check_config(checked)                   # memory this machine lacks, labels vs the last layer
    return summarize(checked)


def summary(target, overrides=(), passes=False):
    """The per-layer ``summary.Summary`` of a config, a run directory or a checkpoint file, as
    the user wrote the model; with ``passes``, also what each graph pass rewrote."""
    from dltrain.config.validate import validate
    from dltrain.summary import config_of, summarize

    return summarize(validate(config_of(target), overrides, files=False), passes=passes)


def catalogue(kind=None):
    """{kind: [Entry]} of the registry: every kind, or the one a word names ('layers', 'layer')."""
    from dltrain.config import catalogue_text

    return {k: catalogue_text.entries(k) for k in catalogue_text.kinds_of(kind)}


def describe(name, kind=None):
    """The ``Entry`` of one registered class (with its whole docstring), by name or alias."""
    from dltrain.config import catalogue_text

    return catalogue_text.find(catalogue_text.kinds_of(kind), name)


def schema():
    """The JSON Schema of a config, generated from the registry."""
    from dltrain.config.schema import config_schema

    return config_schema()


def inspect_data(config, overrides=()):
    """Per split of a config's data: samples, shapes, dtypes, class balance, ranges, NaN/Inf."""
    from dltrain.data.inspect import inspect

    return inspect(config, overrides)


def datasets():
    """The built-in datasets: {'datasets': [one dict each], 'cache': folder, 'note': text}."""
    from dltrain.data import datasets as builtin, download

    return {"datasets": builtin.listing(), "cache": str(download.cache_dir()),
            "note": builtin.environment_note()}


def download_dataset(name, mirror=None, progress=None):
    """Fetch every file of a built-in dataset into the cache and verify it: the files' paths.

    ``progress(file, done, total)`` is called as bytes arrive."""
    from dltrain.data import datasets as builtin

    data = builtin.info(name)
    return [path for split in data.splits for path in builtin.files(name, split, mirror, progress)]


def gradcheck(config, overrides=(), batch_size=4, elements=30):
    """[model_gradcheck.LayerCheck]: each parameter's gradient against central differences (float64)."""
    from dltrain.config.validate import validate
    from dltrain.model_gradcheck import check_model

    return check_model(validate(config, overrides, files=False), batch_size, elements)


@dataclass
class LayerTimes:
    batch_size: int
    iterations: int
    rows: list                                 # [timing.LayerTime], one per node


def time_layers(config, overrides=(), batch_size=None, iterations=10, device=None):
    """Median forward and backward milliseconds per layer on one random batch (reads no data),
    on ``device`` (default: the config's, else cpu)."""
    from dltrain.timing import time_layers as timed

    _tune_allocator()                   # as `fit` does: without it every large array page-faults
    experiment = Experiment(config, overrides)
    device = devices.choose(device, experiment.config.get("device"), experiment.document.where(("device",)))
    model = experiment.build()
    batch_size = batch_size or experiment.training["batch_size"]
    return LayerTimes(batch_size, iterations, timed(model, batch_size, iterations, device=device))


def plot(runs, output=None, terminal=False):
    """Learning curves of runs: (path of the image written, None), or (None, text) without
    matplotlib or with ``terminal``."""
    from dltrain.plot import plot as draw

    return draw(runs, output, terminal)


# -- sweeps and runs on disk (dltrain.sweep, dltrain.runs) ------------------------------------------

def sweep_check(sweep_file):
    """The checked sweep.spec.Sweep of a sweep file; ConfigErrors listing every problem."""
    from dltrain.sweep import spec

    return spec.load(sweep_file)


def sweep(sweep_file, sweep_dir=None, allow_change=False, on_event=None):
    """Run (or continue) a sweep; returns (report.Report, files written: table, JSON, plots).
    ``on_event(kind, job, record)`` hears of each job ("start", "result", "cached")."""
    from dltrain.sweep import runner, spec

    loaded = spec.load(sweep_file)
    folder = Path(sweep_dir) if sweep_dir else loaded.default_dir
    runner.Runner(loaded, folder, allow_change, on_event=on_event).run()
    return sweep_report(folder)


def sweep_report(sweep_dir, write=True):
    """(report.Report, files written): DIR/report/trials.csv, trials.json and, with matplotlib,
    one effect plot per parameter and a parallel-coordinates plot."""
    from dltrain.plot import have_matplotlib
    from dltrain.sweep import report

    loaded = report.load(sweep_dir)
    if not write:
        return loaded, []
    folder = loaded.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written = [loaded.write_csv(folder / "trials.csv"), loaded.write_json(folder / "trials.json")]
    if have_matplotlib() and loaded.best is not None:
        from dltrain.sweep import plots

        written += plots.effects(loaded, folder) + [plots.parallel_coordinates(loaded, folder)]
    return loaded, written


def sweep_refit_plan(sweep_dir):
    """(base config, overrides, run directory) that train the sweep's best values on train +
    validation (see sweep.report.refit_plan)."""
    from dltrain.sweep import report

    return report.refit_plan(report.load(sweep_dir))


def runs(folder="runs"):
    """[runs.Run] of every run directory under ``folder``."""
    from dltrain import runs as on_disk

    return on_disk.list_runs(folder)


def compare_runs(paths):
    """runs.Comparison: the config differences and final metrics of two runs or more."""
    from dltrain import runs as on_disk

    return on_disk.compare(paths)

# -- data parallelism (dltrain/parallel/) -----------------------------------------------------------

def launched():
    """Whether this process is one rank of a job an MPI launcher started with 2+ ranks."""
    from dltrain.parallel.mpi import launched_size

    return launched_size() > 1


def world():
    """This process's communicator: MPI's world under a launcher, else one process."""
    from dltrain.parallel.mpi import world as mpi_world

    return mpi_world()


def launch_workers(workers, fit_params, debug=False):
    """Run ``dltrain fit`` with ``fit_params`` (a fit command's parsed options) on ``workers``
    local ranks; the job's exit code."""
    from dltrain.device import refuse_with_workers
    from dltrain.parallel import launch

    refuse_with_workers(fit_params.get("device"), workers)      # before any rank starts
    return launch.launch(workers, launch.fit_arguments(fit_params, debug=debug))


def job_rank():
    """(rank, size) of this process in a data-parallel job that has started, else (0, 1)."""
    from dltrain.parallel.mpi import rank_of_job

    return rank_of_job()


def end_job(code):
    """On one rank of several: end every rank now with exit ``code``; nothing on one process."""
    from dltrain.parallel.mpi import abort_job

    abort_job(code)
