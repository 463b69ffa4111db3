"""Losses: ``sum(pred, target) -> LossSum(total, count, probabilities)`` and ``backward(count)``.

A loss reports the *sum* of its per-sample values and how many samples it summed, never a mean,
so the sums of several processes (or of the halves of one batch) add up to the sum of the whole
batch; ``backward(count)`` returns the gradient of ``total / count``, with ``count`` the number of
samples in the *global* batch (the training step passes it), so summing the gradients of every
share gives the gradient of the batch's mean. ``forward(pred, target) -> mean`` and
``backward()`` (count: this batch's) are the same computation for one batch.

Cross-entropies take ``from_logits``. When the model ends in the activation a cross-entropy
expects (softmax for categorical, sigmoid for binary) the trainer hands the loss the logits
instead (``fuses``): log-softmax / log-sigmoid are then computed stably and the gradient is the
short ``p - y`` rather than a chain through the activation's Jacobian. The probabilities the loss
computed on the way are returned in ``LossSum.probabilities`` (what metrics read).

The package: base.py (Loss, LossSum, the shared helpers), regression.py (mse, mae, huber),
crossentropy.py (binary, categorical, sparse categorical).
"""


from dltrain.losses import crossentropy, regression  # noqa: F401  (each @register runs)
from dltrain.losses.base import Loss, LossSum  # noqa: F401
from dltrain.losses.crossentropy import (EPSILON, BinaryCrossentropy, CategoricalCrossentropy,  # noqa: F401
                                         CrossEntropy, SparseCategoricalCrossentropy)
from dltrain.losses.regression import Huber, MeanAbsoluteError, MeanSquaredError  # noqa: F401
