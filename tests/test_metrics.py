"""Metrics against values computed by hand (or, for AUC, by counting every pair)."""
import itertools

import numpy as np
import pytest

from dltrain.registry import build


def score(name, pred, target, batches=1, **arguments):
    """The metric's result after updates over ``batches`` slices of the data."""
    metric = build("metric", {"type": name, **arguments})
    pred, target = np.asarray(pred), np.asarray(target)
    for chunk in np.array_split(np.arange(len(pred)), batches):
        metric.update(pred[chunk], target[chunk])
    return metric.result()


PROBS = np.array([[0.7, 0.2, 0.1],      # predicts 0
                  [0.1, 0.5, 0.4],      # predicts 1
                  [0.3, 0.3, 0.4],      # predicts 2
                  [0.2, 0.6, 0.2]])     # predicts 1
LABELS = np.array([0, 2, 2, 1])         # right, wrong (2 is second), right, right


def test_accuracy_takes_the_label_format_from_the_shapes():
    assert score("accuracy", PROBS, LABELS) == pytest.approx(0.75)
    assert score("accuracy", PROBS, np.eye(3)[LABELS]) == pytest.approx(0.75)          # one-hot
    assert score("accuracy", [[0.9], [0.2], [0.6], [0.4]], [1, 0, 0, 0]) == pytest.approx(0.75)
    assert score("accuracy", PROBS, LABELS, batches=3) == pytest.approx(0.75)


def test_accuracy_variants():
    assert score("sparse_categorical_accuracy", PROBS, LABELS) == pytest.approx(0.75)
    assert score("categorical_accuracy", PROBS, np.eye(3)[LABELS]) == pytest.approx(0.75)
    # 6 outputs, 4 on the right side of 0.5
    pred = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.4]])
    target = np.array([[1, 1], [1, 0], [0, 0]])
    assert score("binary_accuracy", pred, target) == pytest.approx(4 / 6)
    assert score("binary_accuracy", pred, target, threshold=0.65) == pytest.approx(3 / 6)


def test_top_k_accuracy():
    assert score("top_k_accuracy", PROBS, LABELS, k=1) == pytest.approx(0.75)
    assert score("top_k_accuracy", PROBS, LABELS, k=2) == pytest.approx(1.0)
    assert score("top_k_accuracy", PROBS, np.array([2, 0, 1, 0]), k=2) == pytest.approx(0.5)
    assert score("top_k_accuracy", PROBS, np.eye(3)[[2, 0, 1, 0]], k=2) == pytest.approx(0.5)


def test_precision_recall_f1_binary():
    # tp = 2 (rows 0, 1), fp = 1 (row 2), fn = 1 (row 3), tn = 1 (row 4)
    pred = np.array([[0.9], [0.8], [0.7], [0.2], [0.1]])
    target = np.array([1, 1, 0, 1, 0])
    assert score("precision", pred, target) == pytest.approx(2 / 3)
    assert score("recall", pred, target) == pytest.approx(2 / 3)
    assert score("f1", pred, target) == pytest.approx(2 / 3)
    assert score("precision", pred, target, batches=2) == pytest.approx(2 / 3)
    target = np.array([1, 0, 0, 1, 0])                    # tp 1, fp 2, fn 1
    assert score("precision", pred, target) == pytest.approx(1 / 3)
    assert score("recall", pred, target) == pytest.approx(1 / 2)
    assert score("f1", pred, target) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_precision_recall_f1_macro_over_classes():
    # predicted 0, 1, 2, 1 vs true 0, 2, 2, 1: class 0 p=1 r=1; class 1 p=1/2 r=1; class 2 p=1 r=1/2
    assert score("precision", PROBS, LABELS) == pytest.approx((1 + 0.5 + 1) / 3)
    assert score("recall", PROBS, LABELS) == pytest.approx((1 + 1 + 0.5) / 3)
    f1 = [1, 2 * 0.5 / 1.5, 2 * 0.5 / 1.5]
    assert score("f1", PROBS, LABELS) == pytest.approx(np.mean(f1))


def _auc_by_pairs(scores, positive):
    """P(score of a positive > score of a negative), ties half: every pair counted."""
    pairs = list(itertools.product(scores[positive], scores[~positive]))
    return np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])


