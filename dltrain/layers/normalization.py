"""Normalization layers: batch_normalization and layer_normalization (features on the last axis)."""
from dltrain import check
from dltrain.backend import array_module
from dltrain.layers.base import Layer
from dltrain.registry import register


def normalize_backward(grad_xhat, xhat, inv_std, axis):
    """d(loss)/dx for xhat = (x - mean(x)) * inv_std, where mean and variance are taken over ``axis``.

    With n elements in each group, g = d(loss)/d(xhat):
        dx = inv_std * (g - mean(g) - xhat * mean(g * xhat))
    The mean(g) term is the path through the mean; the xhat * mean(g * xhat) term is the path
    through the variance (d var / dx_i = 2 (x_i - mean) / n, and d inv_std / d var = -inv_std^3 / 2).
    """
    mean_g = grad_xhat.mean(axis=axis, keepdims=True)
    mean_gx = (grad_xhat * xhat).mean(axis=axis, keepdims=True)
    return inv_std * (grad_xhat - mean_g - xhat * mean_gx)


class _Normalization(Layer):
    def _affine_params(self, features, rng):
        if self.scale:
            self.add_weight("gamma", (features,), "ones", rng)
        if self.center:
            self.add_weight("beta", (features,), "zeros", rng)

    def _affine(self, xhat):
        y = xhat * self.params["gamma"] if self.scale else xhat.copy()
        if self.center:
            y += self.params["beta"]
        return y

    def _affine_backward(self, grad_y, sum_axes):
        if self.center and self.trainable:                # frozen: the input gradient only
            self.grads["beta"] = grad_y.sum(axis=sum_axes)
        if self.scale:
            if self.trainable:
                self.grads["gamma"] = (grad_y * self._xhat).sum(axis=sum_axes)
            return grad_y * self.params["gamma"]
        return grad_y


