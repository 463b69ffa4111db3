"""CPU/GPU parity on a real GPU (mark ``gpu``; benchmarks/gpu_check.sh runs them).

Without CuPy or without a usable GPU every test here is skipped, saying why. With one:

- every registered layer's example, in float64 (the device code path, apart from float32
  rounding): forward output and each gradient's norm within 1e-5 relative of the CPU's;
- every example config trains 2 epochs on cpu and on cuda, the metrics of each epoch matching to
  1e-4 (configs whose CPU epoch is long train on a fixed slice of their data: SLICED).
"""
import numpy as np
import pytest
from conftest import CONFIGS
from test_registry_contract import _build, _layer_examples

from dltrain import backend

pytestmark = pytest.mark.gpu

_CUPY, _WHY = backend.find_cupy()
if _CUPY is None:
    pytestmark = [pytest.mark.gpu, pytest.mark.skip(reason=f"no GPU to check parity on: {_WHY}")]

#: configs trained on their first rows only (their full CPU epoch takes minutes): train, held out
SLICED = {"mnist_convnet.yaml": (4096, 1024), "mnist_separable.yaml": (4096, 1024)}


def _relative(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(b), 1e-30)
    return np.linalg.norm(a - b) / scale


@pytest.mark.parametrize("name, example", _layer_examples())
def test_layer_parity_on_the_gpu(name, example):
    from dltrain.device import move_layer

    cupy = backend.device_module("cuda")
    host, _, x = _build(name, example, np.float64)
    device, _, _ = _build(name, example, np.float64)
    move_layer(device, cupy)
    y = host.forward(x, training=not host.random)
    y_gpu = device.forward(cupy.asarray(x) if not isinstance(x, list) else [cupy.asarray(v) for v in x],
                           training=not host.random)
    assert _relative(cupy.asnumpy(y_gpu), y) <= 1e-5, f"{name}: forward"
    grad_y = np.random.default_rng(5).standard_normal(y.shape)
    grad_x = host.backward(grad_y)
    grad_gpu = device.backward(cupy.asarray(grad_y))
    pairs = list(zip(grad_x if host.multi_input else [grad_x], grad_gpu if host.multi_input else [grad_gpu]))
    pairs += [(host.grads[k], device.grads[k]) for k in host.grads]
    for cpu_grad, gpu_grad in pairs:
        if cpu_grad is None:
            continue
        norm, gpu_norm = np.linalg.norm(cpu_grad), float(cupy.linalg.norm(gpu_grad))
        assert abs(gpu_norm - norm) <= 1e-5 * max(norm, 1e-30), f"{name}: gradient norm {gpu_norm} vs {norm}"


def _configs():
    return [pytest.param(path.name, id=path.name) for path in sorted(CONFIGS.glob("*.yaml"))]


@pytest.mark.parametrize("config", _configs())
def test_two_epochs_on_the_gpu_match_the_cpu(config, tmp_path, monkeypatch):
    from conftest import skip_without_data
    from test_examples import _use_local_datasets

    from dltrain import api
    from dltrain.data.dataset import Split
    from dltrain.experiment import Experiment

    skip_without_data(CONFIGS / config)
    _use_local_datasets(CONFIGS / config, monkeypatch)
    if config in SLICED:
        rows = dict(zip(("train", "held"), SLICED[config]))
        load = Experiment.load_data

        def sliced(self):
            splits = load(self)
            return {k: None if s is None else Split(s.x, s.y, s.indices[:rows["train" if k == "train" else "held"]], s.name)
                    for k, s in splits.items()}

        monkeypatch.setattr(Experiment, "load_data", sliced)
    runs = {device: api.fit(str(CONFIGS / config), ["training.epochs=2"], run_dir=tmp_path / device,
                            device=device) for device in ("cpu", "cuda")}
    for cpu, gpu in zip(runs["cpu"].history, runs["cuda"].history, strict=True):
        for key, value in cpu.items():
            if key not in ("seconds", "epoch"):
                np.testing.assert_allclose(gpu[key], value, rtol=1e-4, atol=1e-4, err_msg=f"{config} {key}")
