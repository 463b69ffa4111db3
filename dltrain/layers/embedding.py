"""Embedding: token ids -> learned vectors, with an optional mask for padding id 0."""

import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.errors import DataError
from dltrain.layers.base import Layer
from dltrain.registry import register


@register("embedding")
class Embedding(Layer):
    """Looks up row ``x`` of a (input_dim, output_dim) table for each token id: y = table[x].

    Ids arrive as integers or as integral floats (batches are cast to the model's dtype).

    Args:
        input_dim: size of the vocabulary; ids run 0..input_dim-1.
        output_dim: length of each vector.
        mask_zero: treat id 0 as padding: the output mask is x != 0, so recurrent and pooling
            layers after it skip padded steps.
        embeddings_initializer: a registered initializer (uniform in ±0.05, as Keras).

    Shapes: (batch, steps) -> (batch, steps, output_dim)
    """

    #: inputs are ids: the contract tests draw integers in [0, input_dim) for these examples
    integer_input = True
    examples = (({"input_dim": 7, "output_dim": 3}, (5,)),
                ({"input_dim": 5, "output_dim": 2, "mask_zero": True}, (4,)))

    def __init__(self, input_dim, output_dim, mask_zero=False, embeddings_initializer="random_uniform"):
        super().__init__()
        self.input_dim = check.positive_int("input_dim", input_dim)
        self.output_dim = check.positive_int("output_dim", output_dim)
        self.mask_zero = check.boolean("mask_zero", mask_zero)
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape, rng):
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer, rng)
        return (*input_shape, self.output_dim)

    def _ids(self, x):
        xp = array_module(x)
        ids = x.astype(xp.intp) if x.dtype.kind == "f" else xp.asarray(x, dtype=xp.intp)
        # checked where the ids are on the host; on a device the check would be a read back
        # per batch (out-of-range ids are then not caught here)
        if xp is np and ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            bad = int(ids.max()) if int(ids.max()) >= self.input_dim else int(ids.min())
            raise DataError(
                f"layer '{self.name}' (embedding) got token id {bad}, outside 0..{self.input_dim - 1}",
                fix=f"set input_dim to at least {bad + 1} (the vocabulary size, e.g. max_tokens of "
                    "text_vectorization), or check the data.")
        return ids

    def forward(self, x, training=False):
        self._ids_cache = self._ids(x)
        if self._ids_cache.ndim != 2:
            return self.params["embeddings"][self._ids_cache]        # (B, ...) -> (B, ..., D)
        # gathered time-major, (T, B, D), and returned as a (B, T, D) view: a recurrent layer
        # reads it time-major without a copy
        return self.params["embeddings"][self._ids_cache.T].transpose(1, 0, 2)

    def backward(self, grad_y):
        """Rows used several times sum their gradients: one bincount per output column.

        The gradient is read feature-major, (D, ...) after moving the last axis first; that is
        the layout a recurrent layer's input gradient has ((T, D, B) in memory), so no copy is
        made there, and each column's weights are one contiguous run.
        """
        xp = array_module(grad_y)
        ids = self._ids_cache
        if not self.trainable:                                        # frozen: nothing to compute
            return xp.zeros(ids.shape, dtype=grad_y.dtype)
        if grad_y.ndim == 3:                                          # (B, T, D) -> (T, D, B)
            by_column, ids = grad_y.transpose(1, 2, 0), ids.T.reshape(-1)          # ids (T*B,)
            columns = [by_column[:, j] for j in range(self.output_dim)]            # (T, B) each
        else:
            columns = [grad_y[..., j] for j in range(self.output_dim)]
            ids = ids.reshape(-1)
        table = xp.empty((self.input_dim, self.output_dim), dtype=grad_y.dtype)
        for j, column in enumerate(columns):
            table[:, j] = xp.bincount(ids, weights=column.reshape(-1), minlength=self.input_dim)
        self.grads["embeddings"] = table
        return xp.zeros(self._ids_cache.shape, dtype=grad_y.dtype)   # ids have no gradient

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return mask
        return x != 0                                                 # (B, T)

    def flops(self, input_shape, output_shape):
        return 0
