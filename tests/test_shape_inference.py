"""Shape inference allocates nothing: `dltrain check` and `summary` on a model of any size read
shapes from placeholders, and the parameters become arrays only when the model is built."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dltrain.layers.base import SHAPES_ONLY
from dltrain.model import Model
from dltrain.registry import build, registry

HUGE = """
name: huge-dense
data:
  train: {type: npz, path: tiny.npz, x: x, y: y}
model:
  input_shape: [20000]
  layers:
    - {type: dense, units: 10000, activation: relu}     # 200 million weights: 800 MB as float32
    - {type: dense, units: 2, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: adam
training: {epochs: 1, batch_size: 32}
"""

MEASURE = textwrap.dedent("""
    import resource, subprocess, sys, time
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dltrain", *sys.argv[1:]], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(done.returncode, seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
    print(done.stdout, done.stderr[-2000:])
""")


@pytest.mark.parametrize("command", ["check", "summary"])
def test_check_of_a_200_million_weight_dense_layer_is_fast_and_small(tmp_path, command):
    np.savez(tmp_path / "tiny.npz", x=np.zeros((4, 20000), np.float32), y=np.zeros(4, np.int64))
    (tmp_path / "huge.yaml").write_text(HUGE)
    run = subprocess.run([sys.executable, "-c", MEASURE, command, str(tmp_path / "huge.yaml")],
                         capture_output=True, text=True, timeout=120)
    first, rest = run.stdout.split("\n", 1)
    code, seconds, peak_kib, cpu = first.split()
    assert int(code) == 0, rest + run.stderr
    assert "200,030,002" in rest                                   # the parameters are counted
    assert float(seconds) < 2.0, f"{command} took {float(seconds):.2f} s ({float(cpu):.2f} s of CPU)"
    assert int(peak_kib) / 1024 < 200, f"{command} peaked at {int(peak_kib) / 1024:.0f} MiB"


def test_inferred_shapes_equal_built_shapes_and_hold_no_arrays_for_every_layer_example():
    """Over the whole registry: build in shapes-only mode promises what the real build gives,
    and every parameter is a one-element placeholder until then."""
    for name in registry("layer").names():
        cls = registry("layer").get(name)
        for arguments, input_shape in cls.examples:
            inferred, real = (build("layer", {"type": name, **arguments}) for _ in range(2))
            inferred.name = real.name = name
            shape = inferred.build(input_shape, SHAPES_ONLY)
            assert shape == real.build(input_shape, np.random.default_rng(0)), (name, arguments)
            assert inferred.params.keys() == real.params.keys(), name
            assert inferred.state.keys() == real.state.keys(), name
            for key, value in {**inferred.params, **inferred.state}.items():
                target = real.params.get(key, real.state.get(key))
                assert value.shape == target.shape and value.dtype == target.dtype, (name, key)
                assert value.base is not None and value.base.size == 1, (name, key)


def test_a_model_with_shapes_inferred_builds_the_same_parameters_as_one_built_directly():
    config = {"input_shape": [8, 8, 1], "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": "relu"},
        {"type": "batch_normalization"}, {"type": "max_pooling2d"}, {"type": "flatten"},
        {"type": "dense", "units": 4, "activation": "softmax"}]}
    inferred = Model.from_config(config)
    assert inferred.infer_shapes() == (4,) and inferred.built and not inferred.allocated
    assert inferred.count_params() == 3 * 9 + 3 + 3 + 3 + 27 * 4 + 4
    inferred.build(np.random.default_rng(5))
    direct = Model.from_config(config)
    direct.build(np.random.default_rng(5))
    assert inferred.allocated
    for (key, a), b in zip(inferred.state_dict().items(), direct.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=key)
        assert a.flags.writeable, key


def test_loading_weights_into_a_model_with_shapes_only_is_refused():
    model = Model.from_config({"input_shape": [3], "layers": [{"type": "dense", "units": 2}]})
    model.infer_shapes()
    with pytest.raises(RuntimeError, match="call build"):
        model.load_state_dict({"dense_1/kernel": np.zeros((3, 2)), "dense_1/bias": np.zeros(2)})
