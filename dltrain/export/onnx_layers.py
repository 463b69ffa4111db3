"""ONNX converters of the layers, one function per registered name: the converter table.

A converter is ``convert(g, node, x, in_shape, out_shape, mask) -> (y, mask)``: ``x`` is the name
of the input tensor (a list for merges), shapes exclude the batch axis, and ``mask`` is the
name of a (batch, steps) bool tensor, or None, as the layer's ``compute_mask`` would give.
Each reproduces the layer's inference forward exactly (the same operations in the same order
where rounding could differ). This module holds the core, normalization, merge and sequence
layers and the dispatch; convolutions and pooling are in onnx_convolution.py, activations in
onnx_activations.py, recurrent layers in onnx_recurrent.py.
"""
import numpy as np

from dltrain.export import onnx_convolution
from dltrain.export.onnx_activations import ACTIVATIONS, activation  # noqa: F401 (the table, for callers)
from dltrain.export.onnx_graph import registrar

CONVERTERS = dict(onnx_convolution.CONVERTERS)
converts = registrar(CONVERTERS)


@converts("activation")
def _activation(g, node, x, in_shape, out_shape, mask):
    return activation(g, node.layer.function, x, node.name), mask


@converts("dense")
def _dense(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    y = g.op("MatMul", [x, g.const(layer.params["kernel"], f"{node.name}/kernel")], node.name)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(layer.params["bias"], f"{node.name}/bias")], node.name)
    return y, mask


@converts("dropout", "spatial_dropout2d")
def _identity(g, node, x, in_shape, out_shape, mask):
    return x, mask                                   # inference: nothing to do, no node


@converts("flatten")
def _flatten(g, node, x, in_shape, out_shape, mask):
    return g.op("Flatten", [x], node.name, axis=1), None


@converts("reshape")
def _reshape(g, node, x, in_shape, out_shape, mask):
    return g.op("Reshape", [x, g.ints([0, *out_shape], f"{node.name}/shape")], node.name), mask


@converts("rescaling")
def _rescaling(g, node, x, in_shape, out_shape, mask):
    y = g.mul(x, node.layer.scale, node.name)
    return (g.add(y, node.layer.offset, node.name) if node.layer.offset else y), mask


@converts("zero_padding2d")
def _zero_padding(g, node, x, in_shape, out_shape, mask):
    (top, bottom), (left, right) = node.layer._pads
    pads = g.ints([0, top, left, 0, 0, bottom, right, 0], f"{node.name}/pads")
    return g.op("Pad", [x, pads], node.name), mask


@converts("up_sampling2d")
def _up_sampling(g, node, x, in_shape, out_shape, mask):
    h, w, c = in_shape
    sh, sw = node.layer._size
    y = g.op("Reshape", [x, g.ints([0, h, 1, w, 1, c], f"{node.name}/split")], node.name)
    y = g.op("Expand", [y, g.ints([1, 1, sh, 1, sw, 1], f"{node.name}/repeat")], node.name)
    return g.op("Reshape", [y, g.ints([0, *out_shape], f"{node.name}/join")], node.name), mask


@converts("time_distributed")
def _time_distributed(g, node, x, in_shape, out_shape, mask):
    inner = node.layer.inner
    flat = g.op("Reshape", [x, g.ints([-1, *in_shape[1:]], f"{node.name}/merge")], node.name)
    y, _ = convert_layer(g, _Inner(node.name, inner), flat, tuple(in_shape[1:]), tuple(out_shape[1:]), None)
    steps = in_shape[0]
    return g.op("Reshape", [y, g.ints([-1, steps, *out_shape[1:]], f"{node.name}/split")], node.name), mask


class _Inner:
    def __init__(self, name, layer):
        self.name, self.layer = f"{name}/{layer.registered_name}", layer


# -- normalization ---------------------------------------------------------------------------

