"""Data parallelism on GPUs: one GPU per rank, chosen by the rank's node-local rank, and the
gradient all-reduce device -> host -> MPI -> device. No GPU here: the strict fake device
(tests/fakedevice.py) stands in for CuPy, with as many fake GPUs as a test asks for."""
import json
import sys

import numpy as np
import pytest
from fakedevice import FakeArray, fake, fake_cupy

from dltrain import backend, device as devices
from dltrain.errors import ConfigError
from dltrain.parallel.buffer import GradientBuffer
from dltrain.parallel.threads import ThreadGroup


@pytest.fixture
def gpus(monkeypatch):
    """gpus(n): a stand-in cupy over the fake device on a machine with n GPUs."""
    def machine(count):
        module = fake_cupy(available=True, gpus=count)
        monkeypatch.setitem(sys.modules, "cupy", module)
        return module

    yield machine
    backend.register_array_type(FakeArray, fake)            # as the contract suite expects it


def test_ranks_that_see_the_same_gpus_take_one_each_by_local_rank():
    views = [(None, 4)] * 3
    assert [devices.gpu_of_rank(rank, views) for rank in range(3)] == [0, 1, 2]
    views = [("0,1", 2)] * 2                                 # the same CUDA_VISIBLE_DEVICES on both
    assert [devices.gpu_of_rank(rank, views) for rank in range(2)] == [0, 1]


def test_ranks_with_gpus_of_their_own_take_their_first():
    views = [("2", 1), ("5", 1), ("7,0", 2)]                 # e.g. Slurm --gpus-per-task
    assert [devices.gpu_of_rank(rank, views) for rank in range(3)] == [0, 0, 0]


@pytest.mark.parametrize("views", [[(None, 1)] * 2, [("0", 1), ("0", 1)], [(None, 3)] * 4, [("1", 1), (None, 1)]])
def test_ranks_that_would_share_a_gpu_are_refused(views):
    with pytest.raises(ConfigError, match="takes one GPU per rank") as caught:
        devices.gpu_of_rank(0, views)
    assert caught.value.exit_code == 2
    assert "--device cpu" in caught.value.fix and "sharing a GPU between ranks is refused" in caught.value.fix


def test_the_launcher_checks_for_a_gpu_per_worker_before_starting_any(gpus, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus(1)
    with pytest.raises(ConfigError, match="2 ranks on this machine see 1 GPU") as caught:
        devices.check_workers("cuda", 2)
    assert "--workers 1" in caught.value.fix
    devices.check_workers("cuda", 1)
    devices.check_workers("cpu", 8)
    gpus(2)
    devices.check_workers("cuda", 2)


def test_each_thread_rank_makes_its_gpu_current(gpus, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    module = gpus(2)
    assert ThreadGroup(2).run(lambda comm: devices.use_rank_gpu("cuda", comm)) == [0, 1]
    assert sorted(module.cuda.used) == [0, 1]
    assert devices.use_rank_gpu("cpu", None) is None
    gpus(1)
    with pytest.raises(ConfigError, match="one GPU per rank"):
        ThreadGroup(2).run(lambda comm: devices.use_rank_gpu("cuda", comm))


def test_the_gradient_buffer_on_a_device_reduces_through_a_host_mirror():
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 2)]

    def rank(comm):
        params = [fake.asarray(rng.random(shape, dtype=np.float32) * 0) for shape in shapes]
        grads = [fake.asarray(np.full(shape, comm.rank + 1, np.float32)) for shape in shapes]
        buffer = GradientBuffer([(f"p{i}", p, None) for i, p in enumerate(params)])
        assert type(buffer.flat) is FakeArray and isinstance(buffer.host, np.ndarray)
        buffer.pack(grads, fake.asarray(np.float32(2.5 * (comm.rank + 1))), 6, diverged=comm.rank == 1)
        buffer.reduce(comm)
        views, total, count = buffer.unpack()
        assert all(type(v) is FakeArray for v in views)      # the optimizer reads device views
        return [fake.asnumpy(v) for v in views], total, count, buffer.flags()

    for views, total, count, flags in ThreadGroup(2).run(rank):
        assert all(np.array_equal(v, np.full(shape, 3, np.float32)) for v, shape in zip(views, shapes))
        assert (float(total), count, flags) == (7.5, 12, (1, 0))


# -- whole runs: 2 ranks on the fake device = 2 ranks on the CPU = 1 process -----------------

