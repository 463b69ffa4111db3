"""Recurrent layers, embedding, masking, time_distributed: gradients through time, references, masks."""
import numpy as np
import pytest

from dltrain.errors import DataError
from dltrain.gradcheck import check_layer
from dltrain.model import Model
from dltrain.registry import build


def make(spec, input_shape, dtype=np.float64, seed=1):
    layer = build("layer", spec)
    layer.name = "t"
    layer.dtype = dtype
    layer.build(input_shape, np.random.default_rng(seed))
    return layer


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


RECURRENT = [
    {"type": "simple_rnn", "units": 3},
    {"type": "lstm", "units": 3},
    {"type": "gru", "units": 3},
    {"type": "gru", "units": 3, "reset_after": False},
]
VARIANTS = [{}, {"return_sequences": True}, {"go_backwards": True},
            {"return_sequences": True, "go_backwards": True}]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("spec", RECURRENT)
def test_gradients_through_time(spec, variant, masked):
    layer = make({**spec, **variant}, (5, 2))
    x = np.random.default_rng(3).standard_normal((3, 5, 2))
    if masked:     # post-padding, pre-padding and an all-real row
        layer.input_mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    errors = check_layer(layer, x, eps=1e-5)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("spec", [{"type": "lstm", "units": 3}, {"type": "gru", "units": 3},
                                  {"type": "gru", "units": 3, "reset_after": False}])
def test_gradients_through_time_across_backward_chunks(monkeypatch, spec, chunk):
    """lstm_backward computes its state-independent factors, and both gather their gate
    gradients, LSTM_CHUNK / GRU_CHUNK steps at a time: runs of 1, 2 and 3 over 5 steps (one
    short run at the start) give the same exact gradients."""
    from dltrain.layers import recurrent_cells

    monkeypatch.setattr(recurrent_cells, "LSTM_CHUNK", chunk)
    monkeypatch.setattr(recurrent_cells, "GRU_CHUNK", chunk)
    layer = make({**spec, "return_sequences": True}, (5, 2))
    layer.input_mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    errors = check_layer(layer, np.random.default_rng(3).standard_normal((3, 5, 2)), eps=1e-5)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients(merge_mode, return_sequences):
    layer = make({"type": "bidirectional", "merge_mode": merge_mode,
                  "layer": {"type": "lstm", "units": 2, "return_sequences": return_sequences}}, (4, 3))
    layer.input_mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    errors = check_layer(layer, np.random.default_rng(4).standard_normal((2, 4, 3)), eps=1e-5)
    assert max(errors.values()) < 1e-6, errors


def test_lstm_matches_step_by_step_reference():
    layer = make({"type": "lstm", "units": 4, "return_sequences": True}, (6, 3))
    x = np.random.default_rng(5).standard_normal((2, 6, 3))
    W, R, b = layer.params["kernel"], layer.params["recurrent_kernel"], layer.params["bias"]
    h = c = np.zeros((2, 4))
    expected = []
    for t in range(6):          # Keras: i, f, c, o blocks
        z = x[:, t] @ W + h @ R + b
        i, f, g, o = sigmoid(z[:, :4]), sigmoid(z[:, 4:8]), np.tanh(z[:, 8:12]), sigmoid(z[:, 12:])
        c = f * c + i * g
        h = o * np.tanh(c)
        expected.append(h)
    np.testing.assert_allclose(layer.forward(x), np.stack(expected, axis=1), rtol=1e-10, atol=1e-12)
    assert np.all(b[4:8] == 1) and np.all(b[:4] == 0)          # unit_forget_bias


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_matches_step_by_step_reference(reset_after):
    layer = make({"type": "gru", "units": 4, "reset_after": reset_after, "bias_initializer":
                  {"type": "random_normal"}}, (6, 3))
    x = np.random.default_rng(6).standard_normal((2, 6, 3))
    p = layer.params
    W, R, b = p["kernel"], p["recurrent_kernel"], p["bias"]
    rb = p.get("recurrent_bias", np.zeros(12))
    h = np.zeros((2, 4))
    for t in range(6):          # Keras: z, r, h blocks
        xw = x[:, t] @ W + b
        z = sigmoid(xw[:, :4] + h @ R[:, :4] + rb[:4])
        r = sigmoid(xw[:, 4:8] + h @ R[:, 4:8] + rb[4:8])
        if reset_after:
            n = np.tanh(xw[:, 8:] + r * (h @ R[:, 8:] + rb[8:]))
        else:
            n = np.tanh(xw[:, 8:] + (r * h) @ R[:, 8:])
        h = z * h + (1 - z) * n
    np.testing.assert_allclose(layer.forward(x), h, rtol=1e-10, atol=1e-12)


