"""CSV as people export it, preprocessing steps, k-fold, and predict applying exactly what fit did."""
import numpy as np
import pytest
import yaml

from dltrain.data.csv_source import Csv
from dltrain.errors import DataError

ROWS = ["size;colour;weight;kind", "1.5;red;;cat", "2.5;blue;3.0;dog", "\"3,5\";red;4.0;cat",
        "4.5;green;5.0;dog", "0.5;blue;1.0;cat", "5.5;green;6.0;dog"]


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_delimiter_header_quoting_categories_missing_and_string_labels(tmp_path):
    path = write(tmp_path / "pets.csv", [r.replace("\"3,5\"", "3.5") for r in ROWS])
    source = Csv(str(path), label="kind", missing="mean")
    x, y = source.load(tmp_path)
    # size, colour one-hot (blue, green, red), weight with the missing cell = mean of the others
    assert x.shape == (6, 5)
    assert x[0].tolist() == [1.5, 0, 0, 1, pytest.approx(19 / 5)]
    assert source.class_names == ["cat", "dog"] and y.tolist() == [0, 1, 0, 1, 0, 1]
    assert source.fitted["categories"] == {"colour": ["blue", "green", "red"]}


def test_headerless_tab_separated_file(tmp_path):
    path = write(tmp_path / "t.tsv", ["1\t2\t0", "3\t4\t1"])
    x, y = Csv(str(path)).load(tmp_path)
    assert x.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]


def test_quoted_field_with_the_delimiter(tmp_path):
    path = write(tmp_path / "q.csv", ['name,value,label', '"a, b",1,0', '"c ""d""",2,1'])
    x, y = Csv(str(path), features=["value"]).load(tmp_path)
    assert x.ravel().tolist() == [1, 2]


def test_unseen_category_and_unknown_label_in_validation_are_data_errors(tmp_path):
    train = write(tmp_path / "train.csv", ["c,label", "a,x", "b,y"])
    source = Csv(str(train))
    source.load(tmp_path)
    other = Csv(str(write(tmp_path / "v.csv", ["c,label", "z,x"])))
    other.adopt(source)
    with pytest.raises(DataError, match="row 1 \\(line 2\\), column 'c': category 'z' was not in the training"):
        other.load(tmp_path)
    other = Csv(str(write(tmp_path / "w.csv", ["c,label", "a,q"])))
    other.adopt(source)
    with pytest.raises(DataError, match="label 'q' is not one of the training classes"):
        other.load(tmp_path)


def test_missing_median_and_constant(tmp_path):
    path = write(tmp_path / "m.csv", ["a,label", "1,0", "NA,1", "10,0", "2,1"])
    assert Csv(str(path), missing="median").load(tmp_path)[0].ravel()[1] == 2
    assert Csv(str(path), missing="constant", fill_value=-1).load(tmp_path)[0].ravel()[1] == -1


