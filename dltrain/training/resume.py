"""`dltrain fit --resume auto|PATH`: continue a run exactly where its last checkpoint stopped.

A checkpoint holds every piece of state the loop has: parameters and layer state, optimizer slots
and step count (which is also the schedule's step), preprocessing statistics, every random
stream, epoch, step, callback state (arrays too, e.g. early stopping's best weights), the metric
history, and mid-epoch the batch position with the epoch's running sums (training/position.py).
Restoring all of it makes the resumed run's weights and metrics.csv equal an uninterrupted run's.

``last.npz`` is written atomically; the one before it is kept as ``previous.npz`` (a hard link,
so there is no moment without a last.npz; training/writer.py), and ``--resume auto`` falls back to
it with a warning when last.npz is damaged. Callback state is matched by the callback's name.
"""
import warnings
from pathlib import Path

from dltrain.errors import CheckpointError, ConfigError
from dltrain.training import checkpoint, record_check
from dltrain.training.writer import CHECKPOINTS, PREVIOUS

ABSENT = "<absent>"
#: settings a resumed run may change without --allow-config-change (extending a run is the point)
MAY_CHANGE = (("training", "epochs"),)


class ResumeWarning(UserWarning):
    """A resume went ahead with a fallback (a damaged last.npz); cli.py shows it as a warning."""


def run_of(path):
    """The run directory of a run directory, a checkpoint file in one, or its config.yaml."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--resume {str(path)!r} does not exist",
                          fix="give a run directory (runs/NAME), a checkpoint in one, or `auto`.")
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def config_of(path):
    """The config.yaml of the run that ``path`` names (resuming from a run needs nothing else)."""
    config = run_of(path) / "config.yaml"
    if not config.exists():
        raise ConfigError(f"{str(run_of(path))!r} has no config.yaml, so it is not a dltrain run",
                          fix="give the config as well: dltrain fit CONFIG --resume PATH.")
    return config


def find(run_dir, resume):
    """(path, arrays, meta) of the checkpoint to resume from; None when `auto` finds none.

    `auto` tries last.npz, then previous.npz (with a ResumeWarning naming what was wrong);
    an explicit checkpoint file must load or it is an error.
    """
    run_dir = Path(run_dir)
    if resume not in ("auto", None) and Path(resume).is_file():
        arrays, meta = checkpoint.load(resume)
        record_check.check(meta, resume, checkpoint.FORMAT_VERSION, record_check.RESUME)
        return Path(resume), arrays, meta
    folder = run_dir / CHECKPOINTS
    candidates = [folder / "last.npz", folder / PREVIOUS]
    if not any(c.exists() for c in candidates):
        if resume == "auto":
            return None
        raise CheckpointError(f"run {str(run_dir)!r} has no checkpoint to resume from",
                              fix="start it again without --resume (with --overwrite).")
    problems = []
    for path in candidates:
        if not path.exists():
            problems.append(f"{path} is missing")
            continue
        try:
            arrays, meta = checkpoint.load(path)
            record_check.check(meta, path, checkpoint.FORMAT_VERSION, record_check.RESUME)  # every key
        except CheckpointError as error:
            problems.append(error.message)
            continue
        if problems:
            warnings.warn(f"{'; '.join(problems)}; resuming from {path} "
                          f"(epoch {meta.get('epoch')}) instead", ResumeWarning, stacklevel=2)
        return path, arrays, meta
    raise CheckpointError("no usable checkpoint to resume from: " + "; ".join(problems),
                          fix="start the run again without --resume (with --overwrite).")


def config_changes(old, new, path=()):
    """'key: old -> new' for every setting that differs between two resolved configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in list(old) + [k for k in new if k not in old]:
            lines += config_changes(old.get(key, ABSENT), new.get(key, ABSENT), path + (key,))
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new)) for line in config_changes(a, b, path + (i,))]
    if old == new or path in MAY_CHANGE:
        return []
    from dltrain.config.loader import format_path

    shown = ["(not set)" if v == ABSENT else repr(v) for v in (old, new)]
    return [f"{format_path(path)}: {shown[0]} -> {shown[1]}"]


def check_config(old, new, allow_change):
    """Refuse a resume whose config differs from the run's, unless ``allow_change``."""
    changes = config_changes(old, new)
    if changes and not allow_change:
        raise ConfigError("the config differs from the run being resumed:\n    " + "\n    ".join(changes),
                          fix="resume with the run's own config (dltrain fit --resume RUN), or pass "
                              "--allow-config-change to continue with the new one anyway.")
    return changes


def restore(trainer, arrays, meta):
    """Put a checkpoint's state into a trainer: each saved callback's by its name (a checkpoint
    written before names were saved: by position)."""
    section = checkpoint.section
    try:
        trainer.model.load_state_dict(section(arrays, "model"))
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"the checkpoint does not fit the model of the config: {error}",
                              fix="resume with the run's own model settings.") from None
    trainer.optimizer.load_state_dict(section(arrays, "optimizer"))
    trainer.pipeline.load_state_dict(section(arrays, "preprocessing"))
    trainer.streams.load_state(meta["random"])
    states = meta["callbacks"]
    names = meta.get("callback_names") or list(trainer.saved)[:len(states)]
    for i, name in enumerate(names):
        callback = trainer.saved.get(name)
        if callback is not None:
            callback.load_state_dict(states[i])
            callback.load_state_arrays(section(arrays, f"callbacks/{i}"))
    trainer.restore_progress(meta["epoch"], meta["step"], meta["history"], meta.get("position"),
                             meta.get("first_loss"))


def finished(meta, resolved):
    """Why a checkpoint's run has nothing left to train ('stopped early at epoch 7', 'finished
    its 30 epochs'), or None. An early stop is final: resuming does not train past it."""
    for state in meta.get("callbacks") or []:
        if isinstance(state, dict) and state.get("stopped_epoch"):
            return f"it stopped early at epoch {state['stopped_epoch']}"
    epochs = ((resolved or {}).get("training") or {}).get("epochs")
    if isinstance(epochs, int) and meta.get("epoch", 0) >= epochs and not meta.get("position"):
        return f"it finished its {epochs} epochs"
    return None


def start(writer, resume, overwrite, resolved, allow_change):
    """Open the run directory for `fit`: the checkpoint to resume from, or None for a fresh run.

    A fresh run (no --resume, or `auto` with no checkpoint yet) gets a prepared, empty directory;
    a resumed one is checked writable, cleaned of stale temporaries and its config compared.
    """
    found = None if resume is None else find(writer.path, resume)
    if found is None:
        writer.create(overwrite or resume == "auto")
        return None
    check_config(found[2]["config"], resolved, allow_change)
    writer.reopen()
    return found
