"""ONNX converters of the layers and activations, one function per registered name.

A converter is ``convert(g, node, x, in_shape, out_shape, mask) -> (y, mask)``: ``x`` is the name
of the input tensor (a list for merges), shapes exclude the batch axis, and ``mask`` is the
name of a (batch, steps) bool tensor, or None, as the layer's ``compute_mask`` would give.
Each reproduces the layer's inference forward exactly (the same operations in the same order
where rounding could differ); recurrent converters are in onnx_recurrent.py.
"""
import math

import numpy as np

from dltrain.layers import im2col as windows

CONVERTERS = {}
ACTIVATIONS = {}


def converts(*names, table=CONVERTERS):
    def decorate(function):
        for name in names:
            table[name] = function
        return function
    return decorate


# -- activations: (g, function, x, hint) -> y -------------------------------------------------

@converts("linear", table=ACTIVATIONS)
def _linear(g, f, x, hint):
    return x


@converts("relu", "sigmoid", "tanh", "softplus", table=ACTIVATIONS)
def _elementwise(g, f, x, hint):
    op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}[f.registered_name]
    return g.op(op, [x], hint)


@converts("leaky_relu", table=ACTIVATIONS)
def _leaky(g, f, x, hint):
    return g.op("LeakyRelu", [x], hint, alpha=float(f.negative_slope))


@converts("elu", table=ACTIVATIONS)
def _elu(g, f, x, hint):
    return g.op("Elu", [x], hint, alpha=float(f.alpha))


@converts("selu", table=ACTIVATIONS)
def _selu(g, f, x, hint):
    return g.op("Selu", [x], hint, alpha=float(f.alpha), gamma=float(f.scale))


@converts("softmax", table=ACTIVATIONS)
def _softmax(g, f, x, hint):
    return g.op("Softmax", [x], hint, axis=-1)


@converts("swish", table=ACTIVATIONS)
def _swish(g, f, x, hint):
    return g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint)


@converts("gelu", table=ACTIVATIONS)
def _gelu(g, f, x, hint):
    if f.approximate:          # 0.5 x (1 + tanh(c (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x], hint), x], hint)
        inner = g.mul(g.op("Add", [x, g.mul(cube, 0.044715, hint)], hint), math.sqrt(2 / math.pi), hint)
        half = g.mul(g.add(g.op("Tanh", [inner], hint), 1.0, hint), 0.5, hint)
    else:                      # x * 0.5 (1 + erf(x / sqrt 2))
        half = g.mul(g.add(g.op("Erf", [g.mul(x, 1 / math.sqrt(2), hint)], hint), 1.0, hint), 0.5, hint)
    return g.op("Mul", [x, half], hint)


def activation(g, function, x, hint):
    from dltrain.errors import ConfigError

    name = function.registered_name
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r} cannot be exported to ONNX",
                          fix=f"exportable activations: {', '.join(sorted(ACTIVATIONS))}.")
    return ACTIVATIONS[name](g, function, x, hint)


# -- core ------------------------------------------------------------------------------------

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


# -- convolutions ----------------------------------------------------------------------------

def _pads(layer, hw, kernel, strides, dilation, padding):
    """ONNX pads [begin..., end...] for dltrain's padding of an input of ``hw``."""
    _, pads = windows.output_size(layer, hw, kernel, strides, dilation, padding)
    return [p[0] for p in pads] + [p[1] for p in pads]


def _spatial(layer, in_shape):
    """(rank, hw) of a conv or pooling input: conv1d works on (1, T) images inside dltrain."""
    return (2, tuple(in_shape[:2])) if layer.rank == 2 else (1, (1, in_shape[0]))


def _conv_attributes(layer, in_shape, kernel, strides, dilation):
    rank, hw = _spatial(layer, in_shape)
    pads = _pads(layer, hw, kernel, strides, dilation, layer.padding)
    if rank == 1:
        kernel, strides, dilation, pads = kernel[1:], strides[1:], dilation[1:], [pads[1], pads[3]]
    return rank, {"strides": list(strides), "dilations": list(dilation), "pads": pads}


