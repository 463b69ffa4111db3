"""Callbacks, regularizers, clipping, weight decay and class weights."""
import numpy as np
import pytest

from dltrain import api, regularizers
from dltrain.errors import ConfigError
from dltrain.registry import build
from dltrain.training.class_weight import sample_weights, table
from training_helpers import digits_config, metrics_rows, same_state, state

ADAM = {"type": "adam", "learning_rate": 0.003}
#: val_loss falls every epoch here, so watching it with mode max makes epoch 1 the best
WORST_FIRST = {"type": "early_stopping", "monitor": "val_loss", "mode": "max", "patience": 1}


def test_early_stopping_restores_best_weights_for_fit_and_evaluate(tmp_path):
    config = digits_config(tmp_path, epochs=6, optimizer=ADAM, callbacks=[WORST_FIRST])
    result = api.fit(config, run_dir=tmp_path / "run")
    assert len(result.history) == 3 and result.trainer.restored_epoch == 1
    # the model fit returns and best.npz hold epoch 1's weights: they reproduce its logged score
    from dltrain.experiment import Experiment

    validation = Experiment(config).load_data()["validation"]
    logged = result.history[0]["val_loss"]
    assert result.trainer.evaluate(validation)["loss"] == pytest.approx(logged, rel=1e-12)
    loaded = api.LoadedRun(tmp_path / "run")
    assert loaded.path.name == "best.npz"
    assert loaded.trainer().evaluate(validation)["loss"] == pytest.approx(logged, rel=1e-12)
    # last.npz still holds epoch 3, and resumes exactly
    assert not same_state(state(tmp_path / "run", "last.npz"), state(tmp_path / "run", "best.npz"))
    api.fit(config, ["training.epochs=2"], run_dir=tmp_path / "resumed")
    api.fit(None, ["training.epochs=6"], resume=tmp_path / "resumed")
    assert metrics_rows(tmp_path / "resumed") == metrics_rows(tmp_path / "run")
    assert same_state(state(tmp_path / "resumed"), state(tmp_path / "run"))


