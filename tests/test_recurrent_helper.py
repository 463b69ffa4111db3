"""The recurrent helper process: a layer's time loops as two halves of the batch, the second
half in another process over shared memory, with the same numbers whether the helper runs it,
this process runs it after the helper failed, or the batch is not split at all."""
import os
import socket
import sys

import numpy as np
import pytest

from dltrain.gradcheck import check_layer
from dltrain.parallel import recurrent_helper
from dltrain.registry import build

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and hasattr(os, "memfd_create") and hasattr(socket, "send_fds")),
    reason="the helper needs Linux (memfd, file-descriptor passing)")

SPECS = [{"type": "lstm", "units": 3, "return_sequences": True},
         {"type": "lstm", "units": 4, "go_backwards": True},
         {"type": "gru", "units": 3, "return_sequences": True},
         {"type": "simple_rnn", "units": 4}]


@pytest.fixture
def split_always(monkeypatch):
    """Every training pass splits its batch, however small, whatever the BLAS thread count."""
    monkeypatch.setattr(recurrent_helper, "MIN_WORK", 0)
    monkeypatch.setattr(recurrent_helper, "MIN_HALF", 1)
    monkeypatch.setattr(recurrent_helper, "enabled", lambda: True)
    recurrent_helper.shutdown()
    yield
    recurrent_helper.shutdown()


def run(spec, training, dtype=np.float32):
    """(output, input gradient, parameter gradients, whether the batch was split)."""
    layer = build("layer", spec)
    layer.name = "r"
    layer.dtype = dtype
    layer.build((7, 2), np.random.default_rng(0))
    for name in ("bias", "recurrent_bias"):
        if name in layer.params:
            layer.params[name][...] = np.random.default_rng(3).standard_normal(layer.params[name].shape)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7, 2)).astype(dtype)
    layer.input_mask = rng.random((6, 7)) > 0.2
    y = layer.forward(x, training=training)
    grad_x = layer.backward(rng.standard_normal(y.shape).astype(dtype))
    return y.copy(), grad_x.copy(), {k: g.copy() for k, g in layer.grads.items()}, layer._split is not None


def assert_same(a, b, exact):
    compare = np.testing.assert_array_equal if exact else (
        lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6))
    compare(a[0], b[0])
    compare(a[1], b[1])
    assert set(a[2]) == set(b[2])
    for key in a[2]:
        compare(a[2][key], b[2][key])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["type"])
def test_the_helper_runs_half_the_batch_with_the_same_numbers(split_always, spec):
    whole = run(spec, training=False)               # inference never splits
    split = run(spec, training=True)
    assert not whole[3] and split[3]
    assert isinstance(recurrent_helper._helper, recurrent_helper._Helper)
    assert recurrent_helper._helper.process.poll() is None          # alive, serving
    assert_same(whole, split, exact=False)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["type"])
def test_gradients_through_the_split_batch(split_always, spec):
    layer = build("layer", spec)
    layer.name = "t"
    layer.dtype = np.float64
    layer.build((5, 2), np.random.default_rng(1))
    layer.input_mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 0, 1, 1, 1]], bool)
    errors = check_layer(layer, np.random.default_rng(3).standard_normal((4, 5, 2)), training=True, eps=1e-5)
    assert layer._split is not None
    assert max(errors.values()) < 1e-6, errors


def test_without_the_helper_both_halves_run_here_with_the_same_numbers(split_always, monkeypatch):
    spec = SPECS[0]
    with_helper = run(spec, training=True)
    recurrent_helper.shutdown()

    def cannot_start():
        raise OSError("no processes left")

    monkeypatch.setattr(recurrent_helper, "_Helper", cannot_start)
    with pytest.warns(RuntimeWarning, match="no processes left.*both halves of the batch run in this process"):
        without = run(spec, training=True)
    assert recurrent_helper._helper is False and without[3]
    assert_same(with_helper, without, exact=True)