@converts("conv2d", "conv1d")
def _conv(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    kernel, strides, dilation = layer._window()
    rank, attributes = _conv_attributes(layer, in_shape, kernel, strides, dilation)
    w = layer.params["kernel"]                         # (kh, kw, C, F) or (k, C, F)
    w = w.transpose(3, 2, 0, 1) if rank == 2 else w.transpose(2, 1, 0)
    inputs = [g.channels_first(x, rank, node.name), g.const(w, f"{node.name}/kernel")]
    if layer.use_bias:
        inputs.append(g.const(layer.params["bias"], f"{node.name}/bias"))
    y = g.op("Conv", inputs, node.name, **attributes)
    return g.channels_last(y, rank, node.name), mask


@converts("conv2d_transpose")
def _conv_transpose(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    h, w, _ = in_shape
    out, before, full = layer._geometry(h, w)
    natural = [(n - 1) * s + d * (k - 1) + 1
               for n, k, s, d in zip((h, w), layer._kernel, layer._strides, layer._dilation)]
    extra = [f - n for f, n in zip(full, natural)]      # zeros col2im adds past the last tap
    pads = [*before, *(f - b - o for f, b, o in zip(full, before, out))]   # crop of full
    weights = layer.params["kernel"].transpose(3, 2, 0, 1)   # (kh, kw, F, C) -> (C, F, kh, kw)
    inputs = [g.channels_first(x, 2, node.name), g.const(weights, f"{node.name}/kernel")]
    if layer.use_bias:
        inputs.append(g.const(layer.params["bias"], f"{node.name}/bias"))
    y = g.op("ConvTranspose", inputs, node.name, strides=list(layer._strides),
             dilations=list(layer._dilation), pads=pads, output_padding=extra)
    return g.channels_last(y, 2, node.name), mask


def _depthwise_conv(g, node, x_first, in_shape, use_bias):
    layer = node.layer
    kernel = layer.params["depthwise_kernel"]          # (kh, kw, C, M): channel c*M + m
    kh, kw, c, m = kernel.shape
    weights = kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]   # (C*M, 1, kh, kw)
    pads = _pads(layer, tuple(in_shape[:2]), layer._kernel, layer._strides, layer._dilation, layer.padding)
    inputs = [x_first, g.const(weights, f"{node.name}/depthwise_kernel")]
    if use_bias:
        inputs.append(g.const(layer.params["bias"], f"{node.name}/bias"))
    return g.op("Conv", inputs, node.name, group=c, strides=list(layer._strides),
                dilations=list(layer._dilation), pads=pads)


@converts("depthwise_conv2d")
def _depthwise(g, node, x, in_shape, out_shape, mask):
    y = _depthwise_conv(g, node, g.channels_first(x, 2, node.name), in_shape, node.layer.use_bias)
    return g.channels_last(y, 2, node.name), mask


@converts("separable_conv2d")
def _separable(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    mid = _depthwise_conv(g, node, g.channels_first(x, 2, node.name), in_shape, False)
    pointwise = layer.params["pointwise_kernel"].transpose(3, 2, 0, 1)   # (1, 1, CM, F) -> (F, CM, 1, 1)
    inputs = [mid, g.const(pointwise, f"{node.name}/pointwise_kernel")]
    if layer.use_bias:
        inputs.append(g.const(layer.params["bias"], f"{node.name}/bias"))
    return g.channels_last(g.op("Conv", inputs, node.name), 2, node.name), mask


# -- pooling ---------------------------------------------------------------------------------

@converts("max_pooling2d", "average_pooling2d", "max_pooling1d", "average_pooling1d")
def _pooling(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    rank, attributes = _conv_attributes(layer, in_shape, layer._pool, layer._strides, (1, 1))
    del attributes["dilations"]
    pool = list(layer._pool) if rank == 2 else [layer._pool[1]]
    op = "MaxPool" if layer.registered_name.startswith("max") else "AveragePool"
    if op == "AveragePool":
        attributes["count_include_pad"] = 0              # `same` windows average the inside only
    y = g.op(op, [g.channels_first(x, rank, node.name)], node.name, kernel_shape=pool, **attributes)
    return g.channels_last(y, rank, node.name), mask


@converts("global_average_pooling2d", "global_max_pooling2d", "global_max_pooling1d")
def _global_pooling(g, node, x, in_shape, out_shape, mask):
    layer = node.layer
    op = "ReduceMax" if "max" in layer.registered_name else "ReduceMean"
    axes = [1, 2] if layer.rank == 2 else [1]
    return g.reduce(op, x, axes, node.name, keepdims=int(layer.keepdims)), None


@converts("global_average_pooling1d")
def _global_average_1d(g, node, x, in_shape, out_shape, mask):
    if mask is None:
        return _global_pooling(g, node, x, in_shape, out_shape, mask)
    keepdims = int(node.layer.keepdims)
    m = g.op("Unsqueeze", [g.op("Cast", [mask], node.name, to=_onnx_type(g.dtype)),
                           g.ints([2], f"{node.name}/axis")], node.name)           # (B, T, 1)
    count = g.op("Max", [g.op("ReduceSum", [m, g.ints([1], f"{node.name}/steps")], node.name, keepdims=1),
                         g.const(1.0, f"{node.name}/one")], node.name)             # (B, 1, 1)
    weights = g.op("Div", [m, count], node.name)
    total = g.op("ReduceSum", [g.op("Mul", [x, weights], node.name), g.ints([1], f"{node.name}/sum")],
                 node.name, keepdims=keepdims)
    return total, None


def _onnx_type(dtype):
    from dltrain.export.protobuf import DATA_TYPES

    return DATA_TYPES[np.dtype(dtype)]


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
    as_number = g.op("Cast", [differs], node.name, to=_onnx_type(g.dtype))
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
