"""The layer contract, and the capabilities the graph passes use (all in one place).

- ``__init__(hyper-parameters)``: store each under its own name, validate, allocate nothing.
- ``build(input_shape, rng) -> output_shape``: create ``params`` through ``add_weight`` (shapes
  exclude the batch axis). Shape inference calls it with ``rng=SHAPES_ONLY``: ``add_weight`` then
  records each shape in a placeholder of one element, so checking a model of any size allocates
  nothing proportional to it; a build must not otherwise compute with its parameters.
- ``forward(x, training) -> y``: cache only what backward needs.
- ``backward(grad_y) -> grad_x``: fill ``grads`` with the same keys as ``params``.

Merge layers (``multi_input = True``) take and return lists. Layers may keep extra arrays that
are not trained but must be saved (batch normalization's moving statistics) in ``state``.
A mask (True for real time steps) flows along the graph: ``compute_mask`` returns the mask of
the output; layers that use it read ``self.input_mask`` set by the model before ``forward``.

Graph passes (``dltrain/model/passes.py``) rewrite how a built model computes, never what: each
relies on the capabilities below, whose defaults opt out. A layer opts in by overriding them,
and then its outputs and gradients must stay the same (to float rounding where a product's
terms are summed in another order).
"""
import numpy as np


class _ShapesOnly:
    """The ``rng`` of a build that infers shapes only: ``add_weight`` creates no arrays."""

    def __repr__(self):
        return "SHAPES_ONLY"


SHAPES_ONLY = _ShapesOnly()


def placeholder(shape, dtype):
    """A read-only array of ``shape`` that holds one element (zero strides): its ``size`` and
    ``shape`` are a parameter's, its memory is not."""
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape))


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
    #: under data parallelism (dltrain/parallel/): this process's rows of the global batch,
    #: (start, global count), set by the model before each training forward; None on one process
    batch_share = None
    #: the communicator of a data-parallel run, set on every layer that reduces over the batch
    #: (``synchronized`` batch normalization); None on one process
    comm = None
    #: false (``trainable: false`` in the config): the layer is frozen; the model runs no backward
    #: through it where nothing trainable is below it, the layer's own backward computes only
    #: the input gradient (each layer with weights checks this flag), and the optimizer gets none
    trainable = True
    #: a frozen layer of this kind runs in inference mode also in training (batch normalization)
    inference_when_frozen = False

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

    def add_weight(self, name, shape, initializer, rng, trainable=True):
        """Create ``params[name]`` (or ``state[name]``, not trained) of ``shape`` and return it.

        ``initializer`` is a registered initializer's name or spec. With ``rng=SHAPES_ONLY`` the
        array is a one-element placeholder of that shape (see the module docstring).
        """
        if rng is SHAPES_ONLY:
            value = placeholder(shape, self.dtype)
        else:
            from dltrain.registry import get

            value = get("initializer", initializer)(tuple(shape), rng, self.dtype)
        (self.params if trainable else self.state)[name] = value
        return value

    def forward(self, x, training=False):
        raise NotImplementedError

    def random_rows(self, shape):
        """Uniform [0, 1) float32 numbers of ``shape`` (batch axis first) from ``self.rng``.

        Under data parallelism they are drawn for the whole global batch, from the same stream on
        every process, and this process keeps its rows: N processes draw exactly what one
        process would for the same global batch, so each sample gets the same mask."""
        if self.batch_share is None:
            return self.rng.random(shape, dtype=np.float32)
        start, total = self.batch_share
        return self.rng.random((total, *shape[1:]), dtype=np.float32)[start:start + shape[0]]

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

    # -- capabilities for the graph passes (dltrain/model/passes.py); every default opts out ----

    def is_relu(self):
        """Whether the layer computes exactly max(x, 0), elementwise (pass pool_before_relu)."""
        return False

    def commutes_with_relu(self):
        """Whether layer(relu(x)) equals relu(layer(x)) in values and gradients, so that the
        layer may run before the ReLU that feeds it (pass pool_before_relu; max pooling)."""
        return False

    def input_region(self, input_shape):
        """(rows, cols) of a 2-D input that forward reads, when it reads less than all of it (a
        `valid` pooling whose windows leave out the last rows); None: all of it (pass
        compute_read_region)."""
        return None

    def compute_only(self, region):
        """From now on compute only output[:, :rows, :cols] and leave the rest zero, because the
        one layer that reads the output reads no more; return whether it will (pass
        compute_read_region)."""
        return False

    def blocks_for(self, input_shape):
        """The window (ph, pw) if the layer can read its input as pooling blocks, the layout of
        ``emit_pool_blocks``; None otherwise (pass pool_blocks)."""
        return None

    def emit_pool_blocks(self, pool_size):
        """From now on give the output as (B, ph*pw, Ho, Wo, C) blocks, block k = i*pw + j
        holding output pixels (ho*ph + i, wo*pw + j), and take its gradient in that layout;
        return whether it will (pass pool_blocks)."""
        return False

    def take_blocks(self):
        """From now on read the input, and give its gradient, in the block layout; called only
        after ``blocks_for`` gave a window and the input's layer agreed (pass pool_blocks)."""
        raise NotImplementedError(f"{type(self).__name__} does not read pooling blocks")

    def absorb_relu(self):
        """From now on also apply the ReLU that alone reads the output (the model then drops
        that ReLU); return whether it will (pass absorb_relu)."""
        return False

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
