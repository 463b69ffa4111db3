"""Embedding: token ids -> learned vectors, with an optional mask for padding id 0."""

from dltrain import check
from dltrain.backend import array_module
from dltrain.errors import DataError
from dltrain.layers.base import Layer
from dltrain.registry import get, register


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
        self.params["embeddings"] = get("initializer", self.embeddings_initializer)(
            (self.input_dim, self.output_dim), rng, self.dtype)
        return (*input_shape, self.output_dim)

    def _ids(self, x):
        xp = array_module(x)
        ids = x.astype(xp.intp) if x.dtype.kind == "f" else xp.asarray(x, dtype=xp.intp)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            bad = int(ids.max()) if int(ids.max()) >= self.input_dim else int(ids.min())
            raise DataError(
                f"layer '{self.name}' (embedding) got token id {bad}, outside 0..{self.input_dim - 1}",
                fix=f"set input_dim to at least {bad + 1} (the vocabulary size, e.g. max_tokens of "
                    "text_vectorization), or check the data.")
        return ids

    def forward(self, x, training=False):
        self._ids_cache = self._ids(x)
        return self.params["embeddings"][self._ids_cache]            # (B, T) -> (B, T, D)

    def backward(self, grad_y):
        """Rows used several times sum their gradients: one bincount over (id, column) pairs."""
        xp = array_module(grad_y)
        d = self.output_dim
        flat = (self._ids_cache.reshape(-1, 1) * d + xp.arange(d)).reshape(-1)   # (B*T*D,)
        sums = xp.bincount(flat, weights=grad_y.reshape(-1), minlength=self.input_dim * d)
        self.grads["embeddings"] = sums.reshape(self.input_dim, d).astype(grad_y.dtype, copy=False)
        return xp.zeros(self._ids_cache.shape, dtype=grad_y.dtype)   # ids have no gradient

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return mask
        return x != 0                                                 # (B, T)

    def flops(self, input_shape, output_shape):
        return 0