@converts("batch_normalization")
def _batch_normalization(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    mean, variance = layer.state["moving_mean"], layer.state["moving_variance"]
    inv_std = (1 / np.sqrt(variance + variance.dtype.type(layer.epsilon))).astype(variance.dtype)
    y = g.op("Sub", [x, g.const(mean, f"{node.name}/moving_mean")], node.name)
    y = g.op("Mul", [y, g.const(inv_std, f"{node.name}/inv_std")], node.name)
    return _affine(g, node, y), mask


def _affine(g, node, y):
    if node.layer.scale:
        y = g.op("Mul", [y, g.const(node.layer.params["gamma"], f"{node.name}/gamma")], node.name)
    if node.layer.center:
        y = g.op("Add", [y, g.const(node.layer.params["beta"], f"{node.name}/beta")], node.name)
    return y


@converts("layer_normalization")
def _layer_normalization(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    mean = g.reduce("ReduceMean", x, [-1], node.name, keepdims=1)
    centred = g.op("Sub", [x, mean], node.name)
    variance = g.reduce("ReduceMean", g.op("Mul", [centred, centred], node.name), [-1], node.name, keepdims=1)
    inv_std = g.op("Reciprocal", [g.op("Sqrt", [g.add(variance, layer.epsilon, node.name)], node.name)], node.name)
    return _affine(g, node, g.op("Mul", [centred, inv_std], node.name)), mask


# -- merges ----------------------------------------------------------------------------------

def _merge_masks(g, node, masks):
    masks = [m for m in masks if m is not None]
    mask = masks[0] if masks else None
    for m in masks[1:]:
        mask = g.op("And", [mask, m], node.name)
    return mask


def _elementwise(op):
    """The converter of a merge that folds its inputs with one binary ONNX operator."""
    def convert(g, node, xs, in_shapes, out_shape, masks):
        y = xs[0]
        for x in xs[1:]:
            y = g.op(op, [y, x], node.name)
        return y, _merge_masks(g, node, masks)
    return convert


converts("add")(_elementwise("Add"))
converts("multiply")(_elementwise("Mul"))


@converts("concatenate")
def _concatenate(g, node, xs, in_shapes, out_shape, masks):
    axis = node.layer._axis
    return g.op("Concat", xs, node.name, axis=axis), (None if axis == 1 else _merge_masks(g, node, masks))


# -- sequences -------------------------------------------------------------------------------

@converts("embedding")
def _embedding(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    ids = g.op("Cast", [x], node.name, to=7)                  # int64, truncating as astype(intp)
    y = g.op("Gather", [g.const(layer.params["embeddings"], f"{node.name}/embeddings"), ids], node.name, axis=0)
    if layer.mask_zero:
        mask = g.op("Not", [g.op("Equal", [ids, g.const(np.int64(0), f"{node.name}/padding")], node.name)],
                    node.name)
    return y, mask


@converts("masking")
def _masking(g, node, x, in_shape, out_shape, mask):
    differs = g.op("Not", [g.op("Equal", [x, g.const(node.layer.mask_value, f"{node.name}/value")], node.name)],
                   node.name)
    as_number = g.op("Cast", [differs], node.name, to=g.type_code)
    keep = g.reduce("ReduceMax", as_number, [-1], node.name, keepdims=1)         # (B, T, 1)
    own = g.op("Cast", [g.op("Squeeze", [keep, g.ints([-1], f"{node.name}/axis")], node.name)], node.name, to=9)
    y = g.op("Mul", [x, keep], node.name)
    return y, (own if mask is None else g.op("And", [own, mask], node.name))


# -- dispatch --------------------------------------------------------------------------------

RECURRENT = {"simple_rnn", "lstm", "gru"}


def convert_layer(g, node, x, in_shape, out_shape, mask):
    """The output (and mask) of one layer node; an error names a layer that cannot be exported."""
    from dltrain.errors import ConfigError
    from dltrain.export import onnx_recurrent

    name = node.layer.registered_name
    if name in RECURRENT:
        return onnx_recurrent.convert_recurrent(g, node, x, in_shape, out_shape, mask)
    if name == "bidirectional":
        return onnx_recurrent.convert_bidirectional(g, node, x, in_shape, out_shape, mask)
    if name not in CONVERTERS:
        exportable = sorted({*CONVERTERS, *RECURRENT, "bidirectional"})
        raise ConfigError(f"layer '{node.name}' ({name}) cannot be exported to ONNX",
                          expected="one of " + ", ".join(exportable),
                          fix="export a model without it, or write its converter in dltrain/export/onnx_layers.py.")
    return CONVERTERS[name](g, node, x, in_shape, out_shape, mask)
