"""Contract suite over the whole registry: a component is tested the moment it is registered.

Layers: every ``examples`` entry builds from its arguments, produces the shape ``build`` promised,
round-trips its config, keeps float32 float32, and passes a float64 gradient check of its input
and every parameter. A layer without examples fails. Activations and losses are gradient-checked
the same way, and the fused logits path of a loss equals the unfused chain.

Conventions a layer may use (read here):
    kinks = (0.0, ...)                  input values to keep away from (default: those of an
                                        activation layer's function, else none)
    integer_input = True                inputs are ids: integers drawn in [0, input_dim)
    example_input(self, shape, rng)     the input for an example, when neither fits;
                                        default: standard normal floats
"""
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import dltrain
from dltrain import gradcheck
from dltrain.registry import KINDS, build, registry

BATCH = 3
TOLERANCE = 1e-6


def _layer_examples():
    cases = []
    for name in registry("layer").names():
        cls = registry("layer").get(name)
        for i, example in enumerate(cls.examples):
            cases.append(pytest.param(name, example, id=f"{name}-{i}"))
    return cases


def _kinks(layer):
    kinks = getattr(layer, "kinks", None)
    if kinks is None and hasattr(layer, "function"):
        kinks = getattr(layer.function, "kinks", ())
    return tuple(kinks or ())


def _input(layer, shape, rng, dtype):
    """A batch for one input shape (without the batch axis), away from the layer's kinks."""
    full = (BATCH, *shape)
    if getattr(layer, "integer_input", False):
        return rng.integers(0, getattr(layer, "input_dim", 2), full)
    if hasattr(layer, "example_input"):
        x = np.asarray(layer.example_input(full, rng))
        return x if not np.issubdtype(x.dtype, np.floating) else x.astype(dtype)
    x = rng.standard_normal(full)
    return gradcheck.away_from_kinks(x, _kinks(layer)).astype(dtype)


def _build(name, example, dtype, seed=0):
    arguments, input_shape = example
    layer = build("layer", {"type": name, **arguments}, where=f"{name}.examples")
    layer.name = f"{name}_under_test"
    layer.dtype = dtype
    rng = np.random.default_rng(seed)
    output_shape = layer.build(input_shape, rng)
    if layer.random:
        layer.rng = np.random.default_rng(seed + 1)
    shapes = input_shape if layer.multi_input else [input_shape]
    inputs = [_input(layer, tuple(s), rng, dtype) for s in shapes]
    x = inputs if layer.multi_input else inputs[0]
    return layer, tuple(output_shape), x


@pytest.mark.parametrize("name", registry("layer").names())
def test_every_layer_lists_examples(name):
    cls = registry("layer").get(name)
    assert cls.examples, (f"layer {name!r} ({cls.__module__}.{cls.__name__}) has no `examples`: "
                          "list ((arguments, input_shape), ...) so the contract suite can check it")


@pytest.mark.parametrize("name, example", _layer_examples())
def test_layer_example_shape_and_dtype(name, example):
    layer, output_shape, x = _build(name, example, np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (BATCH, *output_shape), f"build promised {output_shape}, forward gave {y.shape[1:]}"
    assert y.dtype == np.float32, f"float32 input gave {y.dtype} output (a stray float64 upcasts)"
    grad = layer.backward(np.ones_like(y))
    for g, xi in zip(grad if layer.multi_input else [grad], x if layer.multi_input else [x]):
        if g is not None and np.issubdtype(np.asarray(xi).dtype, np.floating):
            assert g.shape == xi.shape and g.dtype == np.float32
    assert set(layer.grads) == set(layer.params)
    for key, param in layer.params.items():
        assert param.dtype == np.float32, f"{key} is {param.dtype}"
        assert layer.grads[key].shape == param.shape and layer.grads[key].dtype == np.float32, key


@pytest.mark.parametrize("name, example", _layer_examples())
def test_layer_example_config_round_trips(name, example):
    layer, _, _ = _build(name, example, np.float32)
    config = layer.config()
    assert config["type"] == name
    again = build("layer", config)
    assert again.config() == config
    # same arguments and the same init stream give the same parameters
    twin, _, _ = _build(name, example, np.float32)
    for key, param in layer.params.items():
        np.testing.assert_array_equal(param, twin.params[key])


@pytest.mark.parametrize("name, example", _layer_examples())
def test_layer_example_gradients(name, example):
    layer, _, x = _build(name, example, np.float64)
    training = not layer.random          # random layers are checked in inference mode
    errors = gradcheck.check_layer(layer, x, rng=np.random.default_rng(1), training=training)
    assert errors, f"{name}: nothing was checked"
    bad = {k: v for k, v in errors.items() if not v < TOLERANCE}
    assert not bad, f"{name} {example}: relative errors {bad}"


def test_dropout_in_training_scales_kept_inputs_and_backpropagates_through_the_same_mask():
    layer = build("layer", {"type": "dropout", "rate": 0.25})
    layer.build((1000,), np.random.default_rng(0))
    layer.rng = np.random.default_rng(3)
    x = np.random.default_rng(2).standard_normal((20, 1000)).astype(np.float32)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    g = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(g), np.where(kept, g / 0.75, 0), rtol=1e-6)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


# -- activations ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", registry("activation").names())
def test_activation_gradient(name):
    layer = build("layer", {"type": "activation", "activation": name})
    layer.dtype = np.float64
    layer.build((4, 5), None)
    rng = np.random.default_rng(0)
    x = gradcheck.away_from_kinks(rng.standard_normal((BATCH, 4, 5)) * 2, layer.function.kinks)
    errors = gradcheck.check_layer(layer, x, rng=rng)
    assert errors["input"] < TOLERANCE, errors


