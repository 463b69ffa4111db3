"""Core layers: dense, dropout, flatten, reshape, activation."""
import numpy as np

from dltrain import check
from dltrain.backend import like
from dltrain.layers.base import Layer
from dltrain.registry import get, register


@register("dense")
class Dense(Layer):
    """Fully connected layer: y = x @ kernel + bias, applied to the last axis.

    Args:
        units: number of output features, a positive integer.
        use_bias: whether to add a learned bias.
        kernel_initializer: a registered initializer name or spec.
        bias_initializer: a registered initializer name or spec.

    Shapes: (batch, features) -> (batch, units); (batch, steps, features) -> (batch, steps, units)
    """

    examples = (({"units": 3}, (4,)), ({"units": 2, "use_bias": False}, (3, 4)))

    def __init__(self, units, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros"):
        super().__init__()
        self.units = check.positive_int("units", units)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape, rng):
        check.rank(self, input_shape, (1, 2), hint="add `- {type: flatten}` before it.")
        features = input_shape[-1]
        self.add_weight("kernel", (features, self.units), self.kernel_initializer, rng)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, rng)
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False):
        self._x = x
        y = x @ self.params["kernel"]                      # (B, ..., F) @ (F, U) -> (B, ..., U)
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, grad_y):
        if self.trainable:                                 # frozen: the input gradient only
            x2 = self._x.reshape(-1, self._x.shape[-1])    # (N, F), N = B * steps
            g2 = grad_y.reshape(-1, self.units)            # (N, U)
            self.grads["kernel"] = x2.T @ g2               # (F, N) @ (N, U) -> (F, U)
            if self.use_bias:
                self.grads["bias"] = g2.sum(axis=0)        # (U,)
        if not self.input_grad:
            return None
        return grad_y @ self.params["kernel"].T            # (B, ..., U) @ (U, F) -> (B, ..., F)

    def flops(self, input_shape, output_shape):
        return 2 * int(np.prod(input_shape)) * self.units


@register("dropout")
class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs in training and scales the rest by 1 / (1 - rate).

    Args:
        rate: fraction of inputs to drop, in [0, 1).

    Shapes: any -> the same
    """

    random = True
    examples = (({"rate": 0.3}, (6,)), ({"rate": 0.0}, (2, 3)))

    def __init__(self, rate):
        super().__init__()
        self.rate = check.fraction("rate", rate)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._scale = None
            return x
        keep = like(self.random_rows(x.shape) >= self.rate, x)   # host stream, moved
        self._scale = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.rate))
        return x * self._scale

    def backward(self, grad_y):
        return grad_y if self._scale is None else grad_y * self._scale


@register("flatten")
class Flatten(Layer):
    """Flattens every axis but the batch axis.

    Shapes: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...)
    """

    examples = (({}, (2, 3, 2)), ({}, (5,)))

    def build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_y):
        return grad_y.reshape(self._shape)

    def compute_mask(self, x, mask):
        return None


@register("reshape")
class Reshape(Layer):
    """Reshapes each sample to target_shape (one entry may be -1).

    Args:
        target_shape: the new shape without the batch axis, e.g. [28, 28, 1].

    Shapes: (batch, ...) -> (batch, *target_shape)
    """

    examples = (({"target_shape": [3, 2]}, (6,)), ({"target_shape": [-1]}, (2, 3)))

    def __init__(self, target_shape):
        super().__init__()
        if (not isinstance(target_shape, (list, tuple)) or not target_shape
                or not all(isinstance(v, int) and (v > 0 or v == -1) for v in target_shape)
                or list(target_shape).count(-1) > 1):
            check._fail("target_shape", target_shape, "a list of positive integers, at most one -1")
        self.target_shape = list(target_shape)

    def build(self, input_shape, rng):
        size = int(np.prod(input_shape))
        known = int(np.prod([v for v in self.target_shape if v != -1]))
        shape = [size // known if v == -1 else v for v in self.target_shape]
        if int(np.prod(shape)) != size:
            from dltrain.errors import ShapeError

            raise ShapeError(
                f"layer '{self.name}' cannot reshape {tuple(input_shape)} ({size} values) "
                f"to {tuple(self.target_shape)}",
                fix=f"choose a target_shape whose product is {size}.")
        return tuple(shape)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(len(x), *self.target_shape)

    def backward(self, grad_y):
        return grad_y.reshape(self._shape)


@register("activation")
class ActivationLayer(Layer):
    """Applies a registered activation function elementwise.

    Args:
        activation: an activation name or spec, e.g. relu or {type: leaky_relu, negative_slope: 0.1}.

    Shapes: any -> the same
    """

    examples = (({"activation": "tanh"}, (5,)), ({"activation": "softmax"}, (2, 4)))

    def __init__(self, activation):
        super().__init__()
        self.activation = activation
        self.function = get("activation", activation)

    def forward(self, x, training=False):
        return self.function.forward(x)

    def backward(self, grad_y):
        return self.function.backward(grad_y)

    def is_relu(self):
        return self.function_name == "relu"

    @property
    def function_name(self):
        return self.function.registered_name
