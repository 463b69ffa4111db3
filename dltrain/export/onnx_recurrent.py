"""ONNX converters of simple_rnn, lstm, gru and bidirectional, as the RNN, LSTM and GRU operators.

Gate orders: Keras (and dltrain's saved parameters) keep LSTM blocks as i, f, c, o; ONNX's LSTM
wants i, o, f, c. GRU blocks are z, r, h in both; dltrain's ``reset_after`` (Keras's default)
is ONNX's ``linear_before_reset = 1`` with the recurrent bias as ONNX's Rb, and without it the
recurrent bias is zero. ONNX kernels are (directions, gates * units, features), transposed.

Masks: a masked step leaves dltrain's state unchanged, wherever it is. The operators take
``sequence_lens`` instead, the number of real steps counted from the front, so each sample's
real steps are first moved to the front in order (TopK of a key that sorts masked steps last,
then GatherElements): the last states are then exactly dltrain's, for any mask. With
``return_sequences`` each input step t takes the state of the operator's step that dltrain holds
there: forward, that of the last real step up to t; backward, that of the first real step from t
on (zeros before any), or zeros at masked steps with ``zero_output_for_mask``. The output mask of
a go_backwards layer is its input mask, unreversed, as in dltrain and Keras.
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
    """Y (T, D, B, U) and Y_h (D, B, U) of the operator over x (B, T, F), its real steps first."""
    op, *_ , attributes = onnx_weights(layers[0])
    parts = [onnx_weights(layer) for layer in layers]
    w = g.const(np.stack([p[1] for p in parts]), f"{hint}/W")
    r = g.const(np.stack([p[2] for p in parts]), f"{hint}/R")
    b = g.const(np.stack([p[3] for p in parts]), f"{hint}/B")
    lengths = ""
    if mask is not None:
        x = _real_steps_first(g, hint, x, mask)
        lengths = g.op("Cast", [g.op("ReduceSum", [g.op("Cast", [mask], hint, to=6),
                                                   g.ints([1], f"{hint}/steps")], hint, keepdims=0)],
                       hint, to=6)                                          # (B,) int32
    xt = g.op("Transpose", [x], hint, perm=[1, 0, 2])                       # (T, B, F)
    outputs = 3 if op == "LSTM" else 2
    y, y_h, *_ = g.op(op, [xt, w, r, b, lengths], hint, outputs=outputs, direction=direction,
                      hidden_size=layers[0].units, **attributes)
    return y, y_h


def _real_steps_first(g, hint, x, mask):
    """x (B, T, F) with each sample's real steps moved to the front, in their order."""
    steps = _steps(g, hint, mask)
    real = g.op("Cast", [mask], hint, to=7)                                  # (B, T) int64, 1 real
    position = g.op("Range", [g.const(np.int64(0), f"{hint}/zero"), steps, g.const(np.int64(1), f"{hint}/one")], hint)
    key = g.op("Add", [g.op("Mul", [g.op("Sub", [g.const(np.int64(1), f"{hint}/one"), real], hint), steps], hint),
                       position], hint)                                       # masked steps sort last
    _, order = g.op("TopK", [key, g.op("Unsqueeze", [steps, g.ints([0], f"{hint}/axis0")], hint)], hint, outputs=2,
                    axis=1, largest=0, sorted=1)                             # (B, T)
    index = g.op("Expand", [g.op("Unsqueeze", [order, g.ints([2], f"{hint}/axis2")], hint),
                            g.op("Shape", [x], hint)], hint)
    return g.op("GatherElements", [x, index], hint, axis=1)


def _steps(g, hint, mask):
    return g.op("Squeeze", [g.op("Shape", [mask], hint, start=1, end=2)], hint)    # T, int64 scalar