@pytest.mark.parametrize("name", registry("activation").names())
def test_activation_keeps_float32(name):
    function = build("activation", name)
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    y = function.forward(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert function.backward(np.ones_like(y)).dtype == np.float32


# -- losses -----------------------------------------------------------------------------------

def _loss_case(loss, rng, logits):
    """(pred, target) suited to a loss: its output kind from what it fuses with and its target."""
    if loss.fuses == "softmax":
        z = rng.standard_normal((5, 4))
        pred = z if logits else np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
        labels = rng.integers(0, 4, 5)
        return pred, labels if loss.target == "sparse" else np.eye(4)[labels]
    if loss.fuses == "sigmoid":
        z = rng.standard_normal((5, 3))
        return (z if logits else 1 / (1 + np.exp(-z))), rng.integers(0, 2, (5, 3)).astype(float)
    pred = rng.standard_normal((5, 3))
    return pred, pred + gradcheck.away_from_kinks(rng.standard_normal((5, 3)), (0.0, 1.0, -1.0), 0.05)


def _loss_settings():
    cases = []
    for name in registry("loss").names():
        cls = registry("loss").get(name)
        accepts = "from_logits" in inspect.signature(cls.__init__).parameters
        for from_logits in ((False, True) if accepts else (False,)):
            cases.append(pytest.param(name, from_logits, id=f"{name}-logits={from_logits}"))
    return cases


def _loss_gradient_error(loss, pred, target, sample_weight=None):
    loss.forward(pred, target, sample_weight)
    analytic = loss.backward()
    numeric = gradcheck.numeric_gradient(lambda: float(loss.forward(pred, target, sample_weight)), pred)
    return gradcheck.compare(analytic, numeric)


@pytest.mark.parametrize("name, from_logits", _loss_settings())
def test_loss_gradient(name, from_logits):
    arguments = {"from_logits": True} if from_logits else {}
    loss = build("loss", {"type": name, **arguments})
    rng = np.random.default_rng(0)
    pred, target = _loss_case(loss, rng, from_logits)
    assert _loss_gradient_error(loss, pred, target) < TOLERANCE
    weights = rng.uniform(0.5, 2, len(pred))
    assert _loss_gradient_error(loss, pred, target, weights) < TOLERANCE
    if "label_smoothing" in inspect.signature(type(loss).__init__).parameters:
        smoothed = build("loss", {"type": name, "label_smoothing": 0.1, **arguments})
        assert _loss_gradient_error(smoothed, pred, target) < TOLERANCE


@pytest.mark.parametrize("name", [n for n in registry("loss").names() if registry("loss").get(n).fuses])
def test_fused_logits_path_equals_the_unfused_chain(name):
    rng = np.random.default_rng(0)
    loss = build("loss", name)
    z, target = _loss_case(loss, rng, logits=True)
    activation = build("activation", loss.fuses)
    probabilities = activation.forward(z)
    unfused = build("loss", name)
    value = unfused.forward(probabilities, target)
    grad_z = activation.backward(unfused.backward())
    fused_value = loss.forward(z, target, logits=True)
    np.testing.assert_allclose(fused_value, value, rtol=1e-6)
    np.testing.assert_allclose(loss.backward(), grad_z, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(loss.sum(z, target, logits=True).probabilities, probabilities, rtol=1e-9)
    from_logits = build("loss", {"type": name, "from_logits": True})
    np.testing.assert_allclose(from_logits.forward(z, target), fused_value, rtol=1e-12)
    np.testing.assert_allclose(from_logits.backward(), loss.backward(), rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in registry("loss").names() if registry("loss").get(n).fuses])
def test_fused_loss_is_finite_for_extreme_logits(name):
    loss = build("loss", name)
    z, target = _loss_case(loss, np.random.default_rng(0), logits=True)
    z = (z * 1e4).astype(np.float32)
    value = loss.forward(z, target, logits=True)
    assert np.isfinite(value) and np.isfinite(loss.backward()).all()
    assert loss.backward().dtype == np.float32


# -- the registry holds every class the package defines ---------------------------------------

#: classes with a kind that are deliberately not in a registry, and why
UNREGISTERED = {
    "ProgressDisplay": "internal callback of the CLI (takes a rich console)",
}


def _package_classes():
    modules = [dltrain]
    for info in pkgutil.walk_packages(dltrain.__path__, "dltrain."):
        if info.name.endswith("__main__"):
            continue                     # running it would start the CLI
        modules.append(importlib.import_module(info.name))
    seen = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and getattr(cls, "kind", None) in KINDS:
                seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return seen


def test_every_class_with_a_kind_is_registered():
    classes = _package_classes()
    assert len(classes) > 40
    missing = []
    for path, cls in classes.items():
        is_base = bool(cls.__subclasses__())
        if is_base or cls.__name__.startswith("_") or cls.__name__ in UNREGISTERED:
            continue
        if cls.__dict__.get("registered_name") is None:
            missing.append(path)
    assert not missing, ("classes with a `kind` that no @register names (register them, make "
                         f"them bases, or list them in UNREGISTERED with a reason): {missing}")


def test_every_registered_name_is_snake_case_and_builds_from_its_defaults():
    for kind in KINDS:
        reg = registry(kind)
        for name in reg.names():
            assert name == name.lower() and " " not in name and "-" not in name, name
            cls = reg.get(name)
            assert cls.__doc__, f"{kind} {name!r} has no docstring (`dltrain list` shows it)"
