"""Recurrent layers: the shared structure and simple_rnn (lstm.py, gru.py, bidirectional.py).

All three recurrences share one structure (``Recurrent``): each step does ONE product for all gates at
once, over everything the step multiplies: the states live in an operand (T+1, U+1+F, B) =
[h; 1; x] (the inputs written in once, a row of ones for the bias) and the step's product
``[R^T | b | W^T] @ operand[t]`` gives the pre-activations whole (gru's rows are arranged so its
reset gate can act between the recurrent and the input part; see GRU). Backpropagation through
time runs the same structure in reverse and leaves the kernel, recurrent-kernel, bias and input
gradients to products over all steps after the loop. Inside the
layer each step is feature-major, (G*U, B), so every gate is a contiguous (U, B) block (see
recurrent_cells).

Masks (True for real steps, from ``embedding(mask_zero)`` or ``masking``): a masked step leaves
the state unchanged, so padding before or after a sequence changes nothing. With
``return_sequences`` a masked step outputs the carried state (Keras's default behaviour), or
zeros with ``zero_output_for_mask`` (which bidirectional sets on both of its layers, as Keras).
The output mask is the input mask, unchanged even with ``go_backwards`` (as Keras).
"""
import numpy as np

from dltrain import blas, check
from dltrain.backend import array_module, like
from dltrain.layers.base import Layer
from dltrain.layers.recurrent_cells import CELLS
from dltrain.parallel.recurrent_helper import Split
from dltrain.registry import register


def _flat(grad):
    """(T, W, B) per-step gradients -> (W, T*B); free for the cells' feature-major memory."""
    return grad.transpose(1, 0, 2).reshape(grad.shape[1], -1)