def test_without_shared_memory_both_halves_run_here_with_the_same_numbers(split_always, monkeypatch):
    expected = run(SPECS[0], training=True)
    recurrent_helper.shutdown()

    def no_memory(name):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "memfd_create", no_memory)
    with pytest.warns(RuntimeWarning, match="Too many open files.*both halves of the batch run in this process"):
        without = run(SPECS[0], training=True)
    assert without[3]
    assert_same(expected, without, exact=True)


def test_a_helper_that_dies_between_forward_and_backward_changes_nothing(split_always):
    spec = SPECS[2]
    expected = run(spec, training=True)
    layer = build("layer", spec)
    layer.name = "r"
    layer.build((7, 2), np.random.default_rng(0))
    for name in ("bias", "recurrent_bias"):
        layer.params[name][...] = np.random.default_rng(3).standard_normal(layer.params[name].shape)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7, 2)).astype(np.float32)
    layer.input_mask = rng.random((6, 7)) > 0.2
    y = layer.forward(x, training=True)
    recurrent_helper._helper.process.kill()                        # it held the second half's cache
    recurrent_helper._helper.process.wait()
    with pytest.warns(RuntimeWarning, match="recurrent helper process stopped"):
        grad_x = layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert_same(expected, (y, grad_x, layer.grads, True), exact=True)


def test_the_helper_sends_back_its_errors(split_always):
    helper = recurrent_helper._get_helper()
    with pytest.raises(recurrent_helper.HelperError, match="unknown message 'nonsense'"):
        helper.call(("nonsense",))
    helper.call(("hello",))                                         # and goes on serving


def test_off_with_the_environment_variable_or_one_blas_thread(monkeypatch):
    from dltrain import blas

    monkeypatch.setattr(blas, "threads", lambda: 2)
    monkeypatch.setenv(recurrent_helper.ENVIRONMENT, "0")
    assert not recurrent_helper.enabled()
    monkeypatch.delenv(recurrent_helper.ENVIRONMENT)
    assert recurrent_helper.enabled()
    monkeypatch.setattr(blas, "threads", lambda: 1)
    assert not recurrent_helper.enabled()


def test_small_loops_and_inference_do_not_split(monkeypatch):
    monkeypatch.setattr(recurrent_helper, "enabled", lambda: True)
    layer = build("layer", {"type": "lstm", "units": 32})
    layer.name = "r"
    layer.build((128, 3), np.random.default_rng(0))
    try:
        layer.forward(np.zeros((64, 20, 3), np.float32), training=True)    # 20 * 64 * 32 < MIN_WORK
        assert layer._split is None
        layer.forward(np.zeros((128, 128, 3), np.float32), training=False)  # large, but inference
        assert layer._split is None
        layer.forward(np.zeros((128, 128, 3), np.float32), training=True)   # 128 * 128 * 32 = 2**19
        assert layer._split is not None
    finally:
        recurrent_helper.shutdown()


def test_the_helper_lets_go_of_layers_that_are_gone(split_always):
    """k-fold training builds a model per fold: the helper must not keep every old layer's
    shared memory mapped. Layers collected here are dropped there at its next request."""
    import gc

    run(SPECS[0], training=True)
    run(SPECS[1], training=True)                 # the first layer is gone by now
    gc.collect()
    run(SPECS[2], training=True)
    gc.collect()
    run(SPECS[3], training=True)                 # drops the third, maps the fourth
    arenas, caches = recurrent_helper._helper.call(("count",))[1]
    assert (arenas, caches) == (1, 0)


def test_the_process_machinery_imports_no_layer_and_no_api():
    """The helper lives in dltrain/parallel and knows layers only through the loop functions it
    is sent; the recurrent layers reach it through Split alone."""
    import subprocess

    code = ("import sys; import dltrain.parallel.recurrent_helper, dltrain.parallel.helper_process; "
            "print(sorted(m for m in sys.modules if m.startswith(('dltrain.layers', 'dltrain.api', 'dltrain.model'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    from dltrain.layers import recurrent

    assert recurrent.Split is recurrent_helper.Split
    source = open(recurrent.__file__).read()
    assert "import recurrent_helper" not in source and "recurrent_helper import Split\n" in source
