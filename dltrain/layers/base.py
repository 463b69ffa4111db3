"""The layer contract.

- ``__init__(hyper-parameters)``: store each under its own name, validate, allocate nothing.
- ``build(input_shape, rng) -> output_shape``: create ``params`` (shapes exclude the batch axis).
- ``forward(x, training) -> y``: cache only what backward needs.
- ``backward(grad_y) -> grad_x``: fill ``grads`` with the same keys as ``params``.

Merge layers (``multi_input = True``) take and return lists. Layers may keep extra arrays that
are not trained but must be saved (batch normalization's moving statistics) in ``state``.
A mask (True for real time steps) flows along the graph: ``compute_mask`` returns the mask of
the output; layers that use it read ``self.input_mask`` set by the model before ``forward``.
"""
import numpy as np


class Layer:
    kind = "layer"
    multi_input = False
    #: consumes random numbers in training (gets ``self.rng``, a stream of its own)
    random = False
    #: False while the model backpropagates into a layer fed by the model input: backward may then
    #: skip the product for grad_x and return None (a third of a dense layer's backward)
    input_grad = True
    #: constructor arguments and input shapes (no batch axis) that the registry's contract tests
    #: build, run and gradient-check; every registered layer must list at least one
    examples = ()

    def __init__(self):
        self.name = None
        self.params = {}
        self.grads = {}
        self.state = {}
        self.dtype = np.float32
        self.input_mask = None
        self.regularizers = {}

    def build(self, input_shape, rng):
        return tuple(input_shape)

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad_y):
        raise NotImplementedError

    def compute_mask(self, x, mask):
        """The mask of the output, given the input and its mask; by default passed through."""
        return mask

    def config(self):
        """The constructor arguments as they would be written in a config."""
        from dltrain.registry import parameters

        return {"type": self.registered_name,
                **{key: getattr(self, key) for key in parameters(type(self)) if hasattr(self, key)}}

    def flops(self, input_shape, output_shape):
        """Forward floating-point operations per sample (multiply-adds count as two)."""
        return 0

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
