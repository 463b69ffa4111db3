"""A trained run loaded back: the checkpoint a run argument names, and the model, preprocessing
and config restored from it (what evaluate, predict, export, ensemble and report start from)."""
from pathlib import Path

from dltrain.config.loader import parse
from dltrain.config.resolve import dump
from dltrain.data import prediction_inputs
from dltrain.errors import CheckpointError, ConfigError
from dltrain.experiment import Experiment
from dltrain.training import checkpoint, record_check
from dltrain.training.trainer import Trainer


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
