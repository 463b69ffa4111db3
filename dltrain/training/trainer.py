"""The training loop: batches, forward, loss, backward, update, callbacks, checkpoints.

Batch order comes from (seed, epoch), so a resumed run sees the same batches. The loss reads the
logits when it fuses with the model's final activation (softmax or sigmoid + cross-entropy).
"""
import time
from pathlib import Path

import numpy as np

from dltrain import regularizers
from dltrain.backend import to_host
from dltrain.registry import build
from dltrain.training import checkpoint, finite, position, resume
from dltrain.training.class_weight import sample_weights


class Trainer:
    def __init__(self, model, loss, optimizer, metrics, pipeline, streams, *, epochs=10,
                 batch_size=32, shuffle=True, callbacks=(), run_dir=None, meta=None,
                 target_fn=None):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.metric_specs = list(metrics)
        self.pipeline = pipeline
        self.streams = streams
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.trainer = self
        self.run_dir = Path(run_dir) if run_dir else None
        self.meta = meta or {}
        self.target_fn = target_fn or (lambda y: y)
        self.fused = not getattr(loss, "from_logits", False) and loss.fuses is not None \
            and loss.fuses == model.final_activation
        # metrics read probabilities: the loss's own softmax/sigmoid when it reads logits
        self.metrics_read_loss = self.fused or getattr(loss, "from_logits", False)
        self.history = []
        self.epoch = 0               # epochs completed
        self.step = 0                # batches completed in all
        self.stop_training = False
        self.restored_epoch = None
        self.class_weight = None     # (classes,) loss weight per class, training/class_weight.py
        self.divergence_factor = None  # stop when a loss exceeds this times the first batch's
        self.first_loss = None       # the first training batch's loss (saved: resume keeps the limit)
        self.regularized = regularizers.terms(model) if model.built else []
        self.position = None         # (epoch, batches done, loss total, seen, metrics) in an epoch
        self.resume_position = None  # a saved position record to continue from (mid-epoch resume)
        self.epoch_lr = None         # the rate logged for the current epoch (at its start)
        self.to_device = lambda x, y: (x, y)   # each batch's move to the device (dltrain/device.py)

    # -- metrics -------------------------------------------------------------------------------

    def metric_names(self):
        return [metric_name(spec) for spec in self.metric_specs]

    def _new_metrics(self):
        return {metric_name(spec): build("metric", spec) for spec in self.metric_specs}

    def _batch(self, split, positions, rng=None):
        x, y = split.take(positions)
        return self.to_device(self.pipeline.transform(x, rng).astype(self.model.dtype, copy=False),
                              self.target_fn(y))

    def _augmentation_rng(self, epoch, batch):
        """The augmentation stream of one training batch: fixed by (seed, epoch, batch), so a
        resumed run augments exactly as an uninterrupted one; None when nothing augments."""
        return self.streams.for_epoch(f"augmentation/{batch}", epoch) if self.pipeline.augments else None

    # -- one pass ------------------------------------------------------------------------------

    def train_epoch(self, train, epoch):
        n = len(train)
        order = (self.streams.for_epoch("shuffle", epoch).permutation(n) if self.shuffle
                 else np.arange(n))
        metrics = self._new_metrics()
        total, seen, first = 0.0, 0, 0
        if self.resume_position is not None:
            first, total, seen = position.restore(self.resume_position, epoch, metrics)
            self.resume_position = None
        started = time.perf_counter()
        for batch, start in enumerate(range(first * self.batch_size, n, self.batch_size), first):
            for callback in self.callbacks:
                callback.on_train_batch_begin(batch)
            x, y = self._batch(train, order[start:start + self.batch_size],
                               self._augmentation_rng(epoch, batch))
            out = self.model.forward(x, training=True, logits=self.fused)
            weights = None if self.class_weight is None else sample_weights(self.class_weight, y)
            value = float(self.loss(out, y, weights, logits=self.fused))
            if not np.isfinite(value):
                raise finite.loss_diverged(self.model, x, value, epoch, batch + 1)
            if self.first_loss is None:
                self.first_loss = value
            if self.divergence_factor and value > self.divergence_factor * max(self.first_loss, 1.0):
                raise finite.loss_exploded(self.model, x, value, self.divergence_factor *
                                           max(self.first_loss, 1.0), self.first_loss, epoch, batch + 1)
            self.model.backward(self.loss.backward(), logits=self.fused, input_grad=False)
            if self.regularized:
                value += regularizers.apply(self.regularized)
            self.optimizer.apply(self.model.parameters())
            probabilities = self.loss._p if self.metrics_read_loss else out
            for metric in metrics.values():
                metric.update(probabilities, y)
            total += value * len(x)
            seen += len(x)
            self.step += 1
            self.position = (epoch, batch + 1, total, seen, metrics)
            logs = {"loss": total / seen, **{k: m.result() for k, m in metrics.items()},
                    "samples": seen, "seconds": time.perf_counter() - started}
            for callback in self.callbacks:
                callback.on_train_batch_end(batch, logs)
            if self.stop_training:
                break
        self.position = None
        return {"loss": total / max(seen, 1), **{k: m.result() for k, m in metrics.items()}}

    def evaluate(self, split, batch_size=None):
        """Loss and metrics over a split, in inference mode."""
        batch_size = batch_size or max(self.batch_size, 256)
        metrics = self._new_metrics()
        total, seen = 0.0, 0
        for start in range(0, len(split), batch_size):
            x, y = self._batch(split, np.arange(start, min(start + batch_size, len(split))))
            out = self.model.forward(x, training=False, logits=self.fused)
            total += float(self.loss(out, y, logits=self.fused)) * len(x)
            seen += len(x)
            probabilities = self.loss._p if self.metrics_read_loss else out
            for metric in metrics.values():
                metric.update(probabilities, y)
        return {"loss": total / max(seen, 1), **{k: m.result() for k, m in metrics.items()}}

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, train, validation=None):
        logs = {"epochs": self.epochs, "steps": -(-len(train) // self.batch_size),
                "samples": len(train)}
        for callback in self.callbacks:
            callback.on_train_begin(logs)
        while self.epoch < self.epochs and not self.stop_training:
            epoch = self.epoch + 1
            for callback in self.callbacks:
                callback.on_epoch_begin(epoch, {"lr": self.optimizer.current_learning_rate})
            lr = self.epoch_lr = (self.optimizer.current_learning_rate if self.resume_position is None
                                  else self.resume_position["lr"])
            started = time.perf_counter()
            logs = self.train_epoch(train, epoch)
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(validation).items()})
            logs = {"epoch": epoch, **logs, "lr": lr, "seconds": time.perf_counter() - started}
            self.epoch = epoch
            self.history.append(logs)
            for callback in self.callbacks:     # first, so last.npz holds their updated state
                callback.on_epoch_end(epoch, logs)
            if self.run_dir:
                self.save_checkpoint("last.npz", epoch)
        for callback in self.callbacks:
            callback.on_train_end({"history": self.history})
        return self.history

    # -- checkpoints ---------------------------------------------------------------------------

    def state_arrays(self):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()})
        arrays.update({f"preprocessing/{k}": v for k, v in self.pipeline.state_dict().items()})
        for i, callback in enumerate(self.callbacks):
            arrays.update({f"callbacks/{i}/{k}": v for k, v in callback.state_arrays().items()})
        return arrays

    def state_meta(self, epoch):
        return {
            **self.meta,
            "epoch": epoch,
            "step": self.step,
            "random": self.streams.state(),
            "callbacks": [c.state_dict() for c in self.callbacks],
            "history": self.history,
            "position": position.record(self),
            "first_loss": self.first_loss,
        }

    def save_checkpoint(self, filename, epoch):
        if self.run_dir is None:
            return
        folder = self.run_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {key: to_host(value) for key, value in self.state_arrays().items()}   # off the device
        finite.check_state(arrays, filename, epoch)
        if filename == "last.npz":
            resume.keep_previous(folder / filename)
        checkpoint.save(folder / filename, arrays, self.state_meta(epoch))


def metric_name(spec):
    if isinstance(spec, str):
        return spec
    return spec.get("name", spec.get("type"))