def _at_input_steps(g, hint, steps, mask, backward, zero_masked):
    """(B, T, U) from one direction's operator output ``steps`` (T, B, U) over the real steps
    moved first: at input step t, the state dltrain holds there (see the module's docstring)."""
    real = g.op("Cast", [mask], hint, to=7)                                  # (B, T)
    if backward:       # the operator's step of the first real step from t on
        index = g.op("CumSum", [real, g.ints(1, f"{hint}/axis")], hint, exclusive=1)
        count = g.op("ReduceSum", [real, g.ints([1], f"{hint}/steps")], hint, keepdims=1)     # (B, 1)
        valid = g.op("Less", [index, count], hint)
    else:              # the operator's step of the last real step up to t
        index = g.op("Sub", [g.op("CumSum", [real, g.ints(1, f"{hint}/axis")], hint),
                             g.const(np.int64(1), f"{hint}/one")], hint)
        valid = g.op("GreaterOrEqual", [index, g.const(np.int64(0), f"{hint}/zero")], hint)
    if zero_masked:
        valid = g.op("And", [valid, mask], hint)
    last = g.op("Sub", [_steps(g, hint, mask), g.const(np.int64(1), f"{hint}/one")], hint)
    index = g.op("Min", [g.op("Max", [index, g.const(np.int64(0), f"{hint}/zero")], hint), last], hint)
    ordered = g.op("Transpose", [steps], hint, perm=[1, 0, 2])               # (B, T, U)
    index = g.op("Expand", [g.op("Unsqueeze", [index, g.ints([2], f"{hint}/axis2")], hint),
                            g.op("Shape", [ordered], hint)], hint)
    picked = g.op("GatherElements", [ordered, index], hint, axis=1)
    keep = g.op("Unsqueeze", [g.op("Cast", [valid], hint, to=g.type_code), g.ints([2], f"{hint}/axis2")], hint)
    return g.op("Mul", [picked, keep], hint)                                 # 0 where nothing is held


def _reverse_time(g, hint, x, axis):
    return g.op("Slice", [x, g.ints([-1], f"{hint}/start"), g.ints([-(2 ** 62)], f"{hint}/end"),
                          g.ints([axis], f"{hint}/axis"), g.ints([-1], f"{hint}/step")], hint)


def _direction_output(g, hint, layer, y, y_h, index, mask, backward, zero_masked):
    """One direction's output in dltrain's layout: (B, U), or (B, T, U) for return_sequences."""
    if not layer.return_sequences:
        return g.op("Squeeze", [g.op("Slice", [y_h, g.ints([index], f"{hint}/d0"), g.ints([index + 1], f"{hint}/d1"),
                                               g.ints([0], f"{hint}/daxis")], hint),
                                g.ints([0], f"{hint}/squeeze")], hint)
    steps = g.op("Squeeze", [g.op("Slice", [y, g.ints([index], f"{hint}/s0"), g.ints([index + 1], f"{hint}/s1"),
                                            g.ints([1], f"{hint}/saxis")], hint),
                             g.ints([1], f"{hint}/ssqueeze")], hint)         # (T, B, U)
    if mask is not None:
        return _at_input_steps(g, hint, steps, mask, backward, zero_masked)
    return g.op("Transpose", [steps], hint, perm=[1, 0, 2])                  # (B, T, U)


def convert_recurrent(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    direction = "reverse" if layer.go_backwards else "forward"
    y, y_h = _run(g, node.name, [layer], x, mask, direction)
    out = _direction_output(g, node.name, layer, y, y_h, 0, mask, layer.go_backwards, layer.zero_output_for_mask)
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
    y_f = _direction_output(g, node.name, fwd, y, y_h, 0, mask, False, fwd.zero_output_for_mask)
    y_b = _direction_output(g, node.name, fwd, y, y_h, 1, mask, True, bwd.zero_output_for_mask)
    mode = layer.merge_mode
    if mode == "concat":
        out = g.op("Concat", [y_f, y_b], node.name, axis=-1)
    elif mode == "mul":
        out = g.op("Mul", [y_f, y_b], node.name)
    else:
        out = g.op("Add", [y_f, y_b], node.name)
        out = g.mul(out, 0.5, node.name) if mode == "ave" else out
    return out, (mask if fwd.return_sequences else None)
