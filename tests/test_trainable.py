"""`trainable: false`: frozen layers keep their parameters to the bit, get no gradient and no
optimizer state; a frozen batch normalization runs in inference mode; the gradients of the rest
still check; summary counts trainable and frozen parameters; the two-stage fine-tuning example
(configs/digits_finetune_frozen.yaml, then _unfrozen) trains."""
import numpy as np
import pytest
import yaml

from conftest import CONFIGS

FROZEN = ["conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2", "conv2d_3", "block1_bn",
          "conv2d_4", "batch_normalization_3", "conv2d_5", "block2_bn", "shortcut"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """digits_resnet (1 epoch) -> digits_finetune_frozen (2) -> digits_finetune_unfrozen (1)."""
    from dltrain import api

    root = tmp_path_factory.mktemp("finetune")
    api.fit(str(CONFIGS / "digits_resnet.yaml"), overrides=["training.epochs=1"], run_dir=root / "base")
    api.fit(str(CONFIGS / "digits_finetune_frozen.yaml"), run_dir=root / "frozen",
            overrides=["training.epochs=2", f"model.init_from.run={root / 'base'}"])
    api.fit(str(CONFIGS / "digits_finetune_unfrozen.yaml"), run_dir=root / "unfrozen",
            overrides=["training.epochs=1", f"model.init_from.run={root / 'frozen'}"])
    return root


def _state(run, which="last"):
    from dltrain.api import LoadedRun

    return LoadedRun(run, which).model.state_dict()


def test_frozen_parameters_and_statistics_are_bit_for_bit_unchanged(chain):
    base, frozen = _state(chain / "base", "best"), _state(chain / "frozen")
    keys = [k for k in frozen if k.split("/")[0] in FROZEN]
    assert len(keys) == 5 + 4 * 5 + 2 + 1 - 1           # 6 kernels + shortcut bias, 5 BN x 4 arrays
    for key in keys:
        assert frozen[key].tobytes() == base[key].tobytes(), key


def test_the_optimizer_keeps_no_state_for_frozen_layers(chain):
    from dltrain.training import checkpoint

    arrays, _ = checkpoint.load(chain / "frozen" / "checkpoints" / "last.npz")
    slots = {key.split("/")[0] for key in checkpoint.section(arrays, "optimizer") if "/" in key}
    assert slots == {"head"}, slots


def test_unfreezing_trains_every_layer_from_the_stage_one_weights(chain):
    frozen, unfrozen = _state(chain / "frozen"), _state(chain / "unfrozen")
    assert set(frozen) == set(unfrozen)
    moved = [k for k in frozen if not np.array_equal(frozen[k], unfrozen[k])]
    assert {k.split("/")[0] for k in moved} >= set(FROZEN) | {"head"}


def _model(layers, input_shape=(6, 6, 2), seed=0):
    from dltrain.model import Model

    model = Model.from_config({"input_shape": list(input_shape), "layers": layers})
    model.build(np.random.default_rng(seed))
    return model


def test_a_frozen_base_is_not_run_backward_and_has_no_gradients():
    model = _model([{"type": "conv2d", "filters": 3, "kernel_size": 3, "trainable": False},
                    {"type": "batch_normalization", "trainable": False}, {"type": "flatten"},
                    {"type": "dense", "units": 2}])
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 2)).astype(np.float32)
    out = model.forward(x, training=True)
    model.backward(np.ones_like(out), input_grad=False)
    layers = {node.name: node.layer for node in model.nodes}
    assert layers["conv2d_1"].grads == {} and layers["batch_normalization_1"].grads == {}
    assert set(layers["dense_1"].grads) == {"kernel", "bias"}
    assert [key for key, _, _ in model.parameters()] == ["dense_1/kernel", "dense_1/bias"]
    assert model.count_trainable() == 4 * 4 * 3 * 2 + 2                # dense on the 4x4x3 output
    assert model.count_params() == model.count_trainable() + 3 * 3 * 2 * 3 + 3 + 2 * 3