def test_simple_rnn_hand_computed():
    layer = make({"type": "simple_rnn", "units": 1, "kernel_initializer": "ones",
                  "recurrent_initializer": {"type": "constant", "value": 0.5}}, (2, 1))
    y = layer.forward(np.array([[[1.0], [2.0]]]))
    np.testing.assert_allclose(y, [[np.tanh(2 + 0.5 * np.tanh(1))]])


def sequence_model(recurrent, mask_zero=True, dtype=np.float64):
    model = Model.from_config({"input_shape": [7], "layers": [
        {"type": "embedding", "input_dim": 20, "output_dim": 3, "mask_zero": mask_zero},
        recurrent, {"type": "dense", "units": 2}]}, dtype=dtype)
    model.build(np.random.default_rng(0))
    return model


@pytest.mark.parametrize("recurrent", [
    {"type": "lstm", "units": 4}, {"type": "gru", "units": 4}, {"type": "simple_rnn", "units": 4},
    {"type": "lstm", "units": 4, "go_backwards": True},
    {"type": "bidirectional", "layer": {"type": "gru", "units": 3}},
])
def test_padding_changes_nothing_when_masked(recurrent):
    model = sequence_model(recurrent)
    tokens = [5, 3, 17, 9]
    unpadded = Model.from_config({"input_shape": [4], "layers": [
        {"type": "embedding", "input_dim": 20, "output_dim": 3, "mask_zero": True},
        recurrent, {"type": "dense", "units": 2}]}, dtype=np.float64)
    unpadded.build(np.random.default_rng(0))
    unpadded.load_state_dict(model.state_dict())
    x = np.array([tokens + [0, 0, 0], [0, 0, 0] + tokens, [0] + tokens + [0, 0]], dtype=np.float64)
    padded = model.forward(x)
    reference = unpadded.forward(np.array([tokens], dtype=np.float64))
    np.testing.assert_allclose(padded, np.repeat(reference, 3, axis=0), rtol=1e-12, atol=1e-12)
    grad = model.backward(np.ones_like(padded))
    assert grad.shape == x.shape


def test_without_mask_padding_does_change_the_output():
    model = sequence_model({"type": "lstm", "units": 4}, mask_zero=False)
    x = np.array([[5, 3, 17, 9, 0, 0, 0], [0, 0, 0, 5, 3, 17, 9]], dtype=np.float64)
    y = model.forward(x)
    assert not np.allclose(y[0], y[1])


def test_masking_layer_skips_padded_steps():
    layers = [{"type": "masking"}, {"type": "gru", "units": 3}]
    model = Model.from_config({"input_shape": [5, 2], "layers": layers}, dtype=np.float64)
    model.build(np.random.default_rng(0))
    seq = np.random.default_rng(1).standard_normal((3, 2))
    x = np.zeros((2, 5, 2))
    x[0, :3], x[1, 2:] = seq, seq
    y = model.forward(x)
    np.testing.assert_allclose(y[0], y[1], rtol=1e-12)


def test_time_distributed_dense_equals_dense_on_the_last_axis():
    td = make({"type": "time_distributed", "layer": {"type": "dense", "units": 3}}, (4, 2))
    dense = make({"type": "dense", "units": 3}, (4, 2))
    dense.params["kernel"][...] = td.params["kernel"]
    x = np.random.default_rng(2).standard_normal((5, 4, 2))
    np.testing.assert_allclose(td.forward(x), dense.forward(x))
    assert check_layer(td, x)["kernel"] < 1e-7


def test_embedding_lookup_gradient_and_mask():
    layer = make({"type": "embedding", "input_dim": 4, "output_dim": 2, "mask_zero": True}, (3,))
    x = np.array([[1, 1, 0], [3, 0, 0]], dtype=np.float32)       # float ids, as batches arrive
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, 0], layer.params["embeddings"][1])
    layer.backward(np.ones((2, 3, 2)))
    np.testing.assert_array_equal(layer.grads["embeddings"][:, 0], [3, 2, 0, 1])
    np.testing.assert_array_equal(layer.compute_mask(x, None), [[1, 1, 0], [1, 0, 0]])


def test_embedding_id_out_of_range_is_a_data_error():
    layer = make({"type": "embedding", "input_dim": 4, "output_dim": 2}, (3,))
    with pytest.raises(DataError, match="token id 7"):
        layer.forward(np.array([[1, 7, 0]]))


