"""`dltrain ensemble` (averaged outputs, scored like evaluate; k-fold runs are their folds) and
`evaluate --report` (confusion matrix and per-class table, or residuals; a PNG)."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS

SMALL_MNIST = Path(__file__).parent / "data" / "mnist_small"


def _fit(config, run, *overrides):
    from dltrain import api

    api.fit(str(CONFIGS / config), overrides=["training.epochs=2", *overrides], run_dir=run)
    return run


@pytest.fixture(scope="module")
def iris_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("iris")
    return [_fit("iris_mlp.yaml", root / f"seed{seed}", f"seed={seed}") for seed in (3, 4, 5)]


def test_an_ensemble_averages_its_members_and_scores_like_evaluate(iris_runs, cli):
    from dltrain import api, scoring

    file = str(CONFIGS.parent / "datasets" / "iris.csv")
    result = api.ensemble(iris_runs, data=file)
    for run in iris_runs:                              # each member's own score is evaluate's
        assert result.members[str(run)] == pytest.approx(api.evaluate(run, data=file))
    members = api._ensemble_members(iris_runs, "best")
    split = api._evaluation_split(members[0], file)
    x, y = scoring.split_arrays(split)
    mean = np.mean([scoring.outputs(m, x) for m in members], axis=0)
    accuracy = float((mean.argmax(axis=1) == y).mean())
    assert result.scores["accuracy"] == pytest.approx(accuracy)
    assert result.scores["loss"] == pytest.approx(float(-np.log(mean[np.arange(len(y)), y]).mean()), rel=1e-5)
    out = cli("ensemble", *iris_runs, "--data", file, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == pytest.approx(result.scores)


def test_members_with_their_own_held_out_splits_are_warned_about(iris_runs):
    from dltrain import api

    result = api.ensemble(iris_runs)             # test: {split: 0.2} drawn with each run's seed
    assert result.scores["accuracy"] >= 0 and any("seed" in w for w in result.warnings)
    assert api.ensemble([iris_runs[0], iris_runs[0]]).warnings == []


def test_an_ensemble_of_one_run_twice_scores_as_the_run(iris_runs):
    from dltrain import api

    assert api.ensemble([iris_runs[0], iris_runs[0]]).scores == pytest.approx(api.evaluate(iris_runs[0]))


def test_ensemble_predict_averages_predict(iris_runs, tmp_path):
    from dltrain import api

    file = CONFIGS.parent / "datasets" / "iris.csv"
    averaged = api.ensemble_predict(iris_runs, [file])
    each = [api.predict(run, [file]).outputs for run in iris_runs]
    np.testing.assert_allclose(averaged.outputs, np.mean(each, axis=0), rtol=1e-6)
    assert averaged.classifier and len(averaged.records()) == len(each[0])


def test_a_kfold_run_is_an_ensemble_of_its_folds(tmp_path):
    from dltrain import api, ensemble

    _fit("iris_mlp.yaml", tmp_path / "cv", "data.validation={kfold: 3}")
    members = ensemble.member_runs([tmp_path / "cv"])
    assert [m.name for m in members] == ["fold1", "fold2", "fold3"]
    result = api.ensemble([tmp_path / "cv"])
    assert len(result.members) == 3 and 0 <= result.scores["accuracy"] <= 1


def test_runs_with_other_inputs_cannot_be_averaged(iris_runs, tmp_path, cli):
    digits = _fit("digits_mlp.yaml", tmp_path / "digits")
    result = cli("ensemble", iris_runs[0], digits)
    assert result.exit_code == 2
    assert "input shape" in result.output and "cannot be averaged" in result.output
    result = cli("ensemble", iris_runs[0])
    assert result.exit_code == 2 and "two or more runs" in result.output


def _mnist_overrides():
    overrides = []
    for split, stem in (("train", "train"), ("test", "t10k")):
        overrides.append(f"data.{split}={{type: idx, path: '{SMALL_MNIST / f'{stem}-images-idx3-ubyte.gz'}',"
                         f" labels: '{SMALL_MNIST / f'{stem}-labels-idx1-ubyte.gz'}'}}")
    return overrides


@pytest.mark.parametrize("config", ["mnist_convnet.yaml", "digits_mlp.yaml", "sms_spam_bow.yaml"])
def test_report_diagonal_sums_to_the_correct_predictions(config, tmp_path, cli):
    from conftest import skip_without_data

    from dltrain import api, scoring

    skip_without_data(CONFIGS / config)
    run = _fit(config, tmp_path / "run", *(_mnist_overrides() if config.startswith("mnist") else []))
    result = cli("evaluate", run, "--report", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    matrix = np.array(record["report"]["confusion_matrix"])
    loaded = api.LoadedRun(run)
    x, y = scoring.split_arrays(api._evaluation_split(loaded))
    out = scoring.outputs(loaded, x)
    predicted = (out[:, 0] >= 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
    correct = int((predicted == np.asarray(y).reshape(-1)).sum())
    assert np.trace(matrix) == correct == record["report"]["correct"]
    assert matrix.sum() == len(y)
    assert np.trace(matrix) / matrix.sum() == pytest.approx(record["accuracy"])
    for row, support in zip(record["report"]["per_class"], matrix.sum(axis=1)):
        assert row["support"] == support
    assert Path(record["image"]).is_file()
    text = cli("evaluate", run, "--report")
    assert "confusion matrix" in text.output and "precision" in text.output
    if loaded.class_names:
        assert all(str(name) in text.output for name in loaded.class_names)


def test_per_class_scores_by_hand():
    from dltrain import report

    out = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    found = report.classification(out, np.array([0, 1, 1, 2, 2, 0]), ["a", "b", "c"])
    assert found.matrix.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]
    a, b, c = found.rows
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 0.5, 2)
    assert (b["precision"], b["recall"]) == (1.0, 0.5) and b["f1"] == pytest.approx(2 / 3)
    assert (c["precision"], c["recall"]) == (pytest.approx(2 / 3), 1.0)


def test_regression_report_summarises_residuals(tmp_path, cli):
    from dltrain import api

    run = _fit("diabetes_regression.yaml", tmp_path / "run")
    result = cli("evaluate", run, "--report", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    residuals = record["report"]["residuals"]
    assert residuals["rmse"] ** 2 == pytest.approx(record["loss"], rel=1e-4)     # mse
    assert residuals["mae"] == pytest.approx(record["mae"], rel=1e-4)
    assert Path(record["image"]).name == "predicted_vs_true.png" and Path(record["image"]).is_file()
    text = cli("evaluate", run, "--report")
    assert "residuals" in text.output and "rmse" in text.output
