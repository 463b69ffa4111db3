"""ONNX converters of simple_rnn, lstm, gru and bidirectional, as the RNN, LSTM and GRU operators.

Gate orders: Keras (and dltrain's saved parameters) keep LSTM blocks as i, f, c, o; ONNX's LSTM
wants i, o, f, c. GRU blocks are z, r, h in both; dltrain's ``reset_after`` (Keras's default)
is ONNX's ``linear_before_reset = 1`` with the recurrent bias as ONNX's Rb, and without it the
recurrent bias is zero. ONNX kernels are (directions, gates * units, features), transposed.

Masks: a masked step leaves dltrain's state unchanged. The operators take ``sequence_lens``
instead, the number of real steps counted from the front, so the export is exact when the
padding comes after the real steps (as text_vectorization pads). With ``return_sequences`` the
padded steps output zeros in ONNX; where dltrain outputs the carried state instead (a forward
layer without ``zero_output_for_mask``) the export selects it with a Where. The output mask of a
go_backwards layer is its input mask, unreversed, as in dltrain and Keras.
"""
import numpy as np

LSTM_ORDER = (0, 3, 1, 2)     # ONNX i, o, f, c from Keras's blocks i, f, c, o


def _blocks(array, order, units):
    """Reorder the gate blocks of the last axis."""
    return np.concatenate([array[..., k * units:(k + 1) * units] for k in order], axis=-1)


def onnx_weights(layer):
    """(op, W (G*U, F), R (G*U, U), B (2*G*U,), attributes) of one recurrent layer."""
    name, units, p = layer.registered_name, layer.units, layer.params
    if name == "lstm":
        w, r = _blocks(p["kernel"], LSTM_ORDER, units), _blocks(p["recurrent_kernel"], LSTM_ORDER, units)
        b = np.concatenate([_blocks(p["bias"], LSTM_ORDER, units), np.zeros_like(p["bias"])])
        return "LSTM", w.T, r.T, b, {}
    if name == "gru":
        recurrent_bias = p["recurrent_bias"] if layer.reset_after else np.zeros_like(p["bias"])
        return ("GRU", p["kernel"].T, p["recurrent_kernel"].T, np.concatenate([p["bias"], recurrent_bias]),
                {"linear_before_reset": int(layer.reset_after)})
    return "RNN", p["kernel"].T, p["recurrent_kernel"].T, np.concatenate([p["bias"], np.zeros_like(p["bias"])]), {}


def _run(g, hint, layers, x, mask, direction):
    """Y (T, D, B, U) and Y_h (D, B, U) of the operator over x (B, T, F)."""
    op, *_ , attributes = onnx_weights(layers[0])
    parts = [onnx_weights(layer) for layer in layers]
    w = g.const(np.stack([p[1] for p in parts]), f"{hint}/W")
    r = g.const(np.stack([p[2] for p in parts]), f"{hint}/R")
    b = g.const(np.stack([p[3] for p in parts]), f"{hint}/B")
    xt = g.op("Transpose", [x], hint, perm=[1, 0, 2])                       # (T, B, F)
    lengths = ""
    if mask is not None:
        lengths = g.op("Cast", [g.op("ReduceSum", [g.op("Cast", [mask], hint, to=6),
                                                   g.ints([1], f"{hint}/steps")], hint, keepdims=0)],
                       hint, to=6)                                          # (B,) int32
    outputs = 3 if op == "LSTM" else 2
    y, y_h, *_ = g.op(op, [xt, w, r, b, lengths], hint, outputs=outputs, direction=direction,
                      hidden_size=layers[0].units, **attributes)
    return y, y_h


def _carried(g, hint, y, y_h, mask):
    """Y (T, B, U) with the padded steps holding the last real step's state (dltrain's output)."""
    if mask is None:
        return y
    steps = g.op("Unsqueeze", [g.op("Transpose", [mask], hint, perm=[1, 0]), g.ints([2], f"{hint}/axis")], hint)
    return g.op("Where", [steps, y, y_h], hint)                              # (T, B, 1) ? (T, B, U) : (1, B, U)


def _reverse_time(g, hint, x, axis):
    return g.op("Slice", [x, g.ints([-1], f"{hint}/start"), g.ints([-(2 ** 62)], f"{hint}/end"),
                          g.ints([axis], f"{hint}/axis"), g.ints([-1], f"{hint}/step")], hint)


def _direction_output(g, hint, layer, y, y_h, index, mask, carried):
    """One direction's output in dltrain's layout: (B, U), or (B, T, U) for return_sequences."""
    if not layer.return_sequences:
        return g.op("Squeeze", [g.op("Slice", [y_h, g.ints([index], f"{hint}/d0"), g.ints([index + 1], f"{hint}/d1"),
                                               g.ints([0], f"{hint}/daxis")], hint),
                                g.ints([0], f"{hint}/squeeze")], hint)
    steps = g.op("Squeeze", [g.op("Slice", [y, g.ints([index], f"{hint}/s0"), g.ints([index + 1], f"{hint}/s1"),
                                            g.ints([1], f"{hint}/saxis")], hint),
                             g.ints([1], f"{hint}/ssqueeze")], hint)         # (T, B, U)
    if carried:
        last = g.op("Slice", [y_h, g.ints([index], f"{hint}/h0"), g.ints([index + 1], f"{hint}/h1"),
                              g.ints([0], f"{hint}/haxis")], hint)           # (1, B, U)
        steps = _carried(g, hint, steps, last, mask)
    return g.op("Transpose", [steps], hint, perm=[1, 0, 2])                  # (B, T, U)


def convert_recurrent(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    direction = "reverse" if layer.go_backwards else "forward"
    y, y_h = _run(g, node.name, [layer], x, mask, direction)
    carried = not (layer.go_backwards or layer.zero_output_for_mask)
    out = _direction_output(g, node.name, layer, y, y_h, 0, mask, carried)
    if layer.go_backwards and layer.return_sequences:
        out = _reverse_time(g, node.name, out, 1)      # dltrain's output runs in reading order
    return out, (mask if layer.return_sequences else None)     # unreversed with go_backwards, as Keras


def convert_bidirectional(g, node, x, in_shape, out_shape, mask):
    from dltrain.errors import ConfigError

    layer = node.layer
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if fwd.go_backwards:
        raise ConfigError(f"layer '{node.name}' (bidirectional over a go_backwards layer) cannot be exported to ONNX",
                          fix="drop go_backwards from the wrapped layer (bidirectional reads both ways already).")
    y, y_h = _run(g, node.name, [fwd, bwd], x, mask, "bidirectional")
    y_f = _direction_output(g, node.name, fwd, y, y_h, 0, mask, carried=not fwd.zero_output_for_mask)
    y_b = _direction_output(g, node.name, fwd, y, y_h, 1, mask, carried=False)
    mode = layer.merge_mode
    if mode == "concat":
        out = g.op("Concat", [y_f, y_b], node.name, axis=-1)
    elif mode == "mul":
        out = g.op("Mul", [y_f, y_b], node.name)
    else:
        out = g.op("Add", [y_f, y_b], node.name)
        out = g.mul(out, 0.5, node.name) if mode == "ave" else out
    return out, (mask if fwd.return_sequences else None)