def test_a_frozen_batch_normalization_runs_in_inference_mode():
    model = _model([{"type": "batch_normalization", "trainable": False}], (5,))
    bn = model.nodes[0].layer
    bn.state["moving_mean"][...] = 0.5
    before = {k: v.copy() for k, v in bn.state.items()}
    x = np.random.default_rng(2).normal(size=(16, 5)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x, training=True), model.forward(x, training=False))
    for key, value in bn.state.items():
        np.testing.assert_array_equal(value, before[key])
    trainable = _model([{"type": "batch_normalization"}], (5,))
    assert not np.allclose(trainable.forward(x, training=True), trainable.forward(x, training=False))


def test_gradient_check_of_the_trainable_rest_passes(tmp_path):
    from dltrain.config.validate import validate
    from dltrain.model_gradcheck import check_model

    config = yaml.safe_load((CONFIGS / "digits_finetune_frozen.yaml").read_text())
    del config["model"]["init_from"]
    config["model"]["layers"][7]["trainable"] = True               # a trainable conv between frozen ones
    path = tmp_path / "c.yaml"
    config["data"]["train"]["path"] = str((CONFIGS / config["data"]["train"]["path"]).resolve())
    path.write_text(yaml.safe_dump(config))
    checks = check_model(validate(str(path), files=False), batch_size=3, max_elements=10)
    assert {c.name for c in checks} == {"conv2d_3", "head"}
    for check in checks:
        assert check.worst < 1e-6, (check.name, check.errors)


def test_summary_counts_trainable_and_frozen_parameters(cli):
    result = cli("summary", CONFIGS / "digits_finetune_frozen.yaml")
    assert result.exit_code == 0, result.output
    assert "(frozen)" in result.output
    head = 32 * 10 + 10
    assert f"{head:,} trainable" in result.output and "frozen" in result.output


def test_trainable_must_be_a_boolean(tmp_path, cli):
    config = yaml.safe_load((CONFIGS / "iris_mlp.yaml").read_text())
    config["data"]["train"]["path"] = str((CONFIGS / config["data"]["train"]["path"]).resolve())
    config["model"]["layers"][0]["trainable"] = "no"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli("check", path)
    assert result.exit_code == 2 and "trainable" in result.output


def test_a_frozen_layer_is_not_regularized():
    from dltrain import regularizers

    model = _model([{"type": "dense", "units": 3, "trainable": False, "kernel_regularizer": {"type": "l2", "l2": 0.1}},
                    {"type": "dense", "units": 2, "kernel_regularizer": {"type": "l2", "l2": 0.1}}], (4,))
    assert [(layer.name, param) for layer, param, _ in regularizers.terms(model)] == [("dense_2", "kernel")]


def test_two_simulated_processes_keep_frozen_layers_frozen(tmp_path):
    """The gradient buffer of several processes packs the trainable parameters only."""
    from dltrain import api
    from dltrain.parallel.threads import ThreadGroup
    from dltrain.registry import registry
    from training_helpers import digits_config

    registry("layer")
    layers = ["flatten", {"type": "dense", "units": 12, "activation": "relu", "trainable": False},
              {"type": "dense", "units": 10, "activation": "softmax"}]
    config = digits_config(tmp_path, epochs=2, optimizer={"type": "sgd", "learning_rate": 0.05}, layers=layers)
    single = api.fit(config, run_dir=tmp_path / "single")
    ranks = ThreadGroup(2).run(lambda comm: api.fit(config, run_dir=tmp_path / f"rank{comm.rank}", comm=comm))
    start = single.trainer.model.state_dict()
    for rank in ranks:
        state = rank.trainer.model.state_dict()
        assert state["dense_1/kernel"].tobytes() == start["dense_1/kernel"].tobytes()
        np.testing.assert_allclose(state["dense_2/kernel"], start["dense_2/kernel"], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("stage", ["frozen", "unfrozen"])
def test_the_fine_tuning_configs_export_to_onnx_like_predict(chain, stage, tmp_path):
    """The two example configs test_examples skips without their base runs: exported here."""
    ort = pytest.importorskip("onnxruntime")
    from dltrain import api

    path = api.export(chain / stage, "onnx", tmp_path / "m.onnx").path
    x = np.load(CONFIGS.parent / "datasets" / "digits.npz")["x"][:64]
    np.save(tmp_path / "x.npy", x)
    expected = api.predict(chain / stage, [tmp_path / "x.npy"]).outputs
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.astype(np.float32)})[0]
    assert float(np.abs(got - expected).max()) <= 1e-5
