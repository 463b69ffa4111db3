"""ONNX converters of the activations: ``convert(g, function, x, hint) -> y``, one per registered name.

Used by the ``activation`` layer, by every layer's ``activation:`` argument, and for the output
activation a loss fused (predict reports probabilities).
"""
import math

from dltrain.export.onnx_graph import registrar

ACTIVATIONS = {}
converts = registrar(ACTIVATIONS)


@converts("linear")
def _linear(g, f, x, hint):
    return x


@converts("relu", "sigmoid", "tanh", "softplus")
def _elementwise(g, f, x, hint):
    op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}[f.registered_name]
    return g.op(op, [x], hint)


@converts("leaky_relu")
def _leaky(g, f, x, hint):
    return g.op("LeakyRelu", [x], hint, alpha=float(f.negative_slope))


@converts("elu")
def _elu(g, f, x, hint):
    return g.op("Elu", [x], hint, alpha=float(f.alpha))


@converts("selu")
def _selu(g, f, x, hint):
    return g.op("Selu", [x], hint, alpha=float(f.alpha), gamma=float(f.scale))


@converts("softmax")
def _softmax(g, f, x, hint):
    return g.op("Softmax", [x], hint, axis=-1)


@converts("swish")
def _swish(g, f, x, hint):
    return g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint)


@converts("gelu")
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
