"""recurrent_dropout on simple_rnn, lstm and gru: gradient-checked in training with a fixed mask;
0 is the fast loop itself; inference never drops; a rate of 1 - eps drops the recurrence."""
import numpy as np
import pytest

from dltrain import gradcheck
from dltrain.registry import build

CASES = [
    {"type": "simple_rnn", "units": 3}, {"type": "lstm", "units": 3}, {"type": "gru", "units": 3},
    {"type": "gru", "units": 2, "reset_after": False}, {"type": "lstm", "units": 2, "return_sequences": True},
    {"type": "gru", "units": 2, "return_sequences": True, "go_backwards": True},
    {"type": "simple_rnn", "units": 2, "return_sequences": True, "zero_output_for_mask": True},
]


def _layer(spec, features=2, dtype=np.float64, seed=0):
    layer = build("layer", spec)
    layer.name, layer.dtype = "rnn", dtype
    layer.build((5, features), np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for value in layer.params.values():
        value += rng.normal(0, 0.3, value.shape)
    return layer


class FixedMask:
    """The layer with the same dropout mask at every forward (the generator reset each time)."""

    def __init__(self, layer, seed=5):
        self.layer, self.seed = layer, seed
        self.params, self.grads = layer.params, layer.grads
        self.multi_input = False

    def forward(self, x, training=False):
        self.layer.rng = np.random.default_rng(self.seed)
        return self.layer.forward(x, training)

    def backward(self, grad_y):
        out = self.layer.backward(grad_y)
        self.grads.update(self.layer.grads)
        return out


@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "padded"])
@pytest.mark.parametrize("spec", CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_recurrent_dropout_gradients_with_a_fixed_mask(spec, masked):
    layer = _layer({**spec, "recurrent_dropout": 0.4})
    x = np.random.default_rng(2).normal(size=(6, 5, 2))
    if masked:
        layer.input_mask = np.arange(5)[None, :] < np.array([5, 3, 1, 4, 0, 2])[:, None]
    fixed = FixedMask(layer)
    y = fixed.forward(x, training=True)
    assert np.isfinite(y).all()
    errors = gradcheck.check_layer(fixed, x, rng=np.random.default_rng(3), training=True)
    assert set(errors) == {"input", *layer.params}
    bad = {k: v for k, v in errors.items() if not v < 1e-6}
    assert not bad, bad


@pytest.mark.parametrize("spec", CASES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_with_every_unit_kept_it_is_the_fast_loop(spec):
    """The own loop against the tuned one: identical maths when the mask keeps every unit."""
    fast, slow = _layer(spec), _layer({**spec, "recurrent_dropout": 0.5})
    x = np.random.default_rng(4).normal(size=(4, 5, 2))
    for layer in (fast, slow):
        layer.input_mask = np.arange(5)[None, :] < np.array([5, 2, 4, 1])[:, None]
    slow.recurrent_dropout = 1e-12                 # keeps all units, scale 1 (to rounding)
    slow.rng = np.random.default_rng(0)
    np.testing.assert_allclose(slow.forward(x, training=True), fast.forward(x, training=True), atol=1e-10)
    g = np.random.default_rng(5).normal(size=fast.forward(x, training=True).shape)
    grad_fast = fast.backward(g)
    slow.forward(x, training=True)
    np.testing.assert_allclose(slow.backward(g), grad_fast, atol=1e-10)
    for key in fast.grads:
        np.testing.assert_allclose(slow.grads[key], fast.grads[key], atol=1e-10, err_msg=key)


def test_inference_does_not_drop_and_training_does():
    layer = _layer({"type": "lstm", "units": 4, "recurrent_dropout": 0.5})
    layer.rng = np.random.default_rng(0)
    reference = _layer({"type": "lstm", "units": 4})
    x = np.random.default_rng(6).normal(size=(3, 5, 2))
    np.testing.assert_array_equal(layer.forward(x), reference.forward(x))
    assert not np.allclose(layer.forward(x, training=True), reference.forward(x, training=True))


def test_a_model_trains_with_recurrent_dropout_in_a_bidirectional_layer():
    from dltrain.model import Model

    model = Model.from_config({"input_shape": [6], "layers": [
        {"type": "embedding", "input_dim": 9, "output_dim": 3, "mask_zero": True},
        {"type": "bidirectional", "layer": {"type": "gru", "units": 2, "recurrent_dropout": 0.3}},
        {"type": "dense", "units": 1}]})
    model.build(np.random.default_rng(0))
    x = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 1]], dtype=np.float32)
    out = model.forward(x, training=True)
    model.backward(np.ones_like(out), input_grad=False)
    assert all(np.isfinite(g).all() for _, _, g in model.parameters())
