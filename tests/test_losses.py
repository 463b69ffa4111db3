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


@pytest.mark.parametrize("name, target", [("categorical_crossentropy", np.eye(2)[[0, 1]]),
                                          ("sparse_categorical_crossentropy", np.array([0, 1]))])
def test_categorical_probabilities_are_renormalised_then_clipped(name, target):
    """Keras divides probabilities by their sum over the classes, then clips them to
    [eps, 1 - eps] (issue 17, 4): rows that do not sum to 1 give Keras's loss, rows that do
    give Keras's gradient (the normalisation's Jacobian adds a constant per row)."""
    loss = build("loss", name)
    pred = np.array([[0.3, 0.3], [0.25, 0.75]])                  # the first row sums to 0.6
    assert loss.forward(pred, target) == pytest.approx((math.log(2) - math.log(0.75)) / 2)
    # row 2 sums to 1: d/dp of -log(p_1 / (p_0 + p_1)) at (0.25, 0.75) is (1, 1 - 1 / 0.75)
    np.testing.assert_allclose(loss.backward()[1], np.array([1, 1 - 1 / 0.75]) / 2)
    # a certain row is clipped at 1 - eps: (almost) no loss and no gradient, as Keras
    certain = np.array([[1.0, 0.0]])
    assert loss.forward(certain, target[:1]) == pytest.approx(-math.log1p(-1e-7))
    np.testing.assert_array_equal(loss.backward(), 0)


def test_categorical_probability_gradients_match_finite_differences():
    from dltrain.gradcheck import numeric_gradient, relative_error

    rng = np.random.default_rng(0)
    pred = rng.uniform(0.05, 1.0, (4, 3))                       # rows summing to anything
    for name, target in [("categorical_crossentropy", rng.dirichlet(np.ones(3), 4)),
                         ("sparse_categorical_crossentropy", np.array([0, 2, 1, 1]))]:
        for smoothing in (0.0, 0.2):
            loss = build("loss", {"type": name, "label_smoothing": smoothing})
            loss.forward(pred, target)
            analytic = loss.backward()
            numeric = numeric_gradient(lambda: loss.forward(pred, target), pred)
            assert relative_error(analytic, numeric) < 1e-6, (name, smoothing)


def test_binary_crossentropy_has_no_gradient_where_the_clip_cuts():
    """Keras's gradient is 0 where p < eps or p > 1 - eps; it was the gradient at the clipped
    point, about -1e7 (issue 17, 5)."""
    loss = build("loss", "binary_crossentropy")
    pred = np.array([[1e-9], [1 - 1e-9], [0.5]])
    loss.forward(pred, np.array([1, 0, 1]))
    np.testing.assert_allclose(loss.backward()[:, 0], [0, 0, -2 / 3])
