"""evaluate and predict inputs (issue 14, deliverables 4 and 5): each finding reproduced on the old
main (a wrong answer, a traceback or a misleading message) and the behaviour that replaces it."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain import api
from dltrain.errors import ConfigError, DataError
from training_helpers import DIGITS

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "datasets" / "iris.csv"


def said(result):
    return " ".join(result.output.split())


def iris_config(folder, epochs=3, **data):
    config = {"name": "iris", "seed": 3,
              "data": {"train": {"type": "csv", "path": str(folder / "iris.csv")},
                       "test": {"split": 0.2, "stratify": True}, **data},
              "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                                       {"type": "dense", "units": 3, "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "optimizer": {"type": "adam", "learning_rate": 0.01},
              "metrics": ["accuracy"], "training": {"epochs": epochs, "batch_size": 16}}
    shutil.copy(IRIS, folder / "iris.csv")
    path = folder / "iris.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iris")
    api.fit(iris_config(folder), run_dir=folder / "run")
    return folder / "run"


def lines(path, header=True, label=True, rows=slice(0, 10)):
    text = IRIS.read_text().splitlines()
    out = ([text[0]] if header else []) + text[1:][rows]
    return [",".join(line.split(",")[:None if label else 4]) for line in out]


def write(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


# -- evaluate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False])
def test_evaluate_on_a_csv_without_the_label_column_is_an_error(iris_run, tmp_path, cli, header):
    # old main: the last feature was taken as the label; accuracy reported, exit 0
    data = write(tmp_path / "features.csv", lines(IRIS, header=header, label=False))
    result = cli("evaluate", iris_run, "--data", data)
    assert result.exit_code == 3, result.output
    assert "features.csv" in said(result) and ("no label column" in said(result) or "no header" in said(result))


def test_evaluate_matches_the_label_column_by_name_in_any_order(iris_run, tmp_path):
    rows = [",".join(reversed(r.split(","))) for r in lines(IRIS, rows=slice(0, 150))]
    scores = api.evaluate(iris_run, data=str(write(tmp_path / "reversed.csv", rows)))
    same = api.evaluate(iris_run, data=str(write(tmp_path / "same.csv", lines(IRIS, rows=slice(0, 150)))))
    assert scores["accuracy"] == same["accuracy"] and scores["loss"] == pytest.approx(same["loss"])


def test_fractional_labels_are_refused_naming_file_and_row(iris_run, tmp_path, cli):
    rows = lines(IRIS, rows=slice(0, 6))
    rows[4] = rows[4].rsplit(",", 1)[0] + ",1.5"           # data row 4
    result = cli("evaluate", iris_run, "--data", write(tmp_path / "soft.csv", rows))
    assert result.exit_code == 3, result.output
    assert "soft.csv, row 4" in said(result) and "1.5" in said(result) and "whole number" in said(result)


def test_labels_out_of_range_name_the_file_and_row(iris_run, tmp_path, cli):
    rows = lines(IRIS, rows=slice(0, 6))
    rows[3] = rows[3].rsplit(",", 1)[0] + ",7"
    result = cli("evaluate", iris_run, "--data", write(tmp_path / "seven.csv", rows))
    assert result.exit_code == 3
    assert "seven.csv, row 3" in said(result) and "outside the model's 3 classes" in said(result)


def test_a_huge_label_is_named_as_written_and_no_layer_width_is_suggested(iris_run, tmp_path, cli):
    # before: 1e300 became int64's minimum ("fix the negative labels"); 1e18 suggested a last
    # layer of 1000000000000000001 units
    for value, words in (("1e300", "the label '1e300' is beyond float32's range"),
                         ("1e18", "the test label 1000000000000000000 is outside the model's 3 classes")):
        rows = lines(IRIS)
        rows[3] = rows[3].rsplit(",", 1)[0] + "," + value
        result = cli("evaluate", iris_run, "--data", write(tmp_path / "huge.csv", rows))
        assert result.exit_code == 3 and words in said(result) and "huge.csv, row 3" in said(result)
        assert "units" not in said(result) and "negative" not in said(result)


def test_fit_names_the_data_file_and_row_of_a_bad_label(tmp_path):
    config = iris_config(tmp_path)
    rows = (tmp_path / "iris.csv").read_text().splitlines()
    rows[10] = rows[10].rsplit(",", 1)[0] + ",2.9"
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        api.fit(config, run_dir=tmp_path / "run")
    assert "iris.csv, row 10" in str(caught.value) and "2.9" in str(caught.value)


def test_regression_labels_may_be_fractional(tmp_path):
    config = yaml.safe_load(iris_config(tmp_path).read_text())
    config.update(loss="mse", metrics=["mae"])
    config["model"]["layers"][-1] = {"type": "dense", "units": 1}
    rows = (tmp_path / "iris.csv").read_text().splitlines()
    rows[10] = rows[10].rsplit(",", 1)[0] + ",2.9"
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    assert api.fit(tmp_path / "r.yaml", run_dir=tmp_path / "run").history


def test_json_is_strict_with_null_for_undefined_metrics(tmp_path, cli):
    # old main: `"auc": NaN`, which no JSON parser reads. AUC is undefined on data of one class.
    rows = IRIS.read_text().splitlines()
    header, body = rows[0], [r.rsplit(",", 1) for r in rows[1:] if r]
    names = sorted({label for _, label in body})
    (tmp_path / "binary.csv").write_text("\n".join([header] + [f"{x},{int(label == names[-1])}"
                                                                for x, label in body]) + "\n")
    (tmp_path / "negatives.csv").write_text("\n".join([header] + [f"{x},0" for x, label in body
                                                                  if label != names[-1]]) + "\n")
    config = yaml.safe_load(iris_config(tmp_path).read_text())
    config["data"]["train"]["path"] = str(tmp_path / "binary.csv")
    config["model"]["layers"][-1] = {"type": "dense", "units": 1, "activation": "sigmoid"}
    config.update(loss="binary_crossentropy", metrics=["accuracy", "auc"])
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert cli("fit", tmp_path / "b.yaml", "--run-dir", tmp_path / "run", "--quiet").exit_code == 0
    result = cli("evaluate", tmp_path / "run", "--data", tmp_path / "negatives.csv", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert scores["auc"] is None and 0 <= scores["accuracy"] <= 1


def test_evaluate_says_which_checkpoint_it_scored(iris_run, cli):
    result = cli("evaluate", iris_run)
    assert result.exit_code == 0 and "last.npz (epoch 3)" in said(result)


def test_fit_summary_says_which_weights_scored_the_test_split(tmp_path, cli):
    result = cli("fit", iris_config(tmp_path), "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0 and "test: scored with the last epoch's (3) weights" in said(result)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_config_where_a_run_is_expected_says_so(tmp_path, cli, command):
    # old main: "checkpoint ... is corrupt", numpy's advice to load it with pickle
    config = iris_config(tmp_path)
    args = [command, config] + ([IRIS] if command == "predict" else [])
    result = cli(*args)
    assert result.exit_code == 2
    assert "is a config file, not a run" in said(result) and "runs/iris" in said(result)
    assert "pickle" not in said(result)


# -- predict -------------------------------------------------------------------------------------

def test_predict_on_a_csv_without_header_matches_by_position(iris_run, tmp_path, cli):
    # old main: KeyError traceback (exit 1)
    with_header = api.predict(iris_run, [str(write(tmp_path / "a.csv", lines(IRIS, label=False)))])
    for label in (False, True):
        plain = api.predict(iris_run, [str(write(tmp_path / "b.csv", lines(IRIS, header=False, label=label)))])
        np.testing.assert_array_equal(plain.outputs, with_header.outputs)
    assert cli("predict", iris_run, tmp_path / "b.csv").exit_code == 0


def test_predict_matches_columns_by_header_name(iris_run, tmp_path):
    base = api.predict(iris_run, [str(write(tmp_path / "a.csv", lines(IRIS, label=False)))])
    shuffled = [",".join(np.array(r.split(","))[[2, 0, 3, 1]]) for r in lines(IRIS, label=False)]
    moved = api.predict(iris_run, [str(write(tmp_path / "c.csv", [r + ",x" for r in shuffled]))])
    np.testing.assert_array_equal(moved.outputs, base.outputs)


def test_predict_names_missing_and_extra_columns(iris_run, tmp_path, cli):
    rows = [r.replace("petal_width_cm", "petal_w") for r in lines(IRIS, label=False)]
    result = cli("predict", iris_run, write(tmp_path / "renamed.csv", rows))
    assert result.exit_code == 3
    assert "lacks the column(s) 'petal_width_cm'" in said(result) and "'petal_w'" in said(result)


def test_top_k_is_capped_with_a_note(iris_run, tmp_path, cli):
    # old main: IndexError traceback for --top-k 5 on 3 classes
    data = write(tmp_path / "a.csv", lines(IRIS, label=False))
    result = cli("predict", iris_run, data, "--top-k", "5")
    assert result.exit_code == 0, result.output
    assert "--top-k 5 is more than the model's 3 classes; showing 3" in said(result)
    assert "top3_probability" in result.output and "top4" not in result.output


def test_top_k_is_refused_for_a_regression(tmp_path, cli):
    config = yaml.safe_load(iris_config(tmp_path, epochs=1).read_text())
    config.update(loss="mse", metrics=[])
    config["model"]["layers"][-1] = {"type": "dense", "units": 1}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    api.fit(tmp_path / "r.yaml", run_dir=tmp_path / "run")
    result = cli("predict", tmp_path / "run", write(tmp_path / "a.csv", lines(IRIS, label=False)), "--top-k", "2")
    assert result.exit_code == 2 and "regression" in said(result)


# -- shapes: channels and images -----------------------------------------------------------------

@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("channel")
    with np.load(DIGITS) as d:
        x, y = d["x"][:400], d["y"][:400]
    np.savez(folder / "d.npz", x=x[..., None], y=y)
    np.save(folder / "flat.npy", x[:20])                       # (20, 8, 8): no channel axis
    np.savez(folder / "flat.npz", x=x[:50], y=y[:50])
    config = {"name": "ch", "data": {"train": {"type": "npz", "path": str(folder / "d.npz")}},
              "model": {"input_shape": [8, 8, 1], "layers": ["flatten", {"type": "dense", "units": 10,
                                                                         "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "optimizer": "adam", "training": {"epochs": 1}}
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    api.fit(folder / "c.yaml", run_dir=folder / "run")
    return folder


def test_predict_and_evaluate_add_a_missing_channel_axis(channel_run):
    flat = api.predict(channel_run / "run", [str(channel_run / "flat.npy")])
    assert flat.outputs.shape == (20, 10)
    assert math.isfinite(api.evaluate(channel_run / "run", data=str(channel_run / "flat.npz"))["loss"])


def test_fit_on_arrays_without_the_channel_suggests_adding_it(channel_run, tmp_path):
    config = yaml.safe_load((channel_run / "c.yaml").read_text())
    config["data"]["train"]["path"] = str(channel_run / "flat.npz")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError) as caught:
        api.fit(tmp_path / "c.yaml", run_dir=tmp_path / "run")
    assert "x[..., None]" in caught.value.fix and "input_shape to [8, 8]" not in caught.value.fix


def test_images_are_resized_and_converted_to_the_training_colour_mode(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    config = {"name": "img", "data": {"train": {"type": "image_folder", "path": str(tmp_path / "img")},
                                      "preprocessing": [{"type": "rescale", "scale": 0.00392}]},
              "model": {"input_shape": [8, 8, 3], "layers": ["flatten", {"type": "dense", "units": 2,
                                                                         "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "optimizer": "adam", "training": {"epochs": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    api.fit(tmp_path / "c.yaml", run_dir=tmp_path / "run")
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8), "L").save(tmp_path / "gray.png")
    out = api.predict(tmp_path / "run", [str(tmp_path / "gray.png")])     # old main: DataError, size
    assert out.outputs.shape == (1, 2) and np.isfinite(out.outputs).all()


# -- k-fold runs ---------------------------------------------------------------------------------

def test_a_kfold_run_is_evaluated_fold_by_fold_and_as_an_ensemble(tmp_path, cli):
    # old main: "has no checkpoint ... train it with `dltrain fit` first"
    config = iris_config(tmp_path, epochs=2, validation={"kfold": 3})
    api.fit(config, run_dir=tmp_path / "run")
    result = api.evaluate(tmp_path / "run")
    assert len(result.folds) == 3 and result.checkpoints[0].startswith("fold1/")
    summary = result.summary()
    accuracies = [f["accuracy"] for f in result.folds]
    assert summary["accuracy"] == (pytest.approx(np.mean(accuracies)), pytest.approx(np.std(accuracies)))
    assert 0 <= result.ensemble["accuracy"] <= 1 and math.isfinite(result.ensemble["loss"])
    shown = cli("evaluate", tmp_path / "run")
    assert shown.exit_code == 0 and "mean ± std" in shown.output and "ensemble" in shown.output
    data = json.loads(cli("evaluate", tmp_path / "run", "--json").output)
    assert len(data["folds"]) == 3 and set(data["ensemble"]) == {"loss", "accuracy"}
    one = cli("predict", tmp_path / "run", IRIS)
    assert one.exit_code == 2 and "is a k-fold run of 3 fold models" in said(one) and "fold1" in said(one)


def test_kfold_ensemble_of_identical_models_scores_like_one(tmp_path):
    from dltrain.data import kfold

    config = iris_config(tmp_path, epochs=2, validation={"kfold": 2})
    api.fit(config, run_dir=tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "fold2")
    shutil.copytree(tmp_path / "run" / "fold1", tmp_path / "run" / "fold2")
    result = api.evaluate(tmp_path / "run")
    assert result.ensemble["accuracy"] == result.folds[0]["accuracy"]
    assert result.ensemble["loss"] == pytest.approx(result.folds[0]["loss"], rel=1e-5)
    assert kfold.fold_runs(tmp_path / "run")[0].name == "fold1"
