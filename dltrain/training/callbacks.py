"""Callbacks with Keras's hook names; the trainer calls each hook on every callback in order.

A callback reads ``logs`` and acts through ``self.control`` (training/control.py: stop, the
learning rate, save a checkpoint, the model's weights); it never sees the trainer or the files.
State that must survive a resume goes in ``state_dict()`` / ``load_state_dict()`` (and arrays in
``state_arrays()``); a resume restores it by the callback's ``name`` (its type, numbered from
the second of a type on, as layers are), not by its position in the list.
"""
import math

import numpy as np

from dltrain import check
from dltrain.registry import register


class Callback:
    kind = "callback"
    control = None

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

    def state_arrays(self):
        """Arrays that must survive a resume (saved as ``callbacks/<index>/<key>``)."""
        return {}

    def load_state_arrays(self, arrays):
        pass

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
                self.best_weights = self.control.weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.control.stop()

    def on_train_end(self, logs=None):
        """Put back the best epoch's weights (stopped early or not) and save them as best.npz,
        unless a model_checkpoint callback decides what best.npz holds."""
        if not self.restore_best_weights or self.best_weights is None:
            return
        if self.best_epoch != self.control.epoch:
            self.control.restore_weights(self.best_weights, self.best_epoch)
        if not self.control.saves_best:
            self.control.save("best", self.best_epoch)

    def state_dict(self):
        return {"wait": self.wait, "best": self._monitor.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}

    def state_arrays(self):
        return dict(self.best_weights) if self.best_weights is not None else {}

    def load_state_arrays(self, arrays):
        self.best_weights = {k: v.copy() for k, v in arrays.items()} if arrays else None

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
        keep_last: how many epoch_NNN.npz to keep (the oldest are deleted); none keeps all.
        every_n_epochs: write epoch_NNN.npz every this many epochs, >= 1.
    """

    def __init__(self, monitor="val_loss", mode="auto", save_best_only=True, keep_last=None,
                 every_n_epochs=1):
        self.monitor = monitor
        self.mode = mode
        self.save_best_only = check.boolean("save_best_only", save_best_only)
        self.keep_last = None if keep_last is None else check.positive_int("keep_last", keep_last)
        self.every_n_epochs = check.positive_int("every_n_epochs", every_n_epochs)
        self._monitor = Monitor(monitor, mode)
        self.best_epoch = None

    #: this callback decides what best.npz holds (early stopping then saves none of its own)
    saves_best = True

    def on_epoch_end(self, epoch, logs=None):
        value = logs.get(self.monitor)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.control.save("best", epoch)
        if not self.save_best_only and epoch % self.every_n_epochs == 0:
            self.control.save(f"epoch_{epoch:03d}", epoch, keep=self.keep_last)

    def state_dict(self):
        return {"best": self._monitor.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self._monitor.best = state["best"]
        self.best_epoch = state["best_epoch"]


@register("reduce_lr_on_plateau")
class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by `factor` when `monitor` has not improved for `patience` epochs.

    Args:
        monitor: the logged quantity to watch.
        factor: the rate's multiplier, in (0, 1).
        patience: epochs without improvement before reducing, >= 0.
        mode: min, max, or auto (from the quantity's name).
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate is never reduced below this.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=0.0001,
                 cooldown=0, min_lr=0.0):
        self.monitor = monitor
        self.factor = check.fraction("factor", factor)
        if self.factor == 0:
            check.positive("factor", factor)
        self.patience = check.non_negative_int("patience", patience)
        self.mode = mode
        self.min_delta = check.non_negative("min_delta", min_delta)
        self.cooldown = check.non_negative_int("cooldown", cooldown)
        self.min_lr = check.non_negative("min_lr", min_lr)
        self._monitor = Monitor(monitor, mode, min_delta)
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        _needs_fixed_rate(self)

    def on_epoch_end(self, epoch, logs=None):
        control = self.control
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        value = logs.get(self.monitor)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and control.learning_rate > self.min_lr:
                control.set_learning_rate(max(control.learning_rate * self.factor, self.min_lr))
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def state_dict(self):
        return {"wait": self.wait, "best": self._monitor.best, "cooldown_counter": self.cooldown_counter,
                "learning_rate": self.control.learning_rate}

    def load_state_dict(self, state):
        self.wait = state["wait"]
        self._monitor.best = state["best"]
        self.cooldown_counter = state["cooldown_counter"]
        self.control.set_learning_rate(state["learning_rate"])


@register("learning_rate_scheduler")
class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to a schedule evaluated at the epoch.

    The schedule's step is the epoch index (0 for the first); a schedule given as the optimizer's
    learning_rate counts batches instead.

    Args:
        schedule: a schedule spec, e.g. {type: exponential_decay, initial_learning_rate: 0.01,
            decay_steps: 1, decay_rate: 0.9}.
    """

    def __init__(self, schedule):
        from dltrain.registry import build

        self.schedule = schedule
        self._schedule = build("schedule", schedule)

    def on_train_begin(self, logs=None):
        _needs_fixed_rate(self)

    def on_epoch_begin(self, epoch, logs=None):
        self.control.set_learning_rate(float(self._schedule(epoch - 1)))


def _needs_fixed_rate(callback):
    if callback.control.scheduled:
        from dltrain.errors import ConfigError

        raise ConfigError(f"{callback.registered_name} changes the learning rate, but the optimizer's "
                          "learning_rate is already a schedule",
                          fix="give the optimizer a number as learning_rate, or drop the callback.")


@register("terminate_on_nan")
class TerminateOnNaN(Callback):
    """Stops training at the first batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        if not np.isfinite(logs.get("loss", 0.0)):
            self.control.stop()
