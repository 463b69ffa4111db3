"""A loss that explodes but stays finite (a softmax classifier at learning rate 1e6) stops the run."""
from conftest import CONFIGS


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
