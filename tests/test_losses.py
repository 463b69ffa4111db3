"""Losses at hand-computed values (gradients: test_registry_contract.py)."""
import math

import numpy as np
import pytest

from dltrain.errors import DataError
from dltrain.registry import build


def test_regression_losses():
    pred = np.array([[1.0, 2.0], [3.0, 0.0]])
    target = np.array([[0.0, 2.0], [1.0, 2.5]])              # differences 1, 0, 2, -2.5
    assert build("loss", "mse").forward(pred, target) == pytest.approx((1 + 0 + 4 + 6.25) / 4)
    assert build("loss", "mae").forward(pred, target) == pytest.approx((1 + 0 + 2 + 2.5) / 4)
    # delta 1: 0.5, 0, 1 * (2 - 0.5), 1 * (2.5 - 0.5)
    assert build("loss", "huber").forward(pred, target) == pytest.approx((0.5 + 0 + 1.5 + 2) / 4)
    weights = np.array([1.0, 3.0])
    assert build("loss", "mse").forward(pred, target, weights) == pytest.approx((0.5 + 3 * 5.125) / 2)


def test_cross_entropies():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    expected = -(math.log(0.7) + math.log(0.8)) / 2
    assert build("loss", "sparse_categorical_crossentropy").forward(p, np.array([0, 2])) == \
        pytest.approx(expected)
    assert build("loss", "categorical_crossentropy").forward(p, np.eye(3)[[0, 2]]) == \
        pytest.approx(expected)
    q = np.array([[0.9], [0.2]])
    assert build("loss", "binary_crossentropy").forward(q, np.array([1, 0])) == \
        pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    z = np.array([[2.0], [-1.0]])
    assert build("loss", {"type": "binary_crossentropy", "from_logits": True}).forward(
        z, np.array([1, 1])) == pytest.approx((math.log1p(math.exp(-2)) + math.log1p(math.exp(1))) / 2)


def test_label_smoothing():
    p = np.array([[0.7, 0.2, 0.1]])
    smoothed = np.array([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    loss = build("loss", {"type": "categorical_crossentropy", "label_smoothing": 0.1})
    assert loss.forward(p, np.eye(3)[[0]]) == pytest.approx(-(smoothed * np.log(p[0])).sum())
    sparse = build("loss", {"type": "sparse_categorical_crossentropy", "label_smoothing": 0.1})
    assert sparse.forward(p, np.array([0])) == pytest.approx(-(smoothed * np.log(p[0])).sum())


def test_labels_outside_the_classes_are_data_errors():
    with pytest.raises(DataError, match="outside the model's 3 classes"):
        build("loss", "sparse_categorical_crossentropy").forward(np.full((2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(DataError):
        build("loss", "mse").forward(np.zeros((4, 2)), np.zeros(3))
