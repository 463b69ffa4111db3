"""Activations at hand-computed points (their gradients are checked over the registry in
test_registry_contract.py)."""
import math

import numpy as np
import pytest

from dltrain.registry import build

X = np.array([-2.0, -0.5, 0.5, 3.0])


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("spec, expected", [
    ("linear", X),
    ("relu", [0, 0, 0.5, 3]),
    ({"type": "leaky_relu", "negative_slope": 0.1}, [-0.2, -0.05, 0.5, 3]),
    ("leaky_relu", [-0.4, -0.1, 0.5, 3]),                                   # Keras 3's default 0.2
    ("elu", [math.expm1(-2), math.expm1(-0.5), 0.5, 3]),
    ("selu", [1.0507009873554805 * 1.6732632423543772 * math.expm1(v) if v < 0
              else 1.0507009873554805 * v for v in X]),
    ("sigmoid", sigmoid(X)),
    ("tanh", np.tanh(X)),
    ("softplus", np.log1p(np.exp(X))),
    ("swish", X * sigmoid(X)),
    ("gelu", [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in X]),
    ({"type": "gelu", "approximate": True},
     [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))) for v in X]),
])
def test_values(spec, expected):
    np.testing.assert_allclose(build("activation", spec).forward(X.copy()), expected, rtol=1e-12)


def test_softmax_rows_sum_to_one_and_survive_huge_inputs():
    y = build("activation", "softmax").forward(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]]))
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(y[0], e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(y[1], [0.5, 0.5, 0.0], atol=1e-12)


def test_sigmoid_is_stable_far_from_zero():
    y = build("activation", "sigmoid").forward(np.array([-1000.0, 1000.0], dtype=np.float32))
    assert y.tolist() == [0.0, 1.0] and y.dtype == np.float32