def config(tmp_path, train, **extra):
    spec = {"name": "pets", "seed": 3,
            "data": {"train": {"type": "csv", "path": str(train), "label": "kind", "missing": "mean"},
                     "preprocessing": [{"type": "standardize"}, {"type": "clip", "min": -3, "max": 3},
                                       {"type": "min_max"}]},
            "model": {"input_shape": [5], "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                                     {"type": "dense", "units": 2, "activation": "softmax"}]},
            "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
            "training": {"epochs": 3, "batch_size": 2}, **extra}
    path = tmp_path / "pets.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_predict_from_the_saved_run_equals_predictions_inside_fit(tmp_path, cli, monkeypatch):
    from dltrain import api

    train = write(tmp_path / "pets.csv", [r.replace("\"3,5\"", "3.5") for r in ROWS])
    result = api.fit(str(config(tmp_path, train)), run_dir=tmp_path / "run")
    new = write(tmp_path / "new.csv", ["size;colour;weight", "2;green;2.5", "4;red;NA"])
    trainer, source = result.trainer, Csv(str(new), delimiter=";", missing="mean")
    train_source = Csv(str(train), label="kind", missing="mean")
    train_source.load(tmp_path)
    source.adopt(train_source)
    inside = trainer.model.predict(trainer.pipeline.transform(source.load_features(tmp_path)))
    saved = api.predict(tmp_path / "run", [str(new)], which="last")
    np.testing.assert_array_equal(saved.outputs, inside)
    assert {r["prediction"] for r in saved.records()} <= {"cat", "dog"}
    monkeypatch.chdir(tmp_path)
    out = cli("predict", tmp_path / "run", new, "--checkpoint", "last")
    assert out.exit_code == 0 and out.output.splitlines()[0].startswith("file,row,prediction,p_cat,p_dog")


def test_predict_with_the_wrong_width_is_a_data_error(tmp_path, cli):
    train = write(tmp_path / "pets.csv", [r.replace("\"3,5\"", "3.5") for r in ROWS])
    cli("fit", config(tmp_path, train), "--run-dir", tmp_path / "run", "--quiet")
    bad = write(tmp_path / "bad.csv", ["1,2,3,4,5,6", "1,2,3,4,5,6"])
    result = cli("predict", tmp_path / "run", bad)
    assert result.exit_code == 3
    said = " ".join(result.output.split())
    assert "bad.csv has 6 columns and no header; the model's 3 features" in said, said


def test_kfold_reports_each_fold_and_mean_std(tmp_path, cli):
    iris = tmp_path.parent / "iris.yaml"
    spec = {"name": "iris", "data": {"train": {"type": "dataset", "name": "iris"},
                                     "validation": {"kfold": 3, "stratify": True},
                                     "preprocessing": ["standardize"]},
            "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
            "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
            "optimizer": {"type": "adam", "learning_rate": 0.05}, "training": {"epochs": 5, "batch_size": 16}}
    iris.write_text(yaml.safe_dump(spec))
    result = cli("fit", iris, "--run-dir", tmp_path / "cv", "--quiet")
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "fold 1" in text and "fold 3" in text and "mean ± std" in text
    assert all((tmp_path / "cv" / f"fold{i}" / "checkpoints" / "last.npz").exists() for i in (1, 2, 3))


def test_kfold_folds_partition_the_data():
    from dltrain.data.dataset import Split
    from dltrain.data.kfold import folds

    split = Split(np.zeros((103, 2)), np.arange(103) % 3)
    parts = folds(split, 4, np.random.default_rng(0), stratify=True)
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    assert max(map(len, parts)) - min(map(len, parts)) <= 2


def test_preprocessing_steps_stream_and_save(tmp_path):
    from dltrain.data.dataset import Pipeline, Split
    from dltrain.data.preprocessing import Log, MinMax, OneHot, Standardize

    x = np.random.default_rng(0).standard_normal((1000, 3)).astype(np.float32) * 5 + 2
    pipe = Pipeline([Standardize(), MinMax()])
    pipe.fit_split(Split(x, None), rows=64)                     # 16 chunks
    out = pipe.transform(x)
    assert out.min() == pytest.approx(0, abs=1e-6) and out.max() == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(pipe.steps[0].mean, x.mean(axis=0), rtol=1e-4)
    clone = Pipeline([Standardize(), MinMax()])
    clone.load_state_dict(pipe.state_dict())
    np.testing.assert_array_equal(clone.transform(x), out)
    codes = np.array([[0, 1.5], [2, 2.5], [0, 3.5]], np.float32)
    hot = Pipeline([OneHot(columns=[0])]).fit(codes)
    assert hot.transform(codes).tolist() == [[1, 0, 1.5], [0, 1, 2.5], [1, 0, 3.5]]
    with pytest.raises(DataError, match="feature 0 has the value 7, unseen"):
        hot.transform(np.array([[7, 1]], np.float32))
    with pytest.raises(DataError, match="is not positive"):
        Log(offset=1).transform(np.array([-2.0]))