def test_auc_equals_the_brute_force_pair_count():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)                      # rounding makes ties
    positive = rng.random(60) < 0.4
    expected = _auc_by_pairs(scores, positive)
    assert score("auc", scores[:, None], positive.astype(int), batches=4) == pytest.approx(expected)
    # several classes: the mean of one-vs-rest AUCs
    probs = rng.random((50, 3))
    labels = rng.integers(0, 3, 50)
    expected = np.mean([_auc_by_pairs(probs[:, c], labels == c) for c in range(3)])
    assert score("auc", probs, labels) == pytest.approx(expected)
    assert score("auc", [[0.1], [0.4], [0.35], [0.8]], [0, 0, 1, 1]) == pytest.approx(0.75)


def test_regression_metrics():
    pred = np.array([[2.0], [0.0], [4.0], [1.0]])
    target = np.array([3.0, 0.0, 2.0, 1.0])                   # errors -1, 0, 2, 0
    assert score("mae", pred, target) == pytest.approx(3 / 4)
    assert score("mse", pred, target) == pytest.approx(5 / 4)
    assert score("rmse", pred, target, batches=2) == pytest.approx(np.sqrt(5 / 4))
    # r2 = 1 - ss_res / ss_tot, target mean 1.5: ss_tot = 2.25 + 2.25 + 0.25 + 0.25 = 5
    assert score("r2", pred, target, batches=3) == pytest.approx(1 - 5 / 5)
    assert score("r2", target[:, None] * 1.0, target) == pytest.approx(1.0)


def test_directions_and_empty_results():
    for name in ("mae", "mse", "rmse"):
        assert build("metric", name).direction == "min"
    for name in ("accuracy", "auc", "f1", "r2", "top_k_accuracy"):
        assert build("metric", name).direction == "max"
        assert np.isnan(build("metric", name).result())


def test_keras_arguments_of_precision_recall_f1():
    """Keras's conventions are one key away (issue 17, 7): an element-wise threshold (micro over
    every output), one class_id, and F1Score's averages."""
    # outputs above 0.5 (strictly): (0,0) and (3,1), both true; positives (0,0), (1,2), (2,2), (3,1)
    assert score("precision", PROBS, LABELS, thresholds=0.5) == pytest.approx(1.0)
    assert score("recall", PROBS, LABELS, thresholds=0.5) == pytest.approx(2 / 4)
    # above 0.35: (0,0), (1,1), (1,2), (2,2), (3,1): 4 of 5 true
    assert score("precision", PROBS, np.eye(3)[LABELS], thresholds=0.35) == pytest.approx(4 / 5)
    assert score("recall", PROBS, np.eye(3)[LABELS], thresholds=0.35) == pytest.approx(1.0)
    # class 1 at 0.35: predicted at rows 1 and 3, true at row 3
    assert score("precision", PROBS, LABELS, class_id=1, thresholds=0.35) == pytest.approx(1 / 2)
    assert score("recall", PROBS, LABELS, class_id=1) == pytest.approx(1.0)
    assert score("precision", PROBS, LABELS, class_id=0, thresholds=0.25) == pytest.approx(1 / 2)
    # per class (arg-max): class 0 f1 1, class 1 f1 2/3, class 2 f1 2/3; supports 1, 1, 2
    f1 = np.array([1, 2 / 3, 2 / 3])
    assert score("f1", PROBS, LABELS, average="macro") == pytest.approx(f1.mean())
    assert score("f1", PROBS, LABELS, average="weighted") == pytest.approx((f1 * [1, 1, 2]).sum() / 4)
    assert score("f1", PROBS, LABELS, average="micro") == pytest.approx(0.75)     # tp 3, fp 1, fn 1
    # at 0.5: tp (0,0), (3,1); fn (1,2), (2,2): class 0 f1 1, class 1 1, class 2 0
    assert score("f1", PROBS, LABELS, threshold=0.5) == pytest.approx(2 / 3)


def test_keras_arguments_of_auc():
    rng = np.random.default_rng(1)
    probs = rng.random((40, 3))
    labels = rng.integers(0, 3, 40)
    onehot = np.eye(3)[labels].astype(bool)
    micro = _auc_by_pairs(probs.ravel(), onehot.ravel())
    assert score("auc", probs, labels, multi_label=False) == pytest.approx(micro)
    # thresholds 0.01 apart: the exact area up to the pairs falling in one bucket
    assert score("auc", probs, labels, multi_label=False, num_thresholds=101) == pytest.approx(micro, abs=0.02)
    # with scores on the thresholds' grid only ties within one bucket remain: trapezoids count them half
    grid = np.round(probs, 1) - 0.04              # each just below a threshold of num_thresholds=11
    grid = np.clip(grid, 0.01, 1)
    exact = _auc_by_pairs(np.ceil(grid.ravel() * 10), onehot.ravel())
    assert score("auc", grid, labels, multi_label=False, num_thresholds=11) == pytest.approx(exact)
