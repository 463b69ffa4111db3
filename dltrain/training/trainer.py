"""The training loop: epochs of steps (training/step.py), evaluation, callbacks, checkpoints.

The trainer strings the stages together and owns what lies around them: the batch order (from
(seed, epoch), so a resumed run sees the same batches), this process's share of each batch, the
order of the callbacks' hooks, the control object they act through (training/control.py), the
epoch's running sums, and what goes into a checkpoint. Every file goes through ``writer``
(training/writer.py); without one nothing is written.
"""
import time

import numpy as np

from dltrain import device as devices
from dltrain.backend import to_host
from dltrain.errors import Interrupted
from dltrain.metrics import metric_name
from dltrain.parallel import replicas
from dltrain.parallel.communicator import SingleProcess
from dltrain.registry import build
from dltrain.training import position
from dltrain.training.control import Control
from dltrain.training.step import Step
from dltrain.training.writer import NullWriter


class Trainer:
    def __init__(self, model, loss, optimizer, metrics, pipeline, streams, *, epochs=None,
                 batch_size, shuffle=True, callbacks=(), saved=None, writer=None, meta=None,
                 target_fn=None, class_weight=None, divergence_factor=None, comm=None, signals=None):
        """``metrics``: {name: Metric} (or a list of specs); ``callbacks``: every callback in hook
        order; ``saved``: {name: callback} of those whose state a checkpoint keeps (the config's)."""
        self.model = model
        self.optimizer = optimizer
        self.metrics = metrics if isinstance(metrics, dict) else \
            {metric_name(spec): build("metric", spec) for spec in metrics}
        self.pipeline = pipeline
        self.streams = streams
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.comm = comm or SingleProcess()
        self.writer = writer or NullWriter(".")
        self.meta = meta or {}
        self.target_fn = target_fn or (lambda y: y)
        self.signals = signals            # training/signals.py: SIGINT/SIGTERM received, or None
        self.step_stages = Step(model, loss, optimizer, self.comm, class_weight=class_weight,
                                divergence_factor=divergence_factor)
        self.callbacks = list(callbacks)
        self.saved = dict(saved or {})
        self.control = Control(model, optimizer, self.save_checkpoint,
                               saves_best=any(getattr(c, "saves_best", False) for c in self.callbacks))
        for callback in self.callbacks:
            callback.control = self.control
        self.history = []
        self.epoch = 0               # epochs completed
        self.step = 0                # batches completed in all
        self.position = None         # (epoch, batches done, loss total, seen, metrics) in an epoch
        self.resume_position = None  # a saved position record to continue from (mid-epoch resume)
        self.epoch_lr = None         # the rate logged for the current epoch (at its start)
        self._random_layers = replicas.random_layers(model)
        self.checksums = None        # parallel/replicas.Checksums under --debug on several processes
        self.to_device = lambda x, y: (x, y)   # each batch's move to the device (dltrain/device.py)

    @property
    def loss(self):
        return self.step_stages.loss

    @property
    def restored_epoch(self):
        return self.control.restored_epoch

    def metric_names(self):
        return list(self.metrics)

    def _hook(self, name, *args):
        for callback in self.callbacks:
            getattr(callback, name)(*args)

    def _batch(self, split, positions, rng=None):
        """This process's share of the batch at ``positions`` (global), preprocessed, on the
        device (a split spread over the ranks gathers it with the others: parallel/shards.py)."""
        x, y = split.take_share(positions, self.comm)
        return self.to_device(self.pipeline.transform(x, rng).astype(self.model.dtype, copy=False),
                              self.target_fn(y))

    def _augmentation_rng(self, epoch, batch):
        """The augmentation stream of one training batch: fixed by (seed, epoch, batch), so a
        resumed run augments exactly as an uninterrupted one; None when nothing augments. Under
        data parallelism each rank's share has a stream of its own, derived from the rank too."""
        if not self.pipeline.augments:
            return None
        rank = f"/rank{self.comm.rank}" if self.comm.size > 1 else ""
        return self.streams.for_epoch(f"augmentation/{batch}{rank}", epoch)

    def _results(self, total, seen):
        """The epoch's loss and metrics; on several processes the states are merged first."""
        if self.comm.size > 1:
            total, seen = self._merge(total, seen)
        return {"loss": total / max(seen, 1), **{k: m.result() for k, m in self.metrics.items()}}

    def _merge(self, total, seen):
        states = self.comm.allgather((total, seen, {k: m.state() for k, m in self.metrics.items()}))
        for name, metric in self.metrics.items():
            metric.reset()
            for _, _, state in states:
                metric.merge(state[name])
        return sum(s[0] for s in states), sum(s[1] for s in states)

    # -- one pass ------------------------------------------------------------------------------

    def train_epoch(self, train, epoch):
        n = len(train)
        order = (self.streams.for_epoch("shuffle", epoch).permutation(n) if self.shuffle
                 else np.arange(n))
        for metric in self.metrics.values():
            metric.reset()
        metrics, step = self.metrics, self.step_stages
        total, seen, first = 0.0, 0, 0
        if self.resume_position is not None:
            first, total, seen = position.restore(self.resume_position, epoch, metrics)
            replicas.restored_on_root(metrics, self.comm)     # merged states: counted once
            self.resume_position = None
        started = time.perf_counter()
        for batch, start in enumerate(range(first * self.batch_size, n, self.batch_size), first):
            self._hook("on_train_batch_begin", batch)
            positions = order[start:start + self.batch_size]
            share = self.comm.share(len(positions))
            if self.comm.size > 1:           # random layers draw for the global batch, keep `share`
                replicas.share_batch(self._random_layers, share, len(positions))
            x, y = self._batch(train, positions, self._augmentation_rng(epoch, batch))
            value = step.run(x, y, len(positions), metrics, epoch, batch, self._signalled())
            if self.checksums is not None:
                self.checksums.check(self.step + 1)
            total += value * len(positions)
            seen += len(positions)
            self.step += 1
            self.position = (epoch, batch + 1, total, seen, metrics)
            logs = devices.batch_logs(self, total / seen, metrics, seen, time.perf_counter() - started)
            self._hook("on_train_batch_end", batch, logs)
            self._check_signal(in_step=True)
            if self.control.stop_requested:
                break
        self.position = None
        return self._results(total, seen)

    def evaluate(self, split, batch_size=None):
        """Loss and metrics over a split, in inference mode."""
        batch_size = batch_size or max(self.batch_size, 256)
        for metric in self.metrics.values():
            metric.reset()
        loss, fused = self.step_stages.loss, self.step_stages.fused
        total, seen = 0.0, 0
        for start in range(0, len(split), batch_size):
            positions = np.arange(start, min(start + batch_size, len(split)))
            x, y = self._batch(split, positions)
            out = self.model.forward(x, training=False, logits=fused)
            value = loss.sum(out, y, logits=fused)
            # mean * count, not the sum: the float64 total of float32 means, as before the sums
            # (bit for bit the same val_loss); an empty share of a small last batch adds nothing
            total += float(value.mean) * value.count if value.count else 0.0
            seen += value.count
            Step.update_metrics(self.metrics, out if value.probabilities is None else value.probabilities, y)
        return self._results(total, seen)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, train, validation=None):
        logs = {"epochs": self.epochs, "steps": -(-len(train) // self.batch_size),
                "samples": len(train)}
        self._hook("on_train_begin", logs)
        while self.epoch < self.epochs and not self.control.stop_requested:
            epoch = self.epoch + 1
            self._hook("on_epoch_begin", epoch, {"lr": self.optimizer.current_learning_rate})
            self._check_signal()
            lr = self.epoch_lr = (self.optimizer.current_learning_rate if self.resume_position is None
                                  else self.resume_position["lr"])
            started = time.perf_counter()
            logs = self.train_epoch(train, epoch)
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(validation).items()})
            logs = {"epoch": epoch, **logs, "lr": lr, "seconds": time.perf_counter() - started}
            self.epoch = self.control.epoch = epoch
            self.history.append(logs)
            self._hook("on_epoch_end", epoch, logs)   # first, so last.npz holds their updated state
            self.writer.metrics(self.history)
            self.save_checkpoint("last", epoch)
        self._hook("on_train_end", {"history": self.history})
        return self.history

    def _signalled(self):
        return bool(self.signals is not None and self.signals.received)

    def _check_signal(self, in_step=False):
        """After a SIGINT or SIGTERM (on any process): checkpoint, then raise Interrupted. On
        several processes the decision is collective: after a step, from the count the step's
        allreduce carried (a signal that came later rides in the next step's); elsewhere, from
        a collective of its own."""
        received = self._signalled() and self.signals.received
        if self.comm.size > 1:
            anywhere = (self.step_stages.signalled_processes > 0 if in_step
                        else self.comm.any(self._signalled()))
            received = anywhere and (self.signals.received or "a signal on another process")
        if not received:
            return
        self.save_checkpoint("last", self.epoch)
        where = (f"in epoch {self.position[0]} after batch {self.position[1]}" if self.position
                 else f"after epoch {self.epoch}")
        run = self.writer.path
        raise Interrupted(f"{received} received: stopped {where}; the state is saved in "
                          f"{run}/checkpoints/last.npz",
                          fix=f"continue exactly where it stopped with: dltrain fit --resume {run}")

    # -- checkpoints ---------------------------------------------------------------------------

    def restore_progress(self, epoch, step, history, saved_position, first_loss):
        """Where a resumed run continues: after ``epoch`` (mid-epoch at ``saved_position``)."""
        self.epoch = self.control.epoch = epoch
        self.step = step
        self.history = history
        self.resume_position = saved_position
        self.step_stages.first_loss = first_loss

    def state_arrays(self):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()})
        arrays.update({f"preprocessing/{k}": v for k, v in self.pipeline.state_dict().items()})
        for i, callback in enumerate(self.saved.values()):
            arrays.update({f"callbacks/{i}/{k}": v for k, v in callback.state_arrays().items()})
        return arrays

    def state_meta(self, epoch, at=None):
        return {
            **self.meta,
            "epoch": epoch,
            "step": self.step,
            "random": self.streams.state(),
            "callbacks": [c.state_dict() for c in self.saved.values()],
            "callback_names": list(self.saved),
            "history": self.history,
            "position": position.record(self.position if at is None else at, self.epoch_lr),
            "first_loss": self.step_stages.first_loss,
        }

    def save_checkpoint(self, name, epoch, keep=None):
        """checkpoints/NAME.npz through the writer (``name`` with or without .npz)."""
        at = replicas.merged_position(self.position, self.comm)   # inside an epoch: every rank's metrics
        if self.writer.writes:
            arrays = {key: to_host(value) for key, value in self.state_arrays().items()}   # off the device
            self.writer.checkpoint(name.removesuffix(".npz"), arrays, self.state_meta(epoch, at), keep)

