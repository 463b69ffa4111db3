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
        self.signalled_processes = 0            # after a step on several: how many were signalled

    def run(self, x, y, count, metrics, epoch, batch, signalled=False):
        """One step on (x, y), this process's share of a global batch of ``count`` samples.
        Returns the global batch's mean loss plus the penalties, a float. ``signalled``: this
        process received SIGINT/SIGTERM (on several processes it rides in the step's allreduce;
        ``signalled_processes`` then counts the processes that did)."""
        out = self.forward(x)
        loss = self.loss_sum(out, y)
        # the step's one read back (a sync on a device); a process whose share of a small last
        # batch is empty has no loss of its own to check
        value = float(loss.mean) if loss.count else 0.0
        problem = self.check_loss(value, x, epoch, batch)
        if problem is not None and self.comm.size == 1:
            raise problem
        self.backward(count)
        if self.comm.size == 1:
            mean = value
        else:
            mean = self.reduce_gradients(loss, problem is not None, signalled)
            self.stop_together(problem, epoch, batch)
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
        """The DivergedError of a non-finite loss, or of one above divergence_factor times the
        first batch's; None for a good loss. The caller raises it: at once on one process, after
        the step's allreduce on several, so that every rank stops at the same step."""
        is_finite = bool(np.isfinite(value))
        if is_finite and self.first_loss is None:
            self.first_loss = value
        limit = (self.divergence_factor * max(self.first_loss, 1.0)
                 if is_finite and self.divergence_factor else None)
        if not is_finite:
            return finite.loss_diverged(self.model, x, value, epoch, batch + 1)
        if limit is not None and value > limit:
            return finite.loss_exploded(self.model, x, value, limit, self.first_loss, epoch, batch + 1)
        return None

    def stop_together(self, problem, epoch, batch):
        """On several processes: raise this process's problem, or the news of another's."""
        diverged, self.signalled_processes = self.buffer.flags()
        if problem is not None:
            raise problem
        if diverged:
            raise DivergedError(f"the training loss diverged on another process at epoch {epoch}, "
                                f"batch {batch + 1}", fix=finite.FIX)

    def backward(self, count):
        self.model.backward(self.loss.backward(count), logits=self.fused, input_grad=False)

    def reduce_gradients(self, loss, diverged=False, signalled=False):
        """Sum the gradients, the loss sum and the count, and the two flags, over every process
        (one allreduce of one flat buffer); the global batch's mean loss. Only on several
        processes: one has nothing to reduce."""
        pairs = [(node.layer, key) for node in self.model.graph if node.layer.trainable   # as parameters()
                 for key in node.layer.params]
        if self.buffer is None:
            self.buffer = GradientBuffer(self.model.parameters())
        self.buffer.pack([layer.grads[key] for layer, key in pairs], loss.total, loss.count,
                         diverged, signalled)
        self.buffer.reduce(self.comm)           # one allreduce (on a device: through the host)
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
