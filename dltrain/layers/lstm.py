"""Long short-term memory: the Recurrent structure (recurrent.py) with four gates."""

from dltrain import check
from dltrain.layers.base import SHAPES_ONLY
from dltrain.layers.recurrent import Recurrent
from dltrain.registry import register


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
        zero_output_for_mask: with return_sequences, masked steps output 0 (not the carried state).
        recurrent_dropout: fraction of the state's units dropped where it enters the recurrent
            product, in training (one mask per sample for all steps, as Keras).

    Shapes: (batch, steps, features) -> (batch, units) or (batch, steps, units)
    """

    gates = 4
    cell = "lstm"
    gate_order = (3, 0, 1, 2)          # internally o, i, f, c~ (see recurrent_cells)
    sigmoid_gates = 3
    examples = (({"units": 3}, (4, 2)),
                ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)),
                ({"units": 2, "recurrent_dropout": 0.3}, (3, 2)))

    def __init__(self, units, return_sequences=False, go_backwards=False, unit_forget_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", zero_output_for_mask=False, recurrent_dropout=0.0):
        super().__init__(units, return_sequences, go_backwards, kernel_initializer,
                         recurrent_initializer, bias_initializer, zero_output_for_mask, recurrent_dropout)
        self.unit_forget_bias = check.boolean("unit_forget_bias", unit_forget_bias)

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        if self.unit_forget_bias and rng is not SHAPES_ONLY:
            self.params["bias"][self.units:2 * self.units] = 1
        return shape
