"""dltrain against Keras 3 itself: every fixture written by tests/keras_reference/generate.py.

No Keras is needed here: the fixtures hold Keras's inputs, weights (in dltrain's layout),
outputs, gradients, updated statistics and output masks. Each recurrent case runs twice: as
one batch, and split over the recurrent helper's two halves of the batch (the time-loop split
that training uses for large batches, forced here on a small one).

Tolerance: the largest difference relative to the largest magnitude of the expected array,
1e-6 for the float64 fixtures (1e-4 for float32 ones).
"""
import json
import os
import pathlib
import socket
import sys

import numpy as np
import pytest

import dltrain.catalogue  # noqa: F401  (every registry filled)
from dltrain.layers.bidirectional import Bidirectional
from dltrain.parallel import recurrent_helper
from dltrain.registry import build, registry

HERE = pathlib.Path(__file__).parent / "keras_reference"
FIXTURES = HERE / "fixtures"
sys.path.insert(0, str(HERE))
from cases import EXEMPT, all_cases  # noqa: E402

TOLERANCE = {"float64": 1e-6, "float32": 1e-4}
#: the recurrent helper needs Linux (memfd, file-descriptor passing)
HELPER = sys.platform.startswith("linux") and hasattr(os, "memfd_create") and hasattr(socket, "send_fds")
KINDS = ("layer", "loss", "optimizer", "schedule", "metric")


def _fixtures():
    """{case id: (case, arrays)} from every fixture file."""
    found = {}
    for path in sorted(FIXTURES.glob("*/*.npz")):
        with np.load(path, allow_pickle=False) as data:
            groups = {}
            for key in data.files:
                index, field = key.split("/", 1)
                groups.setdefault(index, {})[field] = data[key]
        for arrays in groups.values():
            case = json.loads(str(arrays.pop("case")))
            found[case["id"]] = (case, arrays)
    return found


FIXTURE_CASES = _fixtures()


def _close(actual, expected, what, dtype="float64"):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, Keras {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-8)
    error = float(np.abs(actual - expected).max(initial=0.0)) / scale
    assert error <= TOLERANCE[dtype], f"{what}: relative difference {error:.3g} from Keras"


close = _close


def _ids(kind):
    return [case_id for case_id, (case, _) in FIXTURE_CASES.items() if case["kind"] == kind]


# -- layers -----------------------------------------------------------------------------------

def _recurrent_layers(layer):
    return [layer.forward_layer, layer.backward_layer] if isinstance(layer, Bidirectional) else [layer]


def _layer_cases():
    """Each case in float64 and float32 (dltrain's own precision, its fast paths), and each
    recurrent case also split over the helper."""
    params = []
    skip = pytest.mark.skipif(not HELPER, reason="the recurrent helper needs Linux (memfd, fd passing)")
    for case_id in _ids("layer"):
        case = FIXTURE_CASES[case_id][0]
        recurrent = case["name"] in ("simple_rnn", "lstm", "gru", "bidirectional")
        params.append(pytest.param(case_id, False, "float64", id=case_id))
        params.append(pytest.param(case_id, False, "float32", id=case_id + "-float32"))
        if recurrent:
            params.append(pytest.param(case_id, True, "float64", id=case_id + "-split", marks=skip))
    return params


def _force_split(monkeypatch):
    """Every training batch of two or more splits over the helper (a small one included)."""
    monkeypatch.setattr(recurrent_helper, "MIN_HALF", 1)
    monkeypatch.setattr(recurrent_helper, "MIN_WORK", 1)
    monkeypatch.setattr(recurrent_helper, "enabled", lambda: True)


@pytest.mark.parametrize("case_id, split, dtype", _layer_cases())
def test_layer_matches_keras(case_id, split, dtype, monkeypatch):
    case, a = FIXTURE_CASES[case_id]
    if split:
        _force_split(monkeypatch)
    multi = isinstance(case["shape"][0], list)
    layer = build("layer", case["spec"])
    layer.name, layer.dtype = case_id, np.dtype(dtype).type
    layer.build([s[1:] for s in case["shape"]] if multi else case["shape"][1:], np.random.default_rng(0))
    for key, value in {**layer.params, **layer.state}.items():
        value[...] = a[f"weights/{key}"]             # in place: a wrapper's params are its layers'
    xs = [a[f"x/{i}"] for i in range(len(case["shape"]) if multi else 1)]
    xs = [x if np.issubdtype(x.dtype, np.integer) else x.astype(dtype) for x in xs]
    x = xs if multi else xs[0]
    mask = a.get("mask")
    layer.input_mask = mask
    training = case.get("training", False)

    def close(actual, expected, what):
        assert np.asarray(actual).dtype == dtype, f"{what} is {np.asarray(actual).dtype}, not {dtype}"
        _close(actual, expected, what, dtype)

    y = layer.forward(x, training=training)
    close(y, a["y"], "output")
    if split:         # the second half ran in the helper process (not here after a failure)
        for inner in _recurrent_layers(layer):
            assert (inner._split is not None) == inner.splits, "the split did not happen"
            assert inner._split is None or inner._split._remote, "the helper did not run its half"
    grad_x = layer.backward(a["grad_y"].astype(y.dtype))
    for key in layer.params:
        close(layer.grads[key], a[f"grads/{key}"], f"gradient of {key}")
    if "grad_x/0" in a:
        for i, g in enumerate(grad_x if multi else [grad_x]):
            close(g, a[f"grad_x/{i}"], f"gradient of input {i}")
    for key in layer.state:
        if f"state/{key}" in a:
            close(layer.state[key], a[f"state/{key}"], f"updated {key}")
    mask_out = layer.compute_mask(x, [None] * len(xs) if multi else mask)
    if "mask_out" in a:
        assert mask_out is not None, "Keras gives an output mask, dltrain none"
        np.testing.assert_array_equal(mask_out, a["mask_out"], err_msg="output mask")
    else:
        assert mask_out is None, "dltrain gives an output mask, Keras none"


