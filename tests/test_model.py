"""The graph model: sequential and named-input graphs, the activation shorthand, shapes inferred
at build time, fused logits, and graph errors that name the layer."""
import numpy as np
import pytest

from dltrain import gradcheck
from dltrain.errors import ConfigError, ShapeError
from dltrain.model import Model


def build(config, dtype=np.float32):
    model = Model.from_config(config, dtype=dtype)
    model.build(np.random.default_rng(0))
    return model


RESIDUAL = {"input_shape": [4], "layers": [
    {"name": "a", "type": "dense", "units": 4, "activation": "tanh"},
    {"name": "b", "type": "dense", "units": 4},
    {"type": "add", "inputs": ["a", "b"]},
    {"type": "dense", "units": 3, "activation": "softmax"}]}


def test_activation_shorthand_becomes_its_own_node_and_names_refer_to_its_output():
    model = build(RESIDUAL)
    names = [n.name for n in model.nodes]
    assert names[:2] == ["a", "a_tanh"] and model.final_activation == "softmax"
    add = next(n for n in model.nodes if n.layer.registered_name == "add")
    assert add.inputs == ["a_tanh", "b"]          # 'a' means the output of its activation
    assert model.output_shape == (3,)
    assert model.count_params() == 4 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3


def test_residual_graph_backward_matches_finite_differences():
    model = build(RESIDUAL, np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    w = np.random.default_rng(2).standard_normal((5, 3))
    model.forward(x, training=True)
    grad_x = model.backward(w.copy())
    numeric = gradcheck.numeric_gradient(lambda: float((model.forward(x) * w).sum()), x)
    assert gradcheck.compare(grad_x, numeric) < 1e-6
    analytic = {key: grad.copy() for key, _, grad in model.parameters()}
    for key, param, _ in model.parameters():
        numeric = gradcheck.numeric_gradient(lambda: float((model.forward(x) * w).sum()), param)
        assert gradcheck.compare(analytic[key], numeric) < 1e-6, key


def test_training_backward_skips_only_the_input_gradient():
    model = build(RESIDUAL, np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    model.forward(x, training=True)
    full = model.backward(np.ones((5, 3)))
    grads = {k: g.copy() for k, _, g in model.parameters()}
    model.forward(x, training=True)
    assert model.backward(np.ones((5, 3)), input_grad=False) is None and full.shape == x.shape
    for key, _, grad in model.parameters():
        np.testing.assert_array_equal(grad, grads[key])


def test_logits_path_returns_the_input_of_the_final_activation():
    model = build(RESIDUAL)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    z = model.forward(x, logits=True)
    p = model.forward(x)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), p, rtol=1e-5)
    assert p.dtype == np.float32


def test_graph_errors_name_the_layer():
    with pytest.raises(ConfigError, match="not a layer name") as error:
        Model.from_config({"input_shape": [4], "layers": [
            {"name": "a", "type": "dense", "units": 4},
            {"type": "add", "inputs": ["a", "bb"]}]})
    assert "bb" in str(error.value)
    with pytest.raises(ConfigError, match="cycle"):
        Model.from_config({"input_shape": [4], "layers": [
            {"name": "a", "type": "dense", "units": 4, "inputs": ["b"]},
            {"name": "b", "type": "dense", "units": 4, "inputs": ["a"]}]})
    with pytest.raises(ConfigError, match="two layers are named"):
        Model.from_config({"input_shape": [4], "layers": [
            {"name": "a", "type": "dense", "units": 4}, {"name": "a", "type": "dense", "units": 4}]})
    with pytest.raises(ShapeError):
        build({"input_shape": [4], "layers": [
            {"name": "a", "type": "dense", "units": 4}, {"name": "b", "type": "dense", "units": 3},
            {"type": "add", "inputs": ["a", "b"]}]})


def test_state_dict_round_trip_gives_identical_predictions():
    model = build(RESIDUAL)
    x = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    other = Model.from_config(RESIDUAL)
    other.build(np.random.default_rng(99))
    assert not np.allclose(other.predict(x), model.predict(x))
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_graph_errors_name_the_layers_as_written():
    cycle = {"input_shape": [4], "layers": [
        {"name": "a", "type": "dense", "units": 4, "activation": "relu", "inputs": ["b"]},
        {"name": "b", "type": "dense", "units": 4, "activation": "tanh", "inputs": ["a"]}]}
    with pytest.raises(ConfigError, match=r"the layers form a cycle: a -> b -> a\n"):
        Model.from_config(cycle)
    clash = {"input_shape": [4], "layers": [
        {"name": "a", "type": "dense", "units": 4, "activation": "relu"},
        {"name": "a_relu", "type": "dense", "units": 4}]}
    with pytest.raises(ConfigError, match="'a_relu' is the name of the relu activation of layer 'a'") as error:
        Model.from_config(clash)
    assert error.value.where == "model.layers[1]"


def test_a_shape_error_names_the_first_bad_layer_in_written_order():
    config = {"input_shape": [6, 6, 1], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pooling2d"},
        {"type": "dense", "units": 3},
        {"type": "conv2d", "filters": 2, "kernel_size": 3}]}
    model = Model.from_config(config)
    with pytest.raises(ShapeError, match=r"layer 'dense_1' \(dense\) got input of shape \(2, 2, 2\)") as error:
        model.infer_shapes()
    assert error.value.where == "model.layers[2]"
