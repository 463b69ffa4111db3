"""One training step, in stages; the trainer calls ``Step.run`` once per batch.

    x, y   = this process's share of the global batch        (the trainer: comm.share)
    out    = forward(x)                                       model, training mode
    loss   = loss_sum(out, y)                                 a sum and a count, never a mean
    check_loss(loss)                                          NaN, Inf or explosion: DivergedError
    backward(global count)                                    grads of sum / samples in the batch
    reduce_gradients(loss)                                    the communicator seam: nothing on one
                                                              process, one allreduce on several
    regularizer_gradients()                                   penalties, once, after the reduction
    update(pairs, clip(pairs))                                optimizer.clip, optimizer.update_all
    update_metrics(metrics, probabilities, y)                 states are sums and counts

Backward divides by the *global* batch's sample count, so the gradients of the shares sum to the
gradient of the batch's mean and one process computes exactly what it did with a mean loss.
"""
import numpy as np

from dltrain import regularizers
from dltrain.errors import DivergedError
from dltrain.parallel.buffer import GradientBuffer
from dltrain.parallel.communicator import SingleProcess
from dltrain.training import finite
from dltrain.training.class_weight import sample_weights


class Step:
    def __init__(self, model, loss, optimizer, comm=None, *, class_weight=None,
                 divergence_factor=None):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.comm = comm or SingleProcess()
        #: the loss reads the logits when it fuses with the model's final activation
        self.fused = not getattr(loss, "from_logits", False) and loss.fuses is not None \
            and loss.fuses == model.final_activation
        self.class_weight = class_weight        # (classes,) loss weight per class, or None
        self.divergence_factor = divergence_factor
        self.first_loss = None                  # the first batch's loss (saved: resume keeps the limit)
        self.regularized = regularizers.terms(model)
        self.buffer = None                      # the flat gradient buffer, on several processes

    def run(self, x, y, count, metrics, epoch, batch):
        """One step on (x, y), this process's share of a global batch of ``count`` samples.
        Returns the global batch's mean loss plus the penalties, a float."""
        out = self.forward(x)
        loss = self.loss_sum(out, y)
        self.check_loss(float(loss.mean), x, epoch, batch)
        self.backward(count)
        mean = self.reduce_gradients(loss)
        mean += self.regularizer_gradients()
        pairs = list(self.model.parameters())
        self.update(pairs, self.clip(pairs))
        self.update_metrics(metrics, out if loss.probabilities is None else loss.probabilities, y)
        return mean

    # -- the stages ----------------------------------------------------------------------------

    def forward(self, x):
        return self.model.forward(x, training=True, logits=self.fused)

    def loss_sum(self, out, y):
        weights = None if self.class_weight is None else sample_weights(self.class_weight, y)
        return self.loss.sum(out, y, weights, logits=self.fused)

    def check_loss(self, value, x, epoch, batch):
        """DivergedError for a non-finite loss, or one above divergence_factor times the first
        batch's; on several processes every rank stops when one does."""
        is_finite = bool(np.isfinite(value))
        if is_finite and self.first_loss is None:
            self.first_loss = value
        limit = (self.divergence_factor * max(self.first_loss, 1.0)
                 if is_finite and self.divergence_factor else None)
        bad = not is_finite or (limit is not None and value > limit)
        if self.comm.size > 1 and self.comm.any(bad) and not bad:
            raise DivergedError(f"the training loss diverged on another process at epoch {epoch}, "
                                f"batch {batch + 1}", fix=finite.FIX)
        if not is_finite:
            raise finite.loss_diverged(self.model, x, value, epoch, batch + 1)
        if bad:
            raise finite.loss_exploded(self.model, x, value, limit, self.first_loss, epoch, batch + 1)

    def backward(self, count):
        self.model.backward(self.loss.backward(count), logits=self.fused, input_grad=False)

    def reduce_gradients(self, loss):
        """Sum the gradients, the loss sum and the count over every process (one allreduce of
        one flat buffer); the global batch's mean loss. One process: nothing to do."""
        if self.comm.size == 1:
            return float(loss.mean)
        pairs = [(node.layer, key) for node in self.model.graph for key in node.layer.params]
        if self.buffer is None:
            self.buffer = GradientBuffer(self.model.parameters())
        self.buffer.pack([layer.grads[key] for layer, key in pairs], loss.total, loss.count)
        self.comm.allreduce_sum(self.buffer.flat)
        views, total, count = self.buffer.unpack()
        for (layer, key), view in zip(pairs, views):
            layer.grads[key] = view
        return float(total) / count

    def regularizer_gradients(self):
        """Add each penalty's gradient to its parameter's; the total penalty (0.0 without any)."""
        return regularizers.apply(self.regularized) if self.regularized else 0.0

    def clip(self, pairs):
        return self.optimizer.clip([grad for _, _, grad in pairs])

    def update(self, pairs, grads):
        self.optimizer.update_all(pairs, grads)

    @staticmethod
    def update_metrics(metrics, probabilities, y):
        for metric in metrics.values():
            metric.update(probabilities, y)
