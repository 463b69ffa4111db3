"""The registry's contract on a strict fake device: every layer, activation, loss, optimizer and
metric runs on device arrays (tests/fakedevice.py) without an implicit host conversion, a host
array mixed in, or a read back inside the hot path, and gives numpy's results.

What this checks is device hygiene, on every commit, on a machine without a GPU: the same code
path would run on cupy arrays. Each case runs a host twin and a device twin built from the same
seed and compares them.
"""
import inspect

import numpy as np
import pytest
from fakedevice import FakeArray, fake, hot_path, to_device, to_host
from test_registry_contract import _build, _layer_examples, _loss_case, _loss_settings

from dltrain.device import move_layer
from dltrain.registry import build, registry

RTOL, ATOL = 1e-6, 1e-6


def _same(device_value, host_value, what):
    assert type(device_value) is FakeArray, f"{what} left the device: {type(device_value).__name__}"
    np.testing.assert_allclose(fake.asnumpy(device_value), host_value, rtol=RTOL, atol=ATOL, err_msg=what)


def _each(value, multi):
    return value if multi else [value]


@pytest.mark.parametrize("name, example", _layer_examples())
def test_layer_forward_and_backward_on_the_fake_device(name, example):
    host, _, x = _build(name, example, np.float32)
    device, _, _ = _build(name, example, np.float32)
    move_layer(device, fake)           # params, state and build-time arrays, moved once
    x_device = to_device(x)
    for training in (True, False):
        y = host.forward(x, training=training)
        grad_y = np.random.default_rng(5).standard_normal(y.shape).astype(y.dtype)
        grad_x = host.backward(grad_y)
        with hot_path():
            y_device = device.forward(x_device, training=training)
            grad_x_device = device.backward(fake.asarray(grad_y))
        _same(y_device, y, f"{name} forward (training={training})")
        for i, (g_device, g) in enumerate(zip(_each(grad_x_device, host.multi_input),
                                              _each(grad_x, host.multi_input))):
            if g is None:
                assert g_device is None
            else:
                _same(g_device, g, f"{name} grad of input {i} (training={training})")
        for key, grad in host.grads.items():
            _same(device.grads[key], grad, f"{name} grads[{key!r}] (training={training})")
        for key, value in host.state.items():
            _same(device.state[key], value, f"{name} state[{key!r}]")


@pytest.mark.parametrize("name", registry("activation").names())
def test_activation_on_the_fake_device(name):
    host, device = build("activation", name), build("activation", name)
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    y = host.forward(x)
    grad_x = host.backward(np.ones_like(y))
    with hot_path():
        y_device = device.forward(fake.asarray(x))
        grad_device = device.backward(fake.ones_like(y_device))
    _same(y_device, y, f"{name} forward")
    _same(grad_device, grad_x, f"{name} backward")


def _loss_value(loss, pred, target, weights=None, logits=False):
    value = loss.forward(pred, target, weights, logits)
    return value, loss.backward()


@pytest.mark.parametrize("name, from_logits", _loss_settings())
def test_loss_on_the_fake_device(name, from_logits):
    arguments = {"from_logits": True} if from_logits else {}
    extra = ({"label_smoothing": 0.1} if "label_smoothing" in
             inspect.signature(registry("loss").get(name).__init__).parameters else {})
    for args in ({**arguments}, {**arguments, **extra}):
        host, device = build("loss", {"type": name, **args}), build("loss", {"type": name, **args})
        rng = np.random.default_rng(0)
        pred, target = _loss_case(host, rng, from_logits)
        pred = pred.astype(np.float32)
        weights = rng.uniform(0.5, 2, len(pred)).astype(np.float32)
        for w in (None, weights):
            value, grad = _loss_value(host, pred, target, w)
            with hot_path():
                value_device, grad_device = _loss_value(device, fake.asarray(pred), fake.asarray(target),
                                                        None if w is None else fake.asarray(w))
            _same(value_device, value, f"{name} {args} value")
            _same(grad_device, grad, f"{name} {args} gradient")
        if host.fuses and not from_logits:          # the trainer's fused path: logits in
            z, target = _loss_case(host, rng, logits=True)
            z = z.astype(np.float32)
            value, grad = _loss_value(host, z, target, logits=True)
            with hot_path():
                value_device, grad_device = _loss_value(device, fake.asarray(z), fake.asarray(target),
                                                        logits=True)
            _same(value_device, value, f"{name} fused value")
            _same(grad_device, grad, f"{name} fused gradient")
            _same(device._p, host._p, f"{name} fused probabilities")