class Recurrent(Layer):
    """Base of simple_rnn, lstm and gru: input projection, time loop, BPTT, masks, directions.

    Inside, steps are feature-major, (T, G*U, B) (see recurrent_cells), and the gate columns
    follow ``gate_order`` with the first ``sigmoid_gates`` blocks activated as sigmoids; the
    saved parameters keep Keras's order. The forward pass halves the sigmoid columns of copies
    of the small weight arrays (sigmoid(z) = 0.5 tanh(z/2) + 0.5); gradients are taken with
    respect to the unhalved pre-activations, so backward uses the parameters as they are.
    """

    #: gate blocks in the kernels (1 for simple_rnn, 4 for lstm, 3 for gru)
    gates = 1
    #: which time loops it runs: a key of recurrent_cells.CELLS
    cell = None
    #: whether its loops may run as two halves of the batch (dltrain/parallel/recurrent_helper.py)
    splits = True
    #: the parameter block held by each internal block (None: the parameters' order)
    gate_order = None
    #: leading internal blocks that go through a sigmoid
    sigmoid_gates = 0
    def __init__(self, units, return_sequences=False, go_backwards=False,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", zero_output_for_mask=False, recurrent_dropout=0.0):
        super().__init__()
        self.units = check.positive_int("units", units)
        self.return_sequences = check.boolean("return_sequences", return_sequences)
        self.go_backwards = check.boolean("go_backwards", go_backwards)
        self.zero_output_for_mask = check.boolean("zero_output_for_mask", zero_output_for_mask)
        self.recurrent_dropout = check.fraction("recurrent_dropout", recurrent_dropout)
        self.random = self.recurrent_dropout > 0       # its mask comes from the layer's stream
        self._dropped = None
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape, rng):
        steps, features = check.rank(
            self, input_shape, 2, hint="recurrent layers read (steps, features): put an embedding "
            "before them for token ids, or reshape a vector to [steps, features].")
        width = self.gates * self.units
        self.add_weight("kernel", (features, width), self.kernel_initializer, rng)
        self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer, rng)
        self.add_weight("bias", (width,), self.bias_initializer, rng)
        order = range(self.gates) if self.gate_order is None else self.gate_order
        self._columns = np.concatenate([np.arange(k * self.units, (k + 1) * self.units) for k in order])
        self._halve = np.ones(width, dtype=self.dtype)
        self._halve[:self.sigmoid_gates * self.units] = 0.5
        return (steps, self.units) if self.return_sequences else (self.units,)

    # -- parameter order <-> internal order -----------------------------------------------------

    def _internal(self, name):
        """Parameter ``name`` with its gate columns in the internal order, (..., G*U)."""
        return self.params[name][..., self._columns]

    def _to_params(self, grad):
        """A gradient in the internal column order (..., G*U) back in the parameters' order."""
        out = array_module(grad).empty_like(grad)
        out[..., self._columns] = grad
        return out

    # -- the recurrence, per layer -------------------------------------------------------------

    def _step_weights(self):
        """What each step's product multiplies the operand [h; 1; x] by: [R^T | b | W^T]
        (G*U, K) in the internal order, sigmoid rows halved (gru arranges its own)."""
        xp = array_module(self.params["kernel"])
        stacked = xp.concatenate([self._internal("recurrent_kernel"), self._internal("bias")[None],
                                  self._internal("kernel")])             # (K, G*U)
        return xp.ascontiguousarray((stacked * self._halve).T)

    def _input_weights(self):
        """(F, width): the input's weights per row of the step product, for the input gradient."""
        return self._internal("kernel")

    def _forward_kernels(self):
        """Extra arrays the forward loop takes (gru without reset_after: its candidate's R_h^T)."""
        return {}

    def _backward_kernels(self):
        """The arrays the backward loop multiplies by: R (U, width) in the internal order."""
        return {"recurrent_kernel": self._internal("recurrent_kernel")}

    # -- shared --------------------------------------------------------------------------------

    def forward(self, x, training=False):
        if training and self.recurrent_dropout > 0:
            return self._forward_dropped(x)
        self._dropped = None
        xt = x.transpose(1, 0, 2)                                      # (T, B, F)
        mask = self.input_mask
        if self.go_backwards:
            xt = xt[::-1]
            mask = None if mask is None else mask[:, ::-1]
        steps, batch, features = xt.shape
        self._steps_batch = steps, batch
        weights = self._step_weights()
        self._width = len(weights)                                       # rows of the step product
        self._split = split = self._splitting(training, steps, batch) if array_module(x) is np else None
        if split is not None:                       # shared memory for both halves' loops
            shapes = [(self.units + 1 + features, steps + 1, batch), (len(weights), steps, batch)]
            shapes += [(steps, 1, batch)] if mask is not None else []
            shapes += [(steps, self.units, batch)] if self.return_sequences else []
            split.begin(shapes, self.dtype)
        self._mask = None if mask is None else self._empty((steps, 1, batch))
        if mask is not None:
            self._mask[...] = mask.T[:, None, :]
        operand = self._stack(xt)
        with np.errstate(over="ignore"), blas.single_thread():
            if split is None:
                self._h, self._cache = CELLS[self.cell][0](weights, operand, self.units, self._mask,
                                                           **self._forward_kernels())   # h (T+1, U, B)
            else:
                self._h, self._cache = split.forward(CELLS[self.cell], weights, operand, self.units, self._mask,
                                                     self._forward_kernels())
        if self.return_sequences:
            if self._zeroes_masked():
                return (self._h[1:] * self._mask).transpose(2, 0, 1)     # (B, T, U), 0 where masked
            return self._h[1:].transpose(2, 0, 1)                        # (B, T, U)
        return self._h[-1].T.copy()                                      # (B, U)

    def _zeroes_masked(self):
        return self.zero_output_for_mask and self._mask is not None

    def backward(self, grad_y):
        if self._dropped is not None:
            return self._backward_dropped(grad_y)
        xp = array_module(grad_y)
        steps, batch = self._steps_batch
        if self.return_sequences:
            grad_h, grad_last = self._empty((steps, self.units, batch)), None
            grad_h[...] = grad_y.transpose(1, 2, 0)                      # (T, U, B)
            if self._zeroes_masked():
                grad_h *= self._mask                                     # masked outputs were 0
        else:
            grad_h, grad_last = None, grad_y.T                           # (U, B)
        with blas.single_thread():
            if self._split is None:
                grad_pre = CELLS[self.cell][1](grad_h, grad_last, self._h, self._cache, self._mask,
                                               **self._backward_kernels())
            else:
                out = self._split.array((self._width, steps, batch), self.dtype).transpose(1, 0, 2)
                grad_pre = self._split.backward(CELLS[self.cell], grad_h, grad_last, self._h, self._cache,
                                                self._mask, self._backward_kernels(), out)
        grad_pre = _flat(grad_pre)                                       # (width, T*B)
        # every product over all steps is ONE 2-D GEMM, which OpenBLAS spreads over its threads
        # (a stack of 500 small products runs one at a time): 8.5 -> 4.2-4.9 ms each at 2 threads
        memory = self._operand[:, :-1]                                   # (K, T, B)
        if self.trainable:                                               # frozen: grad_x only
            self._weight_grads(xp.matmul(grad_pre, memory.reshape(memory.shape[0], -1).T).T, grad_pre)
        # (F, width) @ (width, T*B) -> (F, T, B)
        grad_xt = xp.matmul(self._input_weights(), grad_pre).reshape(-1, *self._steps_batch)
        if self.go_backwards:
            grad_xt = grad_xt[:, ::-1]
        return grad_xt.transpose(2, 1, 0)                                # (B, T, F)

    # -- recurrent_dropout: its own loop (recurrent_dropout.py), training only ----------------------

    def _forward_dropped(self, x):
        from dltrain.layers import recurrent_dropout

        mask = self.input_mask
        xs = x[:, ::-1] if self.go_backwards else x                     # (B, T, F) in reading order
        seq_mask = None if mask is None else (mask[:, ::-1] if self.go_backwards else mask).astype(x.dtype)
        keep = like(self.random_rows((len(x), self.units)) >= self.recurrent_dropout, x)   # host stream, moved
        drop = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.recurrent_dropout))   # (B, U), every step
        states, caches = recurrent_dropout.forward(self, xs, seq_mask, drop)
        self._dropped = (xs, seq_mask, drop, caches, states.shape)
        if not self.return_sequences:
            return states[:, -1].copy()
        if self.zero_output_for_mask and seq_mask is not None:
            return states * seq_mask[:, :, None]
        return states

    def _backward_dropped(self, grad_y):
        from dltrain.layers import recurrent_dropout

        xs, seq_mask, drop, caches, shape = self._dropped
        grad_states = array_module(grad_y).zeros(shape, dtype=grad_y.dtype)
        if not self.return_sequences:
            grad_states[:, -1] = grad_y
        elif self.zero_output_for_mask and seq_mask is not None:
            grad_states[...] = grad_y * seq_mask[:, :, None]
        else:
            grad_states[...] = grad_y
        grad_x, grads = recurrent_dropout.backward(self, xs, seq_mask, drop, caches, grad_states)
        self.grads.update(grads)
        return grad_x[:, ::-1] if self.go_backwards else grad_x

    def _splitting(self, training, steps, batch):
        """The layer's Split (parallel/recurrent_helper.py) when this pass runs its loops as two
        halves of the batch (training, two or more BLAS threads, a large enough loop), else None."""
        if not training or not self.splits or not Split.worth(batch, steps * batch * self.units):
            return None
        if getattr(self, "_splitter", None) is None:
            self._splitter = Split()
        return self._splitter

    def _empty(self, shape):
        """A new array, in the split's shared memory when the batch is split."""
        if self._split is None:
            return array_module(self.params["kernel"]).empty(shape, dtype=self.dtype)
        return self._split.array(shape, self.dtype)

    def _stack(self, xt):
        """The operand (T+1, K, B), K = U + 1 + F: step t (from 0) reads operand[t] =
        [h_t; 1; x_t] and writes the state h_{t+1} into operand[t + 1]; h_0 = 0.

        It is a view of (K, T+1, B) memory: each step reads a (K, B) block of rows (BLAS takes
        the row stride), and after the loop every row is one (T*B,) run, so the weight
        gradients are one product with no batch-major copy (``backward``)."""
        steps, batch, features = xt.shape
        units = self.units
        memory = self._empty((units + 1 + features, steps + 1, batch))
        memory[:units, 0] = 0
        memory[units] = 1
        memory[units + 1:, :steps] = xt.transpose(2, 0, 1)
        memory[units + 1:, steps] = 0                                    # read by no product
        self._operand = memory
        return memory.transpose(1, 0, 2)

    def _weight_grads(self, stacked, grad_pre):
        """The parameters' gradients from ``stacked`` = sum_t [h_t; 1; x_t] d(step product)_t^T
        (K, width); ``grad_pre`` (width, T*B) is d(step product) itself."""
        units = self.units
        self.grads["recurrent_kernel"] = self._to_params(stacked[:units])
        self.grads["bias"] = self._to_params(stacked[units])
        self.grads["kernel"] = self._to_params(stacked[units + 1:])

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def flops(self, input_shape, output_shape):
        steps, features = input_shape
        return 2 * steps * self.gates * self.units * (features + self.units)


@register("simple_rnn")
class SimpleRNN(Recurrent):
    """Fully connected recurrence: h_t = tanh(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).

    Args:
        units: size of the state, a positive integer.
        return_sequences: output every step's state (B, T, U) instead of the last one (B, U).
        go_backwards: read the sequence in reverse (the output sequence is reversed too, as Keras).
        kernel_initializer, recurrent_initializer, bias_initializer: registered initializers.
        zero_output_for_mask: with return_sequences, masked steps output 0 (not the carried state).
        recurrent_dropout: fraction of the state's units dropped where it enters the recurrent
            product, in training (one mask per sample for all steps, as Keras).

    Shapes: (batch, steps, features) -> (batch, units) or (batch, steps, units)
    """

    gates = 1
    cell = "simple_rnn"
    examples = (({"units": 3}, (4, 2)),
                ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)),
                ({"units": 2, "recurrent_dropout": 0.3}, (3, 2)))

    def _backward_kernels(self):
        return {"recurrent_kernel": self.params["recurrent_kernel"]}