def test_model_checkpoint_every_n_epochs_keeps_last(tmp_path):
    checkpoint = {"type": "model_checkpoint", "monitor": "val_accuracy", "save_best_only": False,
                  "every_n_epochs": 2, "keep_last": 2}
    api.fit(digits_config(tmp_path, epochs=7, optimizer=ADAM, callbacks=[checkpoint]), run_dir=tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.npz"))
    assert names == ["best.npz", "epoch_004.npz", "epoch_006.npz", "last.npz", "previous.npz"]


def test_reduce_lr_on_plateau_halves_the_logged_rate(tmp_path):
    plateau = {"type": "reduce_lr_on_plateau", "monitor": "val_loss", "mode": "max", "patience": 1,
               "factor": 0.5, "min_lr": 0.0008}
    api.fit(digits_config(tmp_path, epochs=5, optimizer=ADAM, callbacks=[plateau]), run_dir=tmp_path / "run")
    assert [float(r["lr"]) for r in metrics_rows(tmp_path / "run")] == \
        pytest.approx([0.003, 0.003, 0.0015, 0.0008, 0.0008])     # halved, then held at min_lr


def test_learning_rate_scheduler_sets_the_rate_per_epoch(tmp_path):
    scheduler = {"type": "learning_rate_scheduler", "schedule": {
        "type": "exponential_decay", "initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 0.5}}
    api.fit(digits_config(tmp_path, epochs=3, optimizer=ADAM, callbacks=[scheduler]), run_dir=tmp_path / "run")
    assert [float(r["lr"]) for r in metrics_rows(tmp_path / "run")] == pytest.approx([0.01, 0.005, 0.0025])


def test_rate_callbacks_refuse_a_scheduled_optimizer(tmp_path):
    plateau = {"type": "reduce_lr_on_plateau"}
    with pytest.raises(ConfigError, match="already a schedule"):
        api.fit(digits_config(tmp_path, epochs=1, callbacks=[plateau]), run_dir=tmp_path / "run")


def test_l2_regularizer_adds_penalty_and_gradient():
    layer = build("layer", {"type": "dense", "units": 3})
    layer.build((4,), np.random.default_rng(0))
    layer.grads = {"kernel": np.zeros((4, 3), np.float32), "bias": np.zeros(3, np.float32)}
    terms = [(layer, "kernel", build("regularizer", {"type": "l1_l2", "l1": 0.1, "l2": 0.01}))]
    w = layer.params["kernel"]
    penalty = regularizers.apply(terms)
    assert penalty == pytest.approx(0.1 * np.abs(w).sum() + 0.01 * (w * w).sum(), rel=1e-6)
    np.testing.assert_allclose(layer.grads["kernel"], 0.1 * np.sign(w) + 0.02 * w, rtol=1e-6)


def test_regularizers_from_config_raise_the_logged_loss(tmp_path):
    def layers(l2):
        return ["flatten", {"type": "dense", "units": 24, "activation": "relu",
                            "kernel_regularizer": {"type": "l2", "l2": l2}, "bias_regularizer": "l1"},
                {"type": "dense", "units": 10, "activation": "softmax"}]

    small = api.fit(digits_config(tmp_path, epochs=1, optimizer=ADAM, layers=layers(0.0)), run_dir=tmp_path / "a")
    large = api.fit(digits_config(tmp_path, epochs=1, optimizer=ADAM, layers=layers(0.05)), run_dir=tmp_path / "b")
    assert large.history[0]["loss"] > small.history[0]["loss"] + 0.1
    assert large.history[0]["val_loss"] < large.history[0]["loss"]      # validation has no penalty


def test_regularizer_on_a_layer_without_that_parameter_is_a_config_error(tmp_path):
    layers = ["flatten", {"type": "dropout", "rate": 0.1, "kernel_regularizer": "l2"},
              {"type": "dense", "units": 10, "activation": "softmax"}]
    with pytest.raises(ConfigError, match="has no 'kernel' for its kernel_regularizer"):
        api.fit(digits_config(tmp_path, epochs=1, layers=layers), run_dir=tmp_path / "run")


@pytest.mark.parametrize("clip, expected", [
    ({"clipvalue": 0.5}, [-0.5, 0.5, 0.25]),
    ({"clipnorm": 1.0}, [-0.8, 0.6, 0.0]),
    ({"global_clipnorm": 2.5}, None),
])
def test_gradient_clipping(clip, expected):
    sgd = build("optimizer", {"type": "sgd", "learning_rate": 1.0, **clip})
    if expected is None:      # global norm of (3, 4) and (0, 0, 0): 5 -> scaled by 0.5
        a, b = np.zeros(2, np.float32), np.zeros(3, np.float32)
        sgd.apply([("a", a, np.array([3.0, 4.0], np.float32)), ("b", b, np.zeros(3, np.float32))])
        np.testing.assert_allclose(a, [-1.5, -2.0], rtol=1e-6)
        return
    p = np.zeros(3, np.float32)
    grad = np.array([-4.0, 3.0, 0.25], np.float32) if "clipvalue" in clip else np.array([-4.0, 3.0, 0.0], np.float32)
    sgd.apply([("p", p, grad)])
    np.testing.assert_allclose(-p, expected, rtol=1e-6)


def test_adamw_decays_weights_decoupled_from_the_gradient():
    adamw = build("optimizer", {"type": "adamw", "learning_rate": 0.1, "weight_decay": 0.5})
    p = np.ones(3, np.float32)
    adamw.apply([("p", p, np.zeros(3, np.float32))])
    np.testing.assert_allclose(p, 1 - 0.1 * 0.5, rtol=1e-6)     # zero gradient: only the decay


def test_class_weight_tables_and_sample_weights(tmp_path):
    weights = table({0: 2.0, 3: 0.5}, 4)
    np.testing.assert_array_equal(weights, [2.0, 1.0, 1.0, 0.5])
    np.testing.assert_array_equal(sample_weights(weights, np.array([0, 3, 1])), [2.0, 0.5, 1.0])
    np.testing.assert_array_equal(sample_weights(weights, np.eye(4, dtype=np.float32)[[3, 0]]), [0.5, 2.0])
    with pytest.raises(ConfigError, match="outside the model's classes"):
        table({7: 1.0}, 4)
    base = api.fit(digits_config(tmp_path, epochs=1, optimizer=ADAM), run_dir=tmp_path / "a")
    heavy = api.fit(digits_config(tmp_path, epochs=1, optimizer=ADAM,
                                  training={"class_weight": {c: 3.0 for c in range(10)}}),
                    run_dir=tmp_path / "b")
    assert heavy.history[0]["loss"] > 2 * base.history[0]["loss"]


def test_metrics_files_are_always_written(tmp_path):
    api.fit(digits_config(tmp_path, epochs=2, optimizer=ADAM), run_dir=tmp_path / "run")
    rows = metrics_rows(tmp_path / "run")
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
