"""Choosing a device: --device cpu|cuda|auto on fit, evaluate, predict and time, and `device:` in
the config. Without CuPy, or with a CuPy that sees no GPU, cuda is a clear error (exit 2) and auto
is the CPU; with data parallelism each rank takes a GPU of its own (fewer GPUs than ranks: exit
2; tests/test_parallel_device.py trains that way). With a stand-in `cupy` over the strict fake
device (tests/fakedevice.py), whole runs train, evaluate and predict on device arrays and give
the CPU's numbers; the step's stages (forward, loss, backward, update, metric updates) run in
hot paths there, where any read back to the host raises."""
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import CONFIGS, ROOT
from fakedevice import fake_cupy

from dltrain import api, backend, device as devices
from dltrain.errors import ConfigError


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # `import cupy` raises ImportError


@pytest.fixture
def cupy_without_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(available=False))


@pytest.fixture
def fake_gpu(monkeypatch):
    module = fake_cupy(available=True)
    monkeypatch.setitem(sys.modules, "cupy", module)
    yield module
    from fakedevice import FakeArray, fake

    backend.register_array_type(FakeArray, fake)            # as the contract suite expects it


def test_cpu_is_the_default_and_auto_falls_back_to_the_cpu(no_cupy):
    assert backend.resolve_device(None) == "cpu"
    assert backend.resolve_device("cpu") == "cpu"
    assert backend.resolve_device("auto") == "cpu"
    assert devices.choose(None, "auto") == "cpu"


