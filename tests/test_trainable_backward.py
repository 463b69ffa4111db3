"""A frozen layer (``trainable: false``) that the model runs backward through (something
trainable is below it) computes its input gradient only: the same input gradient, to the bit,
as the layer unfrozen, and no weight gradient. Over every registered layer with parameters."""
import numpy as np
import pytest


def _examples():
    """Every registry example of a layer with parameters (merges and random layers have none)."""
    from dltrain.model import Model
    from dltrain.registry import registry

    cases = []
    for name in sorted(registry("layer").names()):
        cls = registry("layer").get(name)
        if getattr(cls, "multi_input", False):
            continue
        for i, (arguments, shape) in enumerate(cls.examples):
            model = Model.from_config({"input_shape": list(shape), "layers": [{"type": name, **arguments}]})
            model.build(np.random.default_rng(0))
            if model.nodes[0].layer.params:
                cases.append(pytest.param(name, arguments, shape, id=f"{name}-{i}"))
    return cases


def _run(name, arguments, shape, trainable):
    """(input gradient, the layer's grads) of one forward and backward of a one-layer model."""
    from dltrain.model import Model

    model = Model.from_config({"input_shape": list(shape), "layers": [
        {"type": name, **arguments, "trainable": trainable}]})
    model.build(np.random.default_rng(0))
    layer = model.nodes[0].layer
    rng = np.random.default_rng(1)
    if getattr(layer, "integer_input", False):
        x = rng.integers(0, arguments["input_dim"], (4, *shape)).astype(np.float32)
    else:
        x = rng.normal(size=(4, *shape)).astype(np.float32)
    training = not layer.inference_when_frozen          # the frozen layer's mode, for both
    y = model.forward(x, training=training)
    grad_x = model.backward(np.random.default_rng(2).normal(size=y.shape).astype(y.dtype))
    return grad_x, layer


@pytest.mark.parametrize("name, arguments, shape", _examples())
def test_a_frozen_layer_computes_the_same_input_gradient_and_no_weight_gradient(name, arguments, shape):
    grad_unfrozen, layer = _run(name, arguments, shape, trainable=True)
    assert layer.grads, f"{name} unfrozen computes its weight gradients"
    grad_frozen, frozen = _run(name, arguments, shape, trainable=False)
    assert grad_frozen.tobytes() == grad_unfrozen.tobytes()
    assert frozen.grads == {}, sorted(frozen.grads)


def test_a_frozen_layer_between_trainable_ones_keeps_its_weights_to_the_bit(tmp_path):
    """A base trained with everything trainable, then retrained from it with its middle layer
    frozen: that layer's arrays are the base's to the bit, both neighbours moved, and the
    gradient check of the trainable rest (through the frozen layer's input gradient) passes."""
    import yaml

    from dltrain import api
    from dltrain.config.validate import validate
    from dltrain.model_gradcheck import check_model
    from training_helpers import digits_config

    layers = ["flatten", {"type": "dense", "units": 16, "activation": "relu"},
              {"type": "dense", "units": 12, "activation": "tanh"},
              {"type": "dense", "units": 10, "activation": "softmax"}]
    api.fit(digits_config(tmp_path, epochs=1, layers=layers, name="base"), run_dir=tmp_path / "base")
    layers[2] = {**layers[2], "trainable": False}
    path = digits_config(tmp_path, epochs=2, layers=layers, name="middle")
    config = yaml.safe_load(path.read_text())
    config["model"]["init_from"] = {"run": str(tmp_path / "base")}
    path.write_text(yaml.safe_dump(config))
    api.fit(str(path), run_dir=tmp_path / "middle")
    base = api.LoadedRun(tmp_path / "base", "last").model.state_dict()
    tuned = api.LoadedRun(tmp_path / "middle", "last").model.state_dict()
    for key in ("dense_2/kernel", "dense_2/bias"):
        assert tuned[key].tobytes() == base[key].tobytes(), key
    for key in ("dense_1/kernel", "dense_3/kernel"):
        assert not np.array_equal(tuned[key], base[key]), key
    del config["model"]["init_from"]
    path.write_text(yaml.safe_dump(config))
    checks = check_model(validate(str(path), files=False), batch_size=3, max_elements=10)
    assert {c.name for c in checks} == {"dense_1", "dense_3"}
    for check in checks:
        assert check.worst < 1e-6, (check.name, check.errors)
