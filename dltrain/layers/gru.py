"""The gated recurrent unit: the Recurrent structure (recurrent.py) with gru's product rows."""

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers.recurrent import Recurrent
from dltrain.registry import register


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
        zero_output_for_mask: with return_sequences, masked steps output 0 (not the carried state).

    Shapes: (batch, steps, features) -> (batch, units) or (batch, steps, units)
    """

    gates = 3
    cell = "gru"
    sigmoid_gates = 2
    examples = (({"units": 3}, (4, 2)),
                ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)),
                ({"units": 2, "reset_after": False}, (3, 2)))

    def __init__(self, units, return_sequences=False, go_backwards=False, reset_after=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", zero_output_for_mask=False):
        super().__init__(units, return_sequences, go_backwards, kernel_initializer,
                         recurrent_initializer, bias_initializer, zero_output_for_mask)
        self.reset_after = check.boolean("reset_after", reset_after)

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        if self.reset_after:
            self.add_weight("recurrent_bias", (3 * self.units,), self.bias_initializer, rng)
        return shape

    # Inside, the step product's rows are [z, r, R_h^T h + rb_h, W_h^T x + b_h] with reset_after
    # (width 4U: the reset gate multiplies the third block before it joins the fourth) and
    # [z, r, W_h^T x + b_h] without (width 3U; R_h^T (r * h) is a second product per step).
    # z and r take both biases (their sum is what acts); the blocks' unused parts are zeros.

    def _step_weights(self):
        n, kernel, recurrent = self.units, self.params["kernel"], self.params["recurrent_kernel"]
        bias = self.params["bias"]
        both = bias + self.params["recurrent_bias"] if self.reset_after else bias
        xp = array_module(kernel)
        gates = 0.5 * xp.concatenate([recurrent[:, :2 * n], both[None, :2 * n], kernel[:, :2 * n]])
        zeros_h = xp.zeros((n, n), dtype=self.dtype)
        candidate_x = xp.concatenate([zeros_h, bias[None, 2 * n:], kernel[:, 2 * n:]])
        blocks = [gates, candidate_x]
        if self.reset_after:
            zeros_x = xp.zeros((len(kernel), n), dtype=self.dtype)
            candidate_h = xp.concatenate([recurrent[:, 2 * n:], self.params["recurrent_bias"][None, 2 * n:],
                                          zeros_x])
            blocks = [gates, candidate_h, candidate_x]
        return xp.ascontiguousarray(xp.concatenate(blocks, axis=1).T)     # (width, K)

    def _input_weights(self):
        kernel = self.params["kernel"]
        if not self.reset_after:
            return kernel
        n = self.units
        xp = array_module(kernel)
        return xp.concatenate([kernel[:, :2 * n], xp.zeros((len(kernel), n), dtype=kernel.dtype),
                               kernel[:, 2 * n:]], axis=1)                # (F, 4U)

    def _weight_grads(self, stacked, grad_pre):
        n = self.units
        h_rows, one_row, x_rows = stacked[:n], stacked[n], stacked[n + 1:]
        xp = array_module(stacked)
        self.grads["kernel"] = xp.concatenate([x_rows[:, :2 * n], x_rows[:, -n:]], axis=1)
        self.grads["bias"] = xp.concatenate([one_row[:2 * n], one_row[-n:]])
        if self.reset_after:
            self.grads["recurrent_kernel"] = h_rows[:, :3 * n].copy()
            self.grads["recurrent_bias"] = one_row[:3 * n].copy()
        else:
            # the candidate's recurrent weights multiply r * h: sum_t (r h)_t d(n)_t^T
            reset_h = self._cache[1].transpose(1, 0, 2).reshape(n, -1)           # (U, T*B)
            candidate_part = xp.matmul(reset_h, grad_pre[2 * n:].T)             # (U, U)
            self.grads["recurrent_kernel"] = xp.concatenate([h_rows[:, :2 * n], candidate_part], axis=1)

    @property
    def splits(self):
        """Without reset_after the weight gradient reads every step's r * h, which stays in the
        process that computed it: such a layer does not split its batch."""
        return self.reset_after

    def _forward_kernels(self):
        if self.reset_after:
            return {}
        recurrent = self.params["recurrent_kernel"]
        return {"candidate_t": array_module(recurrent).ascontiguousarray(recurrent[:, 2 * self.units:].T)}

    def _backward_kernels(self):
        n, recurrent = self.units, self.params["recurrent_kernel"]
        if self.reset_after:
            return {"recurrent_kernel": recurrent}
        xp = array_module(recurrent)
        return {"recurrent_kernel": xp.ascontiguousarray(recurrent[:, :2 * n]),
                "candidate_kernel": xp.ascontiguousarray(recurrent[:, 2 * n:])}
