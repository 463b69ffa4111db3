"""Recurrent layers: simple_rnn, lstm, gru, and the bidirectional wrapper.

All three share one structure (``Recurrent``): each step does ONE product for all gates at
once. simple_rnn and lstm stack everything a step multiplies: the states live in an operand
(T+1, U+1+F, B) = [h; 1; x] (the inputs written in once, a row of ones for the bias) and the
step's product ``[R^T | b | W^T] @ operand[t]`` gives the pre-activations whole; gru, whose
reset gate sits between the recurrent product and the input's, projects every step's input
first with ONE ``matmul`` call, ``(G*U, F) @ (T, F, B)``, and multiplies ``R^T @ h`` per step.
Backpropagation through time runs the same structure in reverse and leaves the kernel,
recurrent-kernel, bias and input gradients to products over all steps after the loop. Inside the
layer each step is feature-major, (G*U, B), so every gate is a contiguous (U, B) block (see
recurrent_cells).

Masks (True for real steps, from ``embedding(mask_zero)`` or ``masking``): a masked step leaves
the state unchanged, so padding before or after a sequence changes nothing. With
``return_sequences`` a masked step outputs the carried state (Keras's default behaviour).
"""
import numpy as np

from dltrain import blas, check
from dltrain.backend import array_module
from dltrain.layers.base import Layer
from dltrain.layers.recurrent_cells import (
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from dltrain.registry import build, get, register


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
    #: the parameter block held by each internal block (None: the parameters' order)
    gate_order = None
    #: leading internal blocks that go through a sigmoid
    sigmoid_gates = 0
    #: whether each step's one product also takes the bias and the step's input (``_stack``)
    #: rather than the layer projecting every step's input first (``_project``)
    input_in_recurrence = False

    def __init__(self, units, return_sequences=False, go_backwards=False,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros"):
        super().__init__()
        self.units = check.positive_int("units", units)
        self.return_sequences = check.boolean("return_sequences", return_sequences)
        self.go_backwards = check.boolean("go_backwards", go_backwards)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape, rng):
        steps, features = check.rank(
            self, input_shape, 2, hint="recurrent layers read (steps, features): put an embedding "
            "before them for token ids, or reshape a vector to [steps, features].")
        width = self.gates * self.units
        self.params["kernel"] = get("initializer", self.kernel_initializer)((features, width), rng, self.dtype)
        self.params["recurrent_kernel"] = np.ascontiguousarray(get("initializer", self.recurrent_initializer)(
            (self.units, width), rng, self.dtype))     # orthogonal may return a transposed view
        self.params["bias"] = get("initializer", self.bias_initializer)((width,), rng, self.dtype)
        order = range(self.gates) if self.gate_order is None else self.gate_order
        self._columns = np.concatenate([np.arange(k * self.units, (k + 1) * self.units) for k in order])
        self._halve = np.ones(width, dtype=self.dtype)
        self._halve[:self.sigmoid_gates * self.units] = 0.5
        return (steps, self.units) if self.return_sequences else (self.units,)

    # -- parameter order <-> internal order -----------------------------------------------------

    def _internal(self, name):
        """Parameter ``name`` with its gate columns in the internal order, (..., G*U)."""
        return self.params[name][..., self._columns]

    def _forward_weights(self, name):
        """The internal-order parameter with the sigmoid columns halved, transposed: (G*U, ...)."""
        return np.ascontiguousarray((self._internal(name) * self._halve).T)

    def _forward_bias(self):
        """The internal-order bias with the sigmoid entries halved, (G*U,)."""
        return self._internal("bias") * self._halve

    def _to_params(self, grad):
        """A gradient in the internal column order (..., G*U) back in the parameters' order."""
        out = np.empty_like(grad)
        out[..., self._columns] = grad
        return out

    # -- the recurrence, per layer -------------------------------------------------------------

    def _run(self, prepared, mask):
        """States (T+1, U, B) from what ``_stack`` or ``_project`` prepared; cache what
        _backprop needs. Runs with one BLAS thread (``forward``), as the loops in _backprop do."""
        raise NotImplementedError

    def _backprop(self, grad_h, grad_last):
        """d(loss)/d(xw) (T, G*U, B) from d(loss)/d(h) (T, U, B) or of the last state (U, B);
        fill the recurrent grads."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------

    def forward(self, x, training=False):
        xp = array_module(x)
        xt = x.transpose(1, 0, 2)                                      # (T, B, F)
        mask = self.input_mask
        if self.go_backwards:
            xt = xt[::-1]
            mask = None if mask is None else mask[:, ::-1]
        self._steps_batch = xt.shape[:2]
        self._mask = None if mask is None else xp.ascontiguousarray(mask.T[:, None, :], dtype=self.dtype)
        prepared = self._stack(xt) if self.input_in_recurrence else self._project(xt)
        with np.errstate(over="ignore"), blas.single_thread():
            self._h = self._run(prepared, self._mask)                  # (T+1, U, B)
        if self.return_sequences:
            return self._h[1:].transpose(2, 0, 1)                        # (B, T, U)
        return self._h[-1].T.copy()                                      # (B, U)

    def backward(self, grad_y):
        xp = array_module(grad_y)
        if self.return_sequences:
            grad_h, grad_last = xp.ascontiguousarray(grad_y.transpose(1, 2, 0)), None   # (T, U, B)
        else:
            grad_h, grad_last = None, grad_y.T                           # (U, B)
        grad_pre = _flat(self._backprop(grad_h, grad_last))              # (G*U, T*B)
        # every product over all steps is ONE 2-D GEMM, which OpenBLAS spreads over its threads
        # (a stack of 500 small products runs one at a time): 8.5 -> 4.2-4.9 ms each at 2 threads
        if self.input_in_recurrence:
            self._stacked_grads(grad_pre)
        else:
            xt = self._xt.reshape(-1, self._xt.shape[2])                 # (T*B, F)
            self.grads["kernel"] = self._to_params(xp.matmul(grad_pre, xt).T)
            self.grads["bias"] = self._to_params(self._sum_steps(grad_pre))
        # (F, G*U) @ (G*U, T*B) -> (F, T, B)
        grad_xt = xp.matmul(self._internal("kernel"), grad_pre).reshape(-1, *self._steps_batch)
        if self.go_backwards:
            grad_xt = grad_xt[:, ::-1]
        return grad_xt.transpose(2, 1, 0)                                # (B, T, F)

    def _project(self, xt):
        """xw (T, G*U, B): every step's kernel^T x_t + bias, ONE matmul call (gru)."""
        self._xt = np.ascontiguousarray(xt, dtype=self.dtype)          # free after an embedding
        # (G*U, F) @ (T, F, B) -> (T, G*U, B)
        xw = np.matmul(self._forward_weights("kernel"), self._xt.transpose(0, 2, 1))
        xw += self._forward_bias()[:, None]
        return xw

    def _stack(self, xt):
        """(weights (G*U, K), operand (T+1, K, B)), K = U + 1 + F, for cells whose one product
        per step does all (simple_rnn, lstm): step t (from 0) reads operand[t] = [h_t; 1; x_t]
        and writes the state h_{t+1} into operand[t + 1]; h_0 = 0. weights = [R^T | b | W^T],
        sigmoid rows halved.

        The operand is a view of (K, T+1, B) memory: each step reads a (K, B) block of rows
        (BLAS takes the row stride), and after the loop every row is one (T*B,) run, so the
        weight gradients are one product with no batch-major copy (``_stacked_grads``)."""
        steps, batch, features = xt.shape
        units = self.units
        memory = np.empty((units + 1 + features, steps + 1, batch), dtype=self.dtype)
        memory[:units, 0] = 0
        memory[units] = 1
        memory[units + 1:, :steps] = xt.transpose(2, 0, 1)
        memory[units + 1:, steps] = 0                                    # read by no product
        self._operand = memory
        stacked = np.concatenate([self._internal("recurrent_kernel"), self._internal("bias")[None],
                                  self._internal("kernel")])             # (K, G*U)
        return np.ascontiguousarray((stacked * self._halve).T), memory.transpose(1, 0, 2)

    def _stacked_grads(self, grad_pre):
        """The recurrent-kernel, bias and kernel gradients as ONE product over all steps,
        grad_pre (G*U, T*B) @ [h_{t-1}; 1; x_t]^T (T*B, K)."""
        memory = self._operand[:, :-1]                                   # (K, T, B)
        stacked = np.matmul(grad_pre, memory.reshape(memory.shape[0], -1).T).T   # (K, G*U)
        units = self.units
        self.grads["recurrent_kernel"] = self._to_params(stacked[:units])
        self.grads["bias"] = self._to_params(stacked[units])
        self.grads["kernel"] = self._to_params(stacked[units + 1:])

    def _sum_steps(self, grad):
        """sum over t and b of grad (W, T*B) -> (W,), as a product with a vector of ones."""
        return grad @ np.ones(grad.shape[1], dtype=grad.dtype)

    def _state_products(self, states, grad):
        """sum_t states_t @ grad_t^T -> (U, W), e.g. d(recurrent_kernel), from states (T, U, B)
        and grad (W, T*B): one GEMM with the states copied batch-major, (T*B, U) (the copy
        takes 0.8 ms for the benchmark's 500 steps)."""
        batch_major = np.ascontiguousarray(states.transpose(0, 2, 1))               # (T, B, U)
        return np.matmul(grad, batch_major.reshape(-1, states.shape[1])).T          # (U, W)

    def compute_mask(self, x, mask):
        if not self.return_sequences or mask is None:
            return None
        return mask[:, ::-1] if self.go_backwards else mask

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

    Shapes: (batch, steps, features) -> (batch, units) or (batch, steps, units)
    """

    gates = 1
    input_in_recurrence = True
    examples = (({"units": 3}, (4, 2)),
                ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)))

    def _run(self, prepared, mask):
        weights, operand = prepared
        return rnn_forward(weights, operand, self.units, mask)

    def _backprop(self, grad_h, grad_last):
        with blas.single_thread():
            return rnn_backward(grad_h, grad_last, self._h, self.params["recurrent_kernel"], self._mask)


@register("lstm")
class LSTM(Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras's gate order i, f, c, o.

    i, f, o = sigmoid(x_t W + h_{t-1} R + b) blocks; c~ = tanh(...) block;
    c_t = f * c_{t-1} + i * c~;  h_t = o * tanh(c_t).

    Args:
        units: size of the state, a positive integer.
        return_sequences: output every step's state instead of the last one.
        go_backwards: read the sequence in reverse (the output sequence is reversed too).
        unit_forget_bias: start the forget gate's bias at 1 (as Keras), so memory is kept early on.
        kernel_initializer, recurrent_initializer, bias_initializer: registered initializers.

    Shapes: (batch, steps, features) -> (batch, units) or (batch, steps, units)
    """

    gates = 4
    input_in_recurrence = True
    gate_order = (3, 0, 1, 2)          # internally o, i, f, c~ (see recurrent_cells)
    sigmoid_gates = 3
    examples = (({"units": 3}, (4, 2)),
                ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)))

    def __init__(self, units, return_sequences=False, go_backwards=False, unit_forget_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros"):
        super().__init__(units, return_sequences, go_backwards, kernel_initializer,
                         recurrent_initializer, bias_initializer)
        self.unit_forget_bias = check.boolean("unit_forget_bias", unit_forget_bias)

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        if self.unit_forget_bias:
            self.params["bias"][self.units:2 * self.units] = 1
        return shape

    def _run(self, prepared, mask):
        weights, operand = prepared
        h, self._cache = lstm_forward(weights, operand, self.units, mask)
        return h

    def _backprop(self, grad_h, grad_last):
        with blas.single_thread():
            return lstm_backward(grad_h, grad_last, self._h, self._cache,
                                 self._internal("recurrent_kernel"), self._mask)


@register("gru")
class GRU(Recurrent):
    """Gated recurrent unit (Cho et al. 2014), Keras's gate order z, r, h.

    z, r = sigmoid blocks; with reset_after (Keras's default, cuDNN-compatible) the reset gate
    multiplies the recurrent product: n = tanh(x_t W_h + b_h + r * (h_{t-1} R_h + rb_h)), and
    ``recurrent_bias`` is a second bias; without it, n = tanh(x_t W_h + b_h + (r * h_{t-1}) R_h).
    h_t = z * h_{t-1} + (1 - z) * n.

    Args:
        units: size of the state, a positive integer.
        return_sequences: output every step's state instead of the last one.
        go_backwards: read the sequence in reverse (the output sequence is reversed too).
        reset_after: apply the reset gate after the recurrent product (true, Keras's default).
        kernel_initializer, recurrent_initializer, bias_initializer: registered initializers.

    Shapes: (batch, steps, features) -> (batch, units) or (batch, steps, units)
    """

    gates = 3
    sigmoid_gates = 2
    examples = (({"units": 3}, (4, 2)),
                ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)),
                ({"units": 2, "reset_after": False}, (3, 2)))

    def __init__(self, units, return_sequences=False, go_backwards=False, reset_after=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros"):
        super().__init__(units, return_sequences, go_backwards, kernel_initializer,
                         recurrent_initializer, bias_initializer)
        self.reset_after = check.boolean("reset_after", reset_after)

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        if self.reset_after:
            self.params["recurrent_bias"] = get("initializer", self.bias_initializer)(
                (3 * self.units,), rng, self.dtype)
        return shape

    def _run(self, xw, mask):
        recurrent_bias = None
        if self.reset_after:
            recurrent_bias = self._forward_weights("recurrent_bias")[:, None]     # (3U, 1)
        h, self._cache = gru_forward(xw, self._forward_weights("recurrent_kernel"), recurrent_bias, mask)
        return h

    def _backprop(self, grad_h, grad_last):
        with blas.single_thread():
            grad_pre, grad_rec = gru_backward(
                grad_h, grad_last, self._h, self._cache, self.params["recurrent_kernel"], self._mask,
                self.reset_after)
        if self.reset_after:
            grad_rec = _flat(grad_rec)
            self.grads["recurrent_kernel"] = self._state_products(self._h[:-1], grad_rec)
            self.grads["recurrent_bias"] = self._sum_steps(grad_rec)
        else:
            n = self.units
            flat = _flat(grad_pre)
            gate_part = self._state_products(self._h[:-1], flat[:2 * n])           # (U, 2U)
            candidate_part = self._state_products(self._cache[1], flat[2 * n:])    # r * h_{t-1}
            self.grads["recurrent_kernel"] = np.concatenate([gate_part, candidate_part], axis=1)
        return grad_pre


@register("bidirectional")
class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the two outputs.

    The backward copy's output sequence is reversed back, so step t of both outputs describes
    input step t.

    Args:
        layer: the recurrent layer, e.g. {type: gru, units: 32, return_sequences: true}.
        merge_mode: how the two outputs combine: concat (default), sum, mul or ave.

    Shapes: (batch, steps, features) -> (batch, [steps,] units) (2 * units with concat)
    """

    examples = (({"layer": {"type": "lstm", "units": 3}}, (4, 3)),
                ({"layer": {"type": "gru", "units": 2, "return_sequences": True},
                  "merge_mode": "sum"}, (3, 2)),
                ({"layer": {"type": "simple_rnn", "units": 2}, "merge_mode": "mul"}, (3, 2)),
                ({"layer": {"type": "lstm", "units": 2, "return_sequences": True},
                  "merge_mode": "ave"}, (3, 2)))

    def __init__(self, layer, merge_mode="concat"):
        super().__init__()
        self.layer = layer
        self.merge_mode = check.one_of("merge_mode", merge_mode, ("concat", "sum", "mul", "ave"))
        self.forward_layer = build("layer", layer)
        if not isinstance(self.forward_layer, Recurrent):
            check._fail("layer", layer, "a recurrent layer (simple_rnn, lstm or gru)")
        backward_spec = dict(layer) if isinstance(layer, dict) else {"type": layer}
        backward_spec["go_backwards"] = not backward_spec.get("go_backwards", False)
        self.backward_layer = build("layer", backward_spec)

    @property
    def _pair(self):
        return (("forward", self.forward_layer), ("backward", self.backward_layer))

    def build(self, input_shape, rng):
        for prefix, inner in self._pair:
            inner.name = f"{self.name}/{prefix}"
            inner.dtype = self.dtype
            shape = inner.build(input_shape, rng)
            for key, value in inner.params.items():
                self.params[f"{prefix}_{key}"] = value
        if self.merge_mode == "concat":
            return (*shape[:-1], 2 * shape[-1])
        return tuple(shape)

    def forward(self, x, training=False):
        outputs = []
        for _, inner in self._pair:
            inner.input_mask = self.input_mask
            outputs.append(inner.forward(x, training))
        y_f, y_b = outputs
        if self.forward_layer.return_sequences:
            y_b = y_b[:, ::-1]
        self._outputs = (y_f, y_b)
        if self.merge_mode == "concat":
            return np.concatenate([y_f, y_b], axis=-1)
        if self.merge_mode == "sum":
            return y_f + y_b
        if self.merge_mode == "ave":
            return (y_f + y_b) * np.dtype(self.dtype).type(0.5)
        return y_f * y_b

    def backward(self, grad_y):
        y_f, y_b = self._outputs
        if self.merge_mode == "concat":
            units = y_f.shape[-1]
            g_f, g_b = grad_y[..., :units], grad_y[..., units:]
        elif self.merge_mode == "sum":
            g_f = g_b = grad_y
        elif self.merge_mode == "ave":
            g_f = g_b = grad_y * np.dtype(self.dtype).type(0.5)
        else:
            g_f, g_b = grad_y * y_b, grad_y * y_f
        if self.forward_layer.return_sequences:
            g_b = g_b[:, ::-1]
        grad_x = self.forward_layer.backward(g_f) + self.backward_layer.backward(g_b)
        for prefix, inner in self._pair:
            for key, value in inner.grads.items():
                self.grads[f"{prefix}_{key}"] = value
        return grad_x

    def compute_mask(self, x, mask):
        return mask if self.forward_layer.return_sequences else None

    def config(self):
        return {"type": self.registered_name, "layer": self.layer, "merge_mode": self.merge_mode}

    def flops(self, input_shape, output_shape):
        return 2 * self.forward_layer.flops(input_shape, None)
