"""The bidirectional wrapper: a recurrent layer forwards and a copy of it backwards, merged."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.layers.base import Layer
from dltrain.layers.recurrent import Recurrent
from dltrain.registry import build, register


@register("bidirectional")
class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the two outputs.

    The backward copy's output sequence is reversed back, so step t of both outputs describes
    input step t. With return_sequences, masked steps output 0 in both (Keras forces
    zero_output_for_mask on its two layers).

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
        for inner in (self.forward_layer, self.backward_layer):     # as Keras: padded steps give 0
            inner.zero_output_for_mask = inner.return_sequences
        self.random = self.forward_layer.random       # recurrent_dropout: masks from this stream

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
            if inner.random:
                inner.rng, inner.batch_share = self.rng, self.batch_share
            outputs.append(inner.forward(x, training))
        y_f, y_b = outputs
        if self.forward_layer.return_sequences:
            y_b = y_b[:, ::-1]
        self._outputs = (y_f, y_b)
        if self.merge_mode == "concat":
            return array_module(y_f).concatenate([y_f, y_b], axis=-1)
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
        for _, inner in self._pair:                   # frozen wrapper: the inner layers' grad_x only
            inner.trainable = self.trainable
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