@register("batch_normalization")
class BatchNormalization(_Normalization):
    """Normalizes each feature (channel) over the batch: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    In training the mean and variance are the batch's, and the moving averages
    moving = momentum * moving + (1 - momentum) * batch are updated; in inference the moving
    averages are used. They are saved in checkpoints (``state``) but not trained.

    Args:
        momentum: weight of the old moving average per update, in [0, 1).
        epsilon: added to the variance before the square root.
        center: learn a shift beta.
        scale: learn a scale gamma.
        synchronized: under data parallelism, take the statistics over the global batch (all
            processes) rather than over each process's share.

    Under data parallelism (several processes, dltrain/parallel/) the statistics are, by
    default, the global batch's: the sums, sums of squares and counts are all-reduced, so every
    process holds the same moving averages and N processes compute what one process computes on
    the same global batch. (Keras's default is ``synchronized=False``; on one process the two
    are the same, under data parallelism per-process statistics make the replicas drift.)

    Shapes: (batch, ..., features) -> the same
    """

    inference_when_frozen = True       # frozen: the moving statistics, never updated (as Keras)
    examples = (({}, (4,)), ({"momentum": 0.9, "center": False}, (3, 3, 2)),
                ({"scale": False, "epsilon": 0.01}, (2, 3)))

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, synchronized=True):
        super().__init__()
        self.synchronized = check.boolean("synchronized", synchronized)
        self.momentum = check.fraction("momentum", momentum)
        self.epsilon = check.positive("epsilon", epsilon)
        self.center = check.boolean("center", center)
        self.scale = check.boolean("scale", scale)

    def build(self, input_shape, rng):
        features = input_shape[-1]
        self._affine_params(features, rng)
        self.add_weight("moving_mean", (features,), "zeros", rng, trainable=False)
        self.add_weight("moving_variance", (features,), "ones", rng, trainable=False)
        return tuple(input_shape)

    def forward(self, x, training=False):
        self._shape = x.shape
        x = x.reshape(-1, x.shape[-1])                       # (N, F): reductions over rows are fast
        self._training = training
        if training and self.comm is not None:
            mean, centred, variance = self._synchronized_moments(x)
        elif training:
            mean = x.mean(axis=0)                            # (F,)
            centred = x - mean
            variance = array_module(x).einsum("nf,nf->f", centred, centred) / len(x)   # (F,), biased, as Keras
        if training:
            keep = x.dtype.type(self.momentum)
            self.state["moving_mean"] *= keep
            self.state["moving_mean"] += (1 - keep) * mean
            self.state["moving_variance"] *= keep
            self.state["moving_variance"] += (1 - keep) * variance
        else:
            mean, variance = self.state["moving_mean"], self.state["moving_variance"]
        self._inv_std = (1 / array_module(x).sqrt(variance + x.dtype.type(self.epsilon))).astype(x.dtype)
        self._xhat = (centred if training else x - mean) * self._inv_std   # (N, F)
        return self._affine(self._xhat).reshape(self._shape)

    def backward(self, grad_y):
        grad_y = grad_y.reshape(-1, grad_y.shape[-1])        # (N, F)
        grad_xhat = self._affine_backward(grad_y, 0)
        if not self._training:
            return (grad_xhat * self._inv_std).reshape(self._shape)   # the statistics are constants
        if self.comm is None:
            return normalize_backward(grad_xhat, self._xhat, self._inv_std, 0).reshape(self._shape)
        # synchronized: the means of normalize_backward are the global batch's too
        xp = array_module(grad_xhat)
        sums = xp.concatenate([grad_xhat.sum(axis=0), (grad_xhat * self._xhat).sum(axis=0)])
        mean_g, mean_gx = (self._global_sum(sums) / self._count).astype(grad_xhat.dtype).reshape(2, -1)
        return (self._inv_std * (grad_xhat - mean_g - self._xhat * mean_gx)).reshape(self._shape)

    def _synchronized_moments(self, x):
        """The global batch's mean and biased variance (x: this process's (N, F) rows), from
        sums all-reduced over the processes, as Keras's ``synchronized=True``: the mean from
        the sums and the row count, then the variance from the squared deviations from it."""
        xp, features = array_module(x), x.shape[1]
        totals = self._global_sum(xp.append(x.sum(axis=0), len(x)))       # (F + 1,)
        self._count = float(totals[features])
        mean = (totals[:features] / self._count).astype(x.dtype)          # (F,)
        centred = x - mean
        squares = self._global_sum(xp.einsum("nf,nf->f", centred, centred))
        return mean, centred, (squares / self._count).astype(x.dtype)

    def _global_sum(self, value):
        """A float64 copy of ``value`` (a vector of sums) summed over every process."""
        flat = value.astype("float64")
        self.comm.allreduce_sum(flat)
        return flat


@register("layer_normalization")
class LayerNormalization(_Normalization):
    """Normalizes each sample over its features: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Statistics are per sample (and per time step), so training and inference agree.

    Args:
        epsilon: added to the variance before the square root.
        center: learn a shift beta.
        scale: learn a scale gamma.

    Shapes: (batch, ..., features) -> the same
    """

    examples = (({}, (8,)), ({"center": False}, (3, 6)), ({"scale": False}, (2, 2, 5)))

    def __init__(self, epsilon=1e-3, center=True, scale=True):
        super().__init__()
        self.epsilon = check.positive("epsilon", epsilon)
        self.center = check.boolean("center", center)
        self.scale = check.boolean("scale", scale)

    def build(self, input_shape, rng):
        self._affine_params(input_shape[-1], rng)
        return tuple(input_shape)

    def forward(self, x, training=False):
        mean = x.mean(axis=-1, keepdims=True)                # (B, ..., 1)
        variance = x.var(axis=-1, keepdims=True)
        self._inv_std = 1 / array_module(x).sqrt(variance + x.dtype.type(self.epsilon))
        self._xhat = (x - mean) * self._inv_std
        return self._affine(self._xhat)

    def backward(self, grad_y):
        grad_xhat = self._affine_backward(grad_y, tuple(range(grad_y.ndim - 1)))
        return normalize_backward(grad_xhat, self._xhat, self._inv_std, -1)