def test_cuda_without_cupy_names_the_extra(no_cupy):
    with pytest.raises(ConfigError) as caught:
        backend.resolve_device("cuda", "--device")
    message = str(caught.value)
    assert "CuPy is not installed" in message and "pip install 'dltrain[cuda]'" in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("answer", [False, RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")])
def test_cuda_with_a_cupy_that_sees_no_gpu_is_refused(monkeypatch, answer):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(available=answer))
    with pytest.raises(ConfigError, match="sees no usable GPU") as caught:
        backend.resolve_device("cuda")
    assert "dltrain[cuda]" in str(caught.value)
    assert backend.resolve_device("auto") == "cpu"


def test_an_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        backend.resolve_device("gpu")


def _digits(tmp_path, *extra):
    return ["fit", CONFIGS / "digits_mlp.yaml", "--set", "training.epochs=1", "--run-dir",
            tmp_path / "run", "--quiet", *extra]


def test_fit_device_cuda_without_cupy_exits_2(cli, tmp_path, no_cupy):
    result = cli(*_digits(tmp_path, "--device", "cuda"))
    assert result.exit_code == 2
    assert "CuPy is not installed" in result.output and "pip install 'dltrain[cuda]'" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()      # refused before any training


def test_the_config_device_key(cli, tmp_path, no_cupy):
    result = cli(*_digits(tmp_path, "--set", "device=cuda"))
    assert result.exit_code == 2 and "device 'cuda' was asked for" in result.output
    result = cli(*_digits(tmp_path, "--set", "device=gpu"))
    assert result.exit_code == 2 and "device 'gpu' is not one of cpu, cuda, auto" in result.output
    result = cli(*_digits(tmp_path, "--set", "device=auto", "--overwrite"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["device"] == {"type": "cpu"}
    result = cli(*_digits(tmp_path, "--set", "device=cuda", "--device", "cpu", "--overwrite"))
    assert result.exit_code == 0, result.output                 # the command line wins


@pytest.mark.parametrize("command", ["evaluate", "predict", "time"])
def test_every_command_takes_device(cli, tmp_path, no_cupy, command):
    args = {"evaluate": [tmp_path], "predict": [tmp_path, tmp_path / "x.csv"],
            "time": [CONFIGS / "digits_mlp.yaml"]}[command]
    result = cli(command, *args, "--help")
    assert "--device [cpu|cuda|auto]" in result.output
    if command == "time":
        result = cli(command, *args, "--device", "cuda")
        assert result.exit_code == 2 and "pip install 'dltrain[cuda]'" in result.output


def test_a_real_subprocess_with_a_cupy_on_the_path_that_sees_no_gpu_exits_2(tmp_path):
    package = tmp_path / "fakepath" / "cupy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def is_available():\n    return False\n")
    env = {"PYTHONPATH": f"{tmp_path / 'fakepath'}:{ROOT}"}
    from conftest import run_dltrain

    result = run_dltrain("fit", CONFIGS / "digits_mlp.yaml", "--device", "cuda", "--run-dir",
                         tmp_path / "run", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "sees no usable GPU" in result.stderr and "Traceback" not in result.stderr
    result = run_dltrain("fit", CONFIGS / "digits_mlp.yaml", "--device", "auto", "--run-dir",
                         tmp_path / "run", "--set", "training.epochs=1", "--quiet", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr


def test_fit_workers_on_cuda_with_fewer_gpus_than_workers_exits_2_before_any_rank(cli, tmp_path, fake_gpu,
                                                                                 monkeypatch):
    """One GPU per rank (tests/test_parallel_device.py trains that way): the stand-in machine has
    one GPU, so 2 workers are refused in the launching process, once, before mpiexec starts."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    from dltrain.parallel import launch

    monkeypatch.setattr(launch, "launch", lambda *args: pytest.fail("a rank was started"))
    result = cli(*_digits(tmp_path, "--device", "cuda", "--workers", "2"))
    assert result.exit_code == 2, result.output
    assert "takes one GPU per rank, but 2 ranks on this machine see 1 GPU(s)" in result.output
    assert result.output.count("one GPU per rank") == 1


# -- whole runs on the fake device ------------------------------------------------------------

#: small configs over synthetic data, one per family of layers, callbacks and training options
SMALL = {
    "conv": """
name: conv
seed: 3
data:
  train: {type: npz, path: data.npz, x: images, y: classes}
  validation: {split: 0.25}
  test: {split: 0.2}
model:
  input_shape: [8, 8, 1]
  layers:
    - {name: c1, type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu}
    - {type: batch_normalization}
    - {name: c2, type: conv2d, filters: 4, kernel_size: 3, padding: same, kernel_regularizer: {type: l2, l2: 0.001}}
    - {type: add, inputs: [c1, c2], activation: relu}
    - {type: max_pooling2d}
    - {type: separable_conv2d, filters: 4, kernel_size: 2, padding: same}
    - {type: depthwise_conv2d, kernel_size: 2}
    - {type: average_pooling2d, pool_size: 1}
    - {type: conv2d_transpose, filters: 2, kernel_size: 2, strides: 2}
    - {type: spatial_dropout2d, rate: 0.2}
    - {type: global_average_pooling2d}
    - {type: dropout, rate: 0.3}
    - {type: dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01, global_clipnorm: 1.0}
metrics: [accuracy, {type: f1}, {type: top_k_accuracy, k: 2}]
training: {epochs: 3, batch_size: 16, class_weight: {0: 2.0}}
callbacks:
  - {type: early_stopping, monitor: val_loss, patience: 1, restore_best_weights: true}
  - {type: reduce_lr_on_plateau, monitor: val_loss, patience: 1}
  - {type: model_checkpoint, monitor: val_accuracy, mode: max}
""",
    "text": """
name: text
seed: 5
data:
  train: {type: npz, path: data.npz, x: ids, y: flags}
  validation: {split: 0.25}
model:
  input_shape: [10]
  layers:
    - {type: embedding, input_dim: 20, output_dim: 4, mask_zero: true}
    - {type: bidirectional, layer: {type: lstm, units: 3, return_sequences: true}}
    - {type: gru, units: 3, return_sequences: true}
    - {type: simple_rnn, units: 3, return_sequences: true}
    - {type: layer_normalization}
    - {type: global_average_pooling1d}
    - {type: dense, units: 1, activation: sigmoid}
loss: binary_crossentropy
optimizer: {type: rmsprop, learning_rate: 0.01, centered: true, momentum: 0.5}
metrics: [accuracy, auc, precision]
training: {epochs: 2, batch_size: 16}
""",
    "series": """
name: series
seed: 9
data:
  train: {type: npz, path: data.npz, x: series, y: values}
  validation: {split: 0.25}
model:
  input_shape: [12, 2]
  layers:
    - {type: conv1d, filters: 4, kernel_size: 3, padding: causal, activation: gelu}
    - {type: max_pooling1d, pool_size: 2}
    - {type: conv1d, filters: 4, kernel_size: 2, activation: tanh}
    - {type: global_max_pooling1d}
    - {type: dense, units: 2, bias_regularizer: {type: l1, l1: 0.01}}
loss: huber
optimizer: {type: sgd, learning_rate: 0.01, momentum: 0.9, nesterov: true, clipnorm: 1.0}
metrics: [mae, rmse, r2]
training: {epochs: 2, batch_size: 8}
""",
}


def _small_data(folder):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, (64, 10))
    ids[np.arange(64)[:, None] >= rng.integers(3, 11, 64)[:, None] + np.zeros(10, int)] = 0   # padding
    np.savez(folder / "data.npz", images=rng.random((64, 8, 8, 1), dtype=np.float32),
             classes=rng.integers(0, 3, 64), ids=ids, flags=rng.integers(0, 2, 64).astype(np.float32),
             series=rng.standard_normal((64, 12, 2)).astype(np.float32),
             values=rng.standard_normal((64, 2)).astype(np.float32))


def _same_runs(cpu, gpu, what):
    for a, b in zip(cpu.history, gpu.history, strict=True):
        for key in a:
            if key != "seconds":
                np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-7, err_msg=f"{what} {key}")
    for key, value in (cpu.test or {}).items():
        np.testing.assert_allclose(gpu.test[key], value, rtol=1e-5, atol=1e-7, err_msg=f"{what} test {key}")


def _hot(function):
    from fakedevice import hot_path

    def hot(*args, **kwargs):
        with hot_path():
            return function(*args, **kwargs)

    return hot


def _step_stages_in_hot_paths(monkeypatch):
    """Model forward/backward, the loss, its gradient, the optimizer update and every metric
    update run inside fakedevice.hot_path(): any read back to the host there raises."""
    from dltrain.losses import Loss
    from dltrain.model import Model
    from dltrain.optimizers import Optimizer
    from dltrain.registry import registry

    monkeypatch.setattr(Model, "forward", _hot(Model.forward))
    monkeypatch.setattr(Model, "backward", _hot(Model.backward))
    monkeypatch.setattr(Optimizer, "apply", _hot(Optimizer.apply))
    monkeypatch.setattr(Loss, "__call__", _hot(Loss.__call__))
    for kind, method in (("loss", "backward"), ("metric", "update"), ("optimizer", "apply")):
        for name in registry(kind).names():
            cls = registry(kind).get(name)
            if method in vars(cls):
                monkeypatch.setattr(cls, method, _hot(vars(cls)[method]))


def _check_run_on_the_fake_device(config, tmp_path):
    overrides = ["training.epochs=1"] if "configs" in str(config) else ()
    cpu = api.fit(str(config), overrides, run_dir=tmp_path / "cpu", device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        _step_stages_in_hot_paths(patch)
        gpu = api.fit(str(config), overrides, run_dir=tmp_path / "gpu", device="cuda")
    assert json.loads((tmp_path / "gpu" / "run.json").read_text())["device"]["type"] == "cuda"
    from fakedevice import FakeArray

    assert all(type(p) is FakeArray for _, p, _ in gpu.trainer.model.parameters())   # it ran there
    assert all(type(s) is FakeArray for slots in gpu.trainer.optimizer.slots.values() for s in slots.values())
    _same_runs(cpu, gpu, config.name)
    # the checkpoint was written from the host, and scores the same on either device
    if gpu.test is not None:
        scores = api.evaluate(tmp_path / "gpu", "last", device="cuda")
        again = api.evaluate(tmp_path / "gpu", "last", device="cpu")
        assert scores.keys() == again.keys()
        for key in scores:
            np.testing.assert_allclose(scores[key], again[key], rtol=1e-5, err_msg=key)
    return cpu, gpu


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_run_on_the_fake_device_equals_the_cpu_run(name, tmp_path, fake_gpu):
    _small_data(tmp_path)
    config = tmp_path / f"{name}.yaml"
    config.write_text(SMALL[name])
    _check_run_on_the_fake_device(config, tmp_path)


def test_a_resumed_run_on_the_fake_device_continues_exactly(tmp_path, fake_gpu):
    _small_data(tmp_path)
    config = tmp_path / "conv.yaml"
    config.write_text(SMALL["conv"].replace("early_stopping, monitor: val_loss, patience: 1",
                                            "early_stopping, monitor: val_loss, patience: 5"))
    whole = api.fit(str(config), run_dir=tmp_path / "whole", device="cuda")
    api.fit(str(config), ["training.epochs=1"], run_dir=tmp_path / "part", device="cuda")
    resumed = api.fit(str(config), run_dir=tmp_path / "part", resume="auto", device="cuda",
                      allow_config_change=True)
    _same_runs(whole, resumed, "resumed")


def test_sigterm_mid_epoch_on_the_fake_device_then_resume_equals_straight(tmp_path, fake_gpu):
    """The mid-epoch checkpoint holds the metrics' device sums (brought to the host); resumed
    on the device, the run equals a straight one."""
    from test_resume import KillAt

    from dltrain.errors import Interrupted

    _small_data(tmp_path)
    config = tmp_path / "text.yaml"
    config.write_text(SMALL["text"].replace("epochs: 2", "epochs: 3"))    # precision: array sums
    straight = api.fit(str(config), run_dir=tmp_path / "straight", device="cuda")
    with pytest.raises(Interrupted):
        api.fit(str(config), run_dir=tmp_path / "run", device="cuda", callbacks=[KillAt(2, 1)])
    resumed = api.fit(None, resume=tmp_path / "run", device="cuda")
    _same_runs(straight, resumed, "mid-epoch resume")


def test_metrics_are_read_back_only_when_the_logs_are_read(tmp_path, fake_gpu):
    """On a device a batch's logs read the metrics lazily: a batch whose logs nobody reads costs
    only the step's own loss reads; the progress display reads every 5th batch."""
    import fakedevice

    from dltrain.training.callbacks import Callback

    class Reads(Callback):
        def __init__(self, every):
            self.every, self.per_batch = every, []

        def on_train_batch_begin(self, batch, logs=None):
            self.before = fakedevice.reads[0]

        def on_train_batch_end(self, batch, logs=None):
            if self.every and batch % self.every == 0:
                dict(logs)                                     # what ProgressDisplay does
            self.per_batch.append(fakedevice.reads[0] - self.before)

    _small_data(tmp_path)
    config = tmp_path / "text.yaml"
    config.write_text(SMALL["text"].replace("epochs: 2", "epochs: 1").replace("batch_size: 16", "batch_size: 4"))
    quiet, shown = Reads(0), Reads(5)
    api.fit(str(config), run_dir=tmp_path / "quiet", device="cuda", callbacks=[quiet])
    api.fit(str(config), run_dir=tmp_path / "shown", device="cuda", callbacks=[shown])
    per_step = quiet.per_batch[0]
    assert set(quiet.per_batch) == {per_step} and per_step == 1          # the loss, no metric
    assert all(n == per_step for b, n in enumerate(shown.per_batch) if b % 5)
    logged = {n for b, n in enumerate(shown.per_batch) if b % 5 == 0}
    assert len(logged) == 1 and logged.pop() > per_step       # the same few reads each time (auc: 2)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["digits_mlp.yaml", "digits_resnet.yaml", "sentiment_gru.yaml",
                                    "sms_spam_lstm.yaml", "seasonal_forecast.yaml", "breast_cancer_logreg.yaml"])
def test_an_example_config_on_the_fake_device_equals_the_cpu_run(config, tmp_path, fake_gpu):
    from conftest import skip_without_data

    skip_without_data(CONFIGS / config)
    _check_run_on_the_fake_device(CONFIGS / config, tmp_path)


def test_predict_and_time_on_the_fake_device(tmp_path, fake_gpu):
    api.fit(str(CONFIGS / "digits_mlp.yaml"), ["training.epochs=1"], run_dir=tmp_path / "run", device="cpu")
    data = np.load(ROOT / "datasets" / "digits.npz")
    np.save(tmp_path / "x.npy", data["x"][:50])
    on_cpu = api.predict(tmp_path / "run", [tmp_path / "x.npy"], device="cpu").outputs
    on_gpu = api.predict(tmp_path / "run", [tmp_path / "x.npy"], device="cuda").outputs
    assert isinstance(on_gpu, np.ndarray)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-7)
    from dltrain.experiment import Experiment
    from dltrain.timing import time_layers

    model = Experiment(str(CONFIGS / "digits_resnet.yaml")).build()
    rows = time_layers(model, 4, iterations=1, warmup=0, device="cuda")
    assert rows and all(r.forward_ms >= 0 and r.backward_ms >= 0 for r in rows)


def test_gpu_check_script_parses_and_says_why_without_a_gpu(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    import os

    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_SKIP_INSTALL": "1",
           "PYTHONPATH": str(tmp_path)}           # a cupy-free path: as on a CPU-only machine
    (tmp_path / "cupy.py").write_text("raise ImportError('no cupy on this machine')\n")
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no usable GPU here: CuPy is not installed" in result.stdout
    assert "skipped" in result.stdout and "failed" not in result.stdout


def test_the_gpu_benchmark_runs_its_dltrain_side_on_the_fake_device():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--fake", "--steps", "1",
                             "--rounds", "1", "--models", "mlp,lstm"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "mlp" in result.stdout and "lstm" in result.stdout and "s/epoch" in result.stdout
