"""ONNX converters of the convolution and pooling layers (Conv, ConvTranspose, MaxPool,
AveragePool and the global reductions), with dltrain's padding written as explicit pads.

dltrain keeps images channels last; each converter wraps its operator in Transpose nodes to
channels first and back. conv1d and the 1-D poolings work on (1, T) images inside dltrain and
are written as 1-D operators here. Converters as in onnx_layers.py.
"""
import numpy as np

from dltrain.export.onnx_graph import registrar
from dltrain.layers import im2col as windows

CONVERTERS = {}
converts = registrar(CONVERTERS)


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
    m = g.op("Unsqueeze", [g.op("Cast", [mask], node.name, to=g.type_code),
                           g.ints([2], f"{node.name}/axis")], node.name)           # (B, T, 1)
    count = g.op("Max", [g.op("ReduceSum", [m, g.ints([1], f"{node.name}/steps")], node.name, keepdims=1),
                         g.const(1.0, f"{node.name}/one")], node.name)             # (B, 1, 1)
    weights = g.op("Div", [m, count], node.name)
    total = g.op("ReduceSum", [g.op("Mul", [x, weights], node.name), g.ints([1], f"{node.name}/sum")],
                 node.name, keepdims=keepdims)
    return total, None