CONVNET = [{"type": "reshape", "target_shape": [8, 8, 1]},
           {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
           {"type": "batch_normalization"}, {"type": "activation", "activation": "relu"},
           {"type": "max_pooling2d", "pool_size": 2}, {"type": "dropout", "rate": 0.25},
           "flatten", {"type": "dense", "units": 10, "activation": "softmax"}]
RMSPROP = {"type": "rmsprop", "learning_rate": 0.001}


def saved_parameters(run_dir):
    with np.load(run_dir / "checkpoints" / "last.npz") as saved:
        return {k: saved[k] for k in saved.files if k.startswith("model/")}


def assert_same(a, b, rtol):
    a, b = saved_parameters(a), saved_parameters(b)
    assert a.keys() == b.keys()
    for key in a:
        if rtol == 0:
            assert np.array_equal(a[key], b[key]), key
        else:
            np.testing.assert_allclose(b[key], a[key], rtol=rtol, atol=1e-6, err_msg=key)


def test_two_thread_ranks_on_the_fake_device_train_what_the_cpu_ranks_and_one_process_train(tmp_path, gpus,
                                                                                             monkeypatch):
    """Synchronized batch normalization (its sums all-reduced through the host too), dropout
    over the global batch, RMSprop; each rank on its own fake GPU."""
    from dltrain import api
    from dltrain.registry import registry
    from training_helpers import digits_config

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    module = gpus(2)
    registry("layer")                                # load the catalogue before the threads start
    config = digits_config(tmp_path, epochs=2, optimizer=RMSPROP, layers=CONVNET)
    api.fit(config, run_dir=tmp_path / "one")
    for device in ("cpu", "cuda"):
        ranks = ThreadGroup(2).run(lambda comm: api.fit(
            config, run_dir=tmp_path / (device if comm.rank == 0 else f"{device}-rank1"), comm=comm, device=device))
        if device == "cuda":
            assert all(type(p) is FakeArray for rank in ranks for _, p, _ in rank.trainer.model.parameters())
    assert sorted(module.cuda.used) == [0, 1]                # one GPU each
    assert_same(tmp_path / "cpu", tmp_path / "cuda", rtol=0)  # the same sums, through the host
    assert_same(tmp_path / "one", tmp_path / "cuda", rtol=1e-5)


FAKE_CUPY = '''
import os, sys
sys.path.insert(0, {tests!r})
import fakedevice

module = fakedevice.fake_cupy(True, gpus=int(os.environ["FAKE_GPUS"]))
use = module.cuda.Device.use

def logged_use(device):
    use(device)
    with open(os.environ["FAKE_GPU_LOG"], "a") as log:
        log.write(f"{{os.environ.get('PMI_RANK')}} {{device.id}}\\n")

module.cuda.Device.use = logged_use
sys.modules[__name__] = module
'''


def test_two_mpi_ranks_on_the_fake_device_each_take_a_gpu_and_match_the_cpu_ranks(tmp_path):
    """Real ranks through the MPICH wheel's mpiexec (`fit --workers 2 --device cuda`), with a
    stand-in `cupy` package over the fake device on the ranks' path; a machine with one GPU
    refuses two plain `mpiexec` ranks, on each rank, with exit 2."""
    import os
    import subprocess
    from pathlib import Path

    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install 'dltrain[mpi]'")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside this Python (the mpich wheel of dltrain[mpi])")
    from conftest import ROOT
    from training_helpers import digits_config

    package = tmp_path / "fakepath" / "cupy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_CUPY.format(tests=str(ROOT / "tests")))
    log = tmp_path / "used.txt"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(PYTHONPATH=f"{tmp_path / 'fakepath'}:{ROOT}", FAKE_GPUS="2", FAKE_GPU_LOG=str(log),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    config = digits_config(tmp_path, epochs=2, optimizer=RMSPROP, layers=CONVNET)

    def fit(run, *extra, launcher=()):
        args = [*launcher, sys.executable, "-m", "dltrain", "fit", str(config), "--run-dir", str(tmp_path / run),
                "--quiet", *extra]
        return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)

    for run, extra in (("cpu", ["--workers", "2"]), ("cuda", ["--workers", "2", "--device", "cuda"])):
        done = fit(run, *extra)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert sorted(log.read_text().split("\n")[:-1]) == ["0 0", "1 1"]     # rank r took GPU r
    assert json.loads((tmp_path / "cuda" / "run.json").read_text())["device"]["type"] == "cuda"
    assert_same(tmp_path / "cpu", tmp_path / "cuda", rtol=0)

    env["FAKE_GPUS"] = "1"
    done = fit("refused", "--device", "cuda", launcher=(str(mpiexec), "-n", "2"))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "takes one GPU per rank, but 2 ranks on this machine see 1 GPU(s)" in done.stderr
    assert "Traceback" not in done.stderr
