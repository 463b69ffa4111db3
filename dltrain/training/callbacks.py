"""Callbacks with Keras's hook names; the trainer calls each hook on every callback in order.

A callback sees the trainer as ``self.trainer`` (model, optimizer, history, ``stop_training``).
State that must survive a resume goes in ``state_dict()`` / ``load_state_dict()``.
"""
import math

import numpy as np

from dltrain import check
from dltrain.registry import register


class Callback:
    kind = "callback"
    trainer = None

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        for key, value in state.items():
            setattr(self, key, value)

    #: logged names this callback reads (checked against what the run will produce)
    def monitored(self):
        return [self.monitor] if getattr(self, "monitor", None) else []


class Monitor:
    """Tracks the best value of one logged quantity (``mode`` min, max or auto)."""

    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor = monitor
        self.mode = check.one_of("mode", mode, ("auto", "min", "max"))
        self.min_delta = abs(min_delta)
        self.best = None

    @property
    def direction(self):
        if self.mode != "auto":
            return self.mode
        name = self.monitor.removeprefix("val_")
        if name in ("loss",):
            return "min"
        from dltrain.registry import registry

        metrics = registry("metric")
        if name in metrics:
            return metrics.get(name).direction
        return "min"

    def improved(self, value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.best is None:
            return True
        if self.direction == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


@register("early_stopping")
class EarlyStopping(Callback):
    """Stops training when `monitor` has not improved for `patience` epochs.

    Args:
        monitor: the logged quantity to watch, e.g. val_loss or val_accuracy.
        patience: epochs without improvement before stopping, >= 0.
        min_delta: smallest change that counts as an improvement.
        mode: min, max, or auto (from the quantity's name).
        restore_best_weights: put back the weights of the best epoch when training stops.
        start_from_epoch: epochs to wait before watching.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=True, start_from_epoch=0):
        self.monitor = monitor
        self.patience = check.non_negative_int("patience", patience)
        self.min_delta = check.non_negative("min_delta", min_delta)
        self.mode = mode
        self.restore_best_weights = check.boolean("restore_best_weights", restore_best_weights)
        self.start_from_epoch = check.non_negative_int("start_from_epoch", start_from_epoch)
        self._monitor = Monitor(monitor, mode, min_delta)
        self.wait = 0
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        value = logs.get(self.monitor)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            self.trainer.model.load_state_dict(self.best_weights)
            self.trainer.restored_epoch = self.best_epoch

    def state_dict(self):
        return {"wait": self.wait, "best": self._monitor.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state):
        self.wait = state["wait"]
        self._monitor.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]


@register("model_checkpoint")
class ModelCheckpoint(Callback):
    """Saves checkpoints/best.npz whenever `monitor` improves (last.npz is always written).

    Args:
        monitor: the logged quantity that decides which epoch is best.
        mode: min, max, or auto (from the quantity's name).
        save_best_only: only keep the best checkpoint (otherwise also epoch_NNN.npz).
    """

    def __init__(self, monitor="val_loss", mode="auto", save_best_only=True):
        self.monitor = monitor
        self.mode = mode
        self.save_best_only = check.boolean("save_best_only", save_best_only)
        self._monitor = Monitor(monitor, mode)
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = logs.get(self.monitor)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.trainer.save_checkpoint("best.npz", epoch)
        if not self.save_best_only:
            self.trainer.save_checkpoint(f"epoch_{epoch:03d}.npz", epoch)

    def state_dict(self):
        return {"best": self._monitor.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self._monitor.best = state["best"]
        self.best_epoch = state["best_epoch"]


@register("terminate_on_nan")
class TerminateOnNaN(Callback):
    """Stops training at the first batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        if not np.isfinite(logs.get("loss", 0.0)):
            self.trainer.stop_training = True
