"""Sequence helpers: masking (marks padded steps) and time_distributed (a layer per step)."""

from dltrain import check
from dltrain.layers.base import Layer
from dltrain.registry import build, register


@register("masking")
class Masking(Layer):
    """Marks the steps whose features all equal ``mask_value`` as padding, and zeroes them.

    Recurrent and pooling layers after it skip the marked steps.

    Args:
        mask_value: the value that fills a padded step.

    Shapes: (batch, steps, features) -> the same
    """

    examples = (({}, (4, 3)), ({"mask_value": -1.0}, (3, 2)))

    def __init__(self, mask_value=0.0):
        super().__init__()
        self.mask_value = check.number("mask_value", mask_value)

    def build(self, input_shape, rng):
        check.rank(self, input_shape, 2, hint="masking reads (steps, features) sequences.")
        return tuple(input_shape)

    def _mask(self, x):
        return (x != self.mask_value).any(axis=-1)                    # (B, T)

    def forward(self, x, training=False):
        self._keep = self._mask(x)[..., None].astype(x.dtype)         # (B, T, 1)
        return x * self._keep

    def backward(self, grad_y):
        return grad_y * self._keep

    def compute_mask(self, x, mask):
        own = self._mask(x)
        return own if mask is None else own & mask


@register("time_distributed")
class TimeDistributed(Layer):
    """Applies one layer to every time step, with the same weights at each step.

    Args:
        layer: the layer spec, e.g. {type: dense, units: 8}.

    Shapes: (batch, steps, ...) -> (batch, steps, ...layer's output)
    """

    examples = (({"layer": {"type": "dense", "units": 3}}, (4, 2)),
                ({"layer": {"type": "flatten"}}, (3, 2, 2)))

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.inner = build("layer", layer)
        self.random = self.inner.random

    def build(self, input_shape, rng):
        if len(input_shape) < 2:
            check.rank(self, input_shape, 2, hint="time_distributed needs (steps, ...) input.")
        self.inner.name = f"{self.name}/{self.inner.registered_name}"
        self.inner.dtype = self.dtype
        shape = self.inner.build(tuple(input_shape[1:]), rng)
        self.params = self.inner.params
        self.state = self.inner.state
        return (input_shape[0], *shape)

    def forward(self, x, training=False):
        if self.random:
            self.inner.rng = self.rng
        self._steps = x.shape[1]
        y = self.inner.forward(x.reshape(-1, *x.shape[2:]), training)   # (B*T, ...)
        return y.reshape(-1, self._steps, *y.shape[1:])

    def backward(self, grad_y):
        self.inner.trainable = self.trainable          # frozen wrapper: the inner grad_x only
        grad_x = self.inner.backward(grad_y.reshape(-1, *grad_y.shape[2:]))
        self.grads = self.inner.grads
        return grad_x.reshape(-1, self._steps, *grad_x.shape[1:])

    def config(self):
        return {"type": self.registered_name, "layer": self.layer}

    def flops(self, input_shape, output_shape):
        return input_shape[0] * self.inner.flops(tuple(input_shape[1:]), tuple(output_shape[1:]))
