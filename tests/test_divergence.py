"""A loss that explodes but stays finite (a softmax classifier at learning rate 1e6) stops the run."""
import re

import pytest

from conftest import CONFIGS
from dltrain import api
from dltrain.errors import DivergedError
from training_helpers import digits_config


def test_a_classifier_at_learning_rate_1e6_stops_with_exit_4_naming_batch_and_layer(cli, tmp_path):
    result = cli("fit", CONFIGS / "digits_mlp.yaml", "--run-dir", tmp_path / "run", "--quiet",
                 "--set", "optimizer.learning_rate=1e6")
    assert result.exit_code == 4, result.output
    assert "exploded" in result.output and "batch" in result.output
    assert "layer 'dense_" in result.output
    assert "Traceback" not in result.output


def test_the_limit_can_be_turned_off(cli, tmp_path):
    result = cli("fit", CONFIGS / "digits_mlp.yaml", "--run-dir", tmp_path / "run", "--quiet",
                 "--set", "optimizer.learning_rate=1e6", "--set", "training.epochs=1",
                 "--set", "training.divergence_factor=null")
    assert result.exit_code == 0, result.output


def test_an_ordinary_run_never_trips_it(cli, tmp_path):
    for config in ("digits_mlp.yaml", "diabetes_regression.yaml", "breast_cancer_logreg.yaml"):
        result = cli("fit", CONFIGS / config, "--run-dir", tmp_path / config, "--quiet")
        assert result.exit_code == 0, result.output


def test_a_bad_factor_is_a_config_error(cli, tmp_path):
    result = cli("check", CONFIGS / "digits_mlp.yaml", "--set", "training.divergence_factor=-3")
    assert result.exit_code == 2 and "divergence_factor" in result.output


def test_a_diverging_rewritten_plan_names_the_layers_as_the_user_wrote_them(tmp_path):
    """conv2d (relu) -> max_pooling2d: pool_before_relu runs the pooling before the conv's ReLU,
    and the plan's nodes include activation nodes (dense_1_linear) the user never named; the
    message names the layer the user wrote, and which of its parts overflowed."""
    layers = [{"type": "reshape", "target_shape": [8, 8, 1]},
              {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
              {"type": "max_pooling2d"}, "flatten", {"type": "dense", "units": 1, "activation": "linear"}]
    config = digits_config(tmp_path, epochs=2, optimizer={"type": "sgd", "learning_rate": 1e9}, layers=layers)
    overrides = ["loss=mse", "metrics=[mae]", "training.divergence_factor=null"]
    written = api.summary(config, overrides, passes=True)
    rewrites = {p["name"]: p["rewrites"] for p in written.passes}
    assert rewrites["pool_before_relu"], rewrites           # the plan is not the model as written
    with pytest.raises(DivergedError) as raised:
        api.fit(config, overrides, run_dir=tmp_path / "run")
    message = raised.value.message
    named = re.findall(r"layer '([^']+)'", message)
    assert named and set(named) <= {row.name for row in written.rows}, message
    assert "'dense_1' (its linear activation)" in message, message