def _optimizer_settings():
    cases = []
    for name in registry("optimizer").names():
        cls = registry("optimizer").get(name)
        parameters = inspect.signature(cls.__init__).parameters
        variants = [{}, {"clipnorm": 0.5}, {"global_clipnorm": 0.5}, {"clipvalue": 0.1}]
        for flag in ("momentum", "nesterov", "centered", "amsgrad"):
            if flag in parameters:
                variants.append({flag: 0.9 if flag == "momentum" else True,
                                 **({"momentum": 0.9} if flag == "nesterov" else {})})
        variants.append({"learning_rate": {"type": "exponential_decay", "initial_learning_rate": 0.01,
                                           "decay_steps": 2, "decay_rate": 0.5}})
        for variant in variants:
            cases.append(pytest.param(name, variant, id=f"{name}-{'-'.join(map(str, variant)) or 'default'}"))
    return cases


@pytest.mark.parametrize("name, arguments", _optimizer_settings())
def test_optimizer_update_on_the_fake_device(name, arguments):
    rng = np.random.default_rng(0)
    shapes = {"dense/kernel": (4, 3), "dense/bias": (3,), "conv/kernel": (3, 3, 2, 4)}
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(3)]
    host, device = build("optimizer", {"type": name, **arguments}), build("optimizer", {"type": name, **arguments})
    host_params = {k: v.copy() for k, v in params.items()}
    device_params = to_device(params)
    for step in grads:
        host.apply((k, host_params[k], step[k]) for k in shapes)
        device_grads = to_device(step)
        with hot_path():
            device.apply((k, device_params[k], device_grads[k]) for k in shapes)
    for key in shapes:
        _same(device_params[key], host_params[key], f"{name} {arguments} {key}")
    host_state, device_state = host.state_dict(), device.state_dict()
    assert set(host_state) == set(device_state)
    for key, value in host_state.items():
        moved = device_state[key]
        np.testing.assert_allclose(to_host(moved), value, rtol=RTOL, atol=ATOL, err_msg=key)


def _metric_case(name, rng):
    """(pred, target) pairs for a metric: class scores and labels, or regression values."""
    metric = build("metric", name)
    if getattr(metric, "direction", "max") == "min" or name in ("r2",):
        pred = rng.standard_normal((6, 3)).astype(np.float32)
        return [(pred, pred + rng.standard_normal((6, 3)).astype(np.float32))]
    scores = rng.random((6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    binary = rng.random((6, 1)).astype(np.float32)
    cases = [(scores, labels), (scores, np.eye(4, dtype=np.float32)[labels]),
             (binary, rng.integers(0, 2, (6, 1)).astype(np.float32))]
    if name in ("categorical_accuracy",):
        cases = cases[1:2]
    elif name in ("sparse_categorical_accuracy",):
        cases = cases[:1]
    elif name == "binary_accuracy":
        cases = cases[2:]
    elif name.startswith("top_k") or name.startswith("sparse_top_k"):
        cases = cases[:2]
    return cases


#: Keras's readings of the confusion metrics and AUC, beside each metric's defaults
METRIC_VARIANTS = {"precision": [{"thresholds": 0.5}, {"class_id": 0}], "recall": [{"thresholds": 0.3}],
                   "f1": [{"average": "micro"}, {"average": "weighted", "threshold": 0.5}],
                   "auc": [{"num_thresholds": 20}, {"multi_label": False}]}


@pytest.mark.parametrize("name, arguments", [pytest.param(n, a, id=f"{n}-{'-'.join(a) or 'default'}")
                                             for n in registry("metric").names()
                                             for a in [{}, *METRIC_VARIANTS.get(n, [])]])
def test_metric_update_on_the_fake_device(name, arguments):
    rng = np.random.default_rng(0)
    for pred, target in _metric_case(name, rng):
        spec = {"type": name, **arguments}
        host, device = build("metric", spec), build("metric", spec)
        for _ in range(2):
            host.update(pred, target)
            with hot_path():
                device.update(fake.asarray(pred), fake.asarray(target))
        expected, got = host.result(), device.result()
        assert isinstance(got, float), f"{name}.result() gave {type(got).__name__}, not a float"
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)


def test_the_fake_device_is_strict():
    x = fake.asarray(np.ones(3, np.float32))
    from fakedevice import DeviceSyncError, HostConversionError

    for implicit in (np.asarray, np.array, np.exp, np.sum, lambda a: np.ones(3) + a,
                     lambda a: a + np.ones(3), lambda a: np.copyto(np.empty(3), a),
                     lambda a: np.empty(3).__setitem__(slice(None), a),
                     lambda a: fake.multiply(a, a, out=np.empty(3)), lambda a: fake.add.at(a, [0], 1),
                     lambda a: a[np.array([0, 1])]):
        with pytest.raises((HostConversionError, TypeError)):
            implicit(x)
    for sync in (float, int, bool, lambda a: a.item(), fake.asnumpy):
        with hot_path(), pytest.raises(DeviceSyncError):
            sync(x.sum())
    assert float(x.sum()) == 3.0                 # outside a hot path a read back is allowed
    assert type(x * np.float32(2)) is FakeArray and type(2.0 - x) is FakeArray
    from dltrain.backend import array_module

    assert array_module(x) is fake and array_module(np.ones(2)) is np