# -- losses, optimizers, schedules, metrics ---------------------------------------------------

@pytest.mark.parametrize("case_id", _ids("loss"))
def test_loss_matches_keras(case_id):
    case, a = FIXTURE_CASES[case_id]
    loss = build("loss", case["spec"])
    value = loss.forward(a["pred"].copy(), a["target"], a.get("sample_weight"))
    grad = loss.backward()
    if isinstance(value, tuple):      # a loss that returns (sum, count): backward is d(sum)
        total, count = value
        value, grad = total / count, grad / count
    close(value, a["value"], "loss (Keras's mean over the batch)")
    close(grad, a["grad"], "gradient")


@pytest.mark.parametrize("case_id", _ids("optimizer"))
def test_optimizer_matches_keras(case_id):
    case, a = FIXTURE_CASES[case_id]
    optimizer = build("optimizer", case["spec"])
    count = len(case["shapes"])
    params = [a[f"params/{i}"].copy() for i in range(count)]
    for step in range(case["steps"]):
        optimizer.apply([(str(i), params[i], a[f"grads/{i}"][step]) for i in range(count)])
        for i in range(count):
            close(params[i], a[f"history/{i}"][step], f"parameter {i} after step {step + 1}")


@pytest.mark.parametrize("case_id", _ids("schedule"))
def test_schedule_matches_keras(case_id):
    case, a = FIXTURE_CASES[case_id]
    schedule = build("schedule", case["spec"])
    close([schedule(step) for step in range(case["steps"])], a["rates"], "rates")


@pytest.mark.parametrize("case_id", _ids("metric"))
def test_metric_matches_keras(case_id):
    case, a = FIXTURE_CASES[case_id]
    metric = build("metric", case["spec"])
    for chunk in np.array_split(np.arange(len(a["pred"])), case["batches"]):
        metric.update(a["pred"][chunk], a["target"][chunk])
    close(metric.result(), a["result"], "result")


# -- coverage ---------------------------------------------------------------------------------

def test_every_activation_is_checked_through_the_activation_layer():
    covered = set()
    for case, _ in FIXTURE_CASES.values():
        if case["name"] == "activation":
            function = case["spec"]["activation"]
            covered.add(function if isinstance(function, str) else function["type"])
    missing = sorted(set(registry("activation").names()) - covered)
    assert not missing, f"activations without a Keras fixture: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_name_has_a_keras_fixture_or_a_reasoned_exemption(kind):
    covered = {case["name"] for case, _ in FIXTURE_CASES.values() if case["kind"] == kind}
    exempt = EXEMPT.get(kind, {})
    missing = [name for name in registry(kind).names() if name not in covered and name not in exempt]
    assert not missing, (f"{kind}s without a Keras fixture: {missing}; add cases to "
                         "tests/keras_reference/cases.py and run generate.py (or exempt them there, "
                         "with the reason)")
    assert all(reason.strip() for reason in exempt.values())
    stale = [name for name in exempt if name in covered or name not in registry(kind).names()]
    assert not stale, f"exemptions that are covered or not registered: {stale}"


def test_the_fixtures_are_those_of_the_cases():
    """cases.py and the fixture files agree: a case edited or added without running
    generate.py fails here."""
    expected = {case["id"]: case for case in all_cases()}
    stored = {case_id: case for case_id, (case, _) in FIXTURE_CASES.items()}
    assert sorted(stored) == sorted(expected)
    changed = [case_id for case_id in expected if json.loads(json.dumps(expected[case_id])) != stored[case_id]]
    assert not changed, f"cases changed since the fixtures were written: {changed}"


def test_the_fixtures_stay_small():
    total = sum(path.stat().st_size for path in FIXTURES.glob("*/*.npz"))
    assert 0 < total < 5_000_000, f"fixtures take {total / 1e6:.2f} MB"
