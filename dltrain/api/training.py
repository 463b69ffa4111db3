"""fit: train the model a config describes and write its run directory (api.fit and helpers)."""
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import dltrain.catalogue  # noqa: F401  (every kind can be built by name from here)
from dltrain import device as devices
from dltrain.allocator import tune as _tune_allocator
from dltrain.config.resolve import dump
from dltrain.data import prediction_inputs
from dltrain.errors import Interrupted
from dltrain.experiment import Experiment, relative_paths
from dltrain.parallel import shards
from dltrain.parallel.communicator import SingleProcess
from dltrain.training import rundir
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
    devices.use_rank_gpu(device, comm)                   # several ranks on cuda: one GPU each
    caught = signals.Signals()
    with caught:                            # a signal while the data loads: handled at the first batch
        splits = _prepare(experiment, callbacks)
    splits = shards.spread_all(splits, comm)     # each rank 1/N of the rows
    _tune_allocator()       # now, not before the data loads: what loading freed goes back to the system
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
            if not resumed:
                from dltrain.export import init_from

                init_from.apply(experiment)         # model.init_from: weights trained elsewhere
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