def test_float32_by_default_and_shapes():
    model = sequence_model({"type": "bidirectional", "layer": {"type": "lstm", "units": 4,
                                                                "return_sequences": True}},
                           dtype=np.float32)
    assert model.output_shape == (7, 2)
    y = model.forward(np.array([[1, 2, 3, 0, 0, 0, 0]], dtype=np.float32))
    assert y.dtype == np.float32 and y.shape == (1, 7, 2)


@pytest.mark.parametrize("spec", [{"type": "lstm", "units": 3, "return_sequences": True},
                                  {"type": "lstm", "units": 4, "go_backwards": True},
                                  {"type": "simple_rnn", "units": 4, "return_sequences": True},
                                  {"type": "gru", "units": 3, "return_sequences": True},
                                  {"type": "gru", "units": 4, "reset_after": False, "go_backwards": True}])
def test_float32_layer_with_inputs_in_each_steps_product_matches_float64(spec):
    """Each step multiplies its weights by the operand [h; 1; x]: in float32 (the default) with
    random biases and a mask, outputs and every gradient agree with the gradient-checked
    float64 layer."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 2))
    mask = rng.random((3, 6)) > 0.3
    grad_y = None
    results = []
    for dtype in (np.float64, np.float32):
        layer = make(spec, (6, 2), dtype=dtype, seed=0)
        for name in ("bias", "recurrent_bias"):
            if name in layer.params:
                layer.params[name][...] = np.random.default_rng(7).standard_normal(layer.params[name].shape)
        layer.input_mask = mask
        y = layer.forward(x.astype(dtype), training=True)
        if grad_y is None:
            grad_y = rng.standard_normal(y.shape)
        grad_x = layer.backward(grad_y.astype(dtype))
        results.append((y, grad_x, {k: g.copy() for k, g in layer.grads.items()}))
    (y64, grad_x64, grads64), (y32, grad_x32, grads32) = results
    assert y32.dtype == np.float32 and grad_x32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_x32, grad_x64, rtol=1e-4, atol=1e-5)
    assert set(grads32) == set(layer.params)
    for key in grads32:
        assert grads32[key].dtype == np.float32, key
        np.testing.assert_allclose(grads32[key], grads64[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_bidirectional_sequences_output_zero_at_masked_steps(cell):
    """Keras forces zero_output_for_mask on both layers of a Bidirectional that returns
    sequences: padded steps output 0 in both halves, not the carried state (issue 17, 2)."""
    layer = make({"type": "bidirectional", "layer": {"type": cell, "units": 2, "return_sequences": True}},
                 (5, 3))
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], bool)
    layer.input_mask = mask
    x = np.random.default_rng(4).standard_normal((2, 5, 3))
    y = layer.forward(x)
    assert np.all(y[~mask] == 0) and np.all(y[mask] != 0)
    errors = check_layer(layer, x, eps=1e-5)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("go_backwards", [False, True])
def test_zero_output_for_mask_zeroes_masked_steps_of_the_sequence(go_backwards):
    spec = {"type": "lstm", "units": 2, "return_sequences": True, "go_backwards": go_backwards}
    carried, zeroed = make(spec, (4, 2)), make({**spec, "zero_output_for_mask": True}, (4, 2))
    mask = np.array([[1, 1, 0, 0], [0, 1, 1, 1]], bool)
    x = np.random.default_rng(2).standard_normal((2, 4, 2))
    carried.input_mask = zeroed.input_mask = mask
    y_carried, y_zeroed = carried.forward(x), zeroed.forward(x)
    # the output is in reading order: with go_backwards the mask reads reversed along it
    out_mask = mask[:, ::-1] if go_backwards else mask
    np.testing.assert_array_equal(y_zeroed[out_mask], y_carried[out_mask])
    assert np.all(y_zeroed[~out_mask] == 0) and np.any(y_carried[~out_mask] != 0)
    errors = check_layer(zeroed, x, eps=1e-5)
    assert max(errors.values()) < 1e-6, errors


def test_go_backwards_sequences_keep_the_input_mask_unchanged():
    """Keras's recurrent output mask is the input mask as it is, even though go_backwards
    reverses the output sequence (issue 17, 3)."""
    layer = make({"type": "gru", "units": 2, "return_sequences": True, "go_backwards": True}, (4, 2))
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool)
    np.testing.assert_array_equal(layer.compute_mask(None, mask), mask)
    last = make({"type": "gru", "units": 2, "go_backwards": True}, (4, 2))
    assert last.compute_mask(None, mask) is None
