"""What a CSV source learns (categories of string columns, fill values for missing cells) comes
from the training rows only: rows held out of the training file as `validation: {split: ...}` or
`test: {split: ...}` never leak into it. A category seen only in held-out rows is unseen, which is
a data error naming the row (the documented policy for any file)."""
import numpy as np
import pytest
import yaml

from dltrain.errors import DataError


def write_config(tmp_path, csv_lines, source=None, data=None, width=1):
    (tmp_path / "t.csv").write_text("\n".join(csv_lines) + "\n")
    config = {"name": "rows", "seed": 3,
              "data": {"train": {"type": "csv", "path": "t.csv", "label": "label", **(source or {})},
                       "validation": {"split": 0.25}, "test": {"split": 0.25}, **(data or {})},
              "model": {"input_shape": [width], "layers": [{"type": "dense", "units": 2,
                                                        "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "training": {"epochs": 1, "batch_size": 8}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def load(path):
    from dltrain.config.loader import parse
    from dltrain.experiment import Experiment

    experiment = Experiment(parse(path.read_text(), str(path)))
    return experiment, experiment.load_data()


def held_out_rows(tmp_path, n):
    """The file rows (0-based) that validation and test take out of an n-row file (the split
    depends on the seed and the row count, not on the values)."""
    path = write_config(tmp_path, ["v,label"] + [f"{i},{i % 2}" for i in range(n)])
    _, splits = load(path)
    return np.sort(np.concatenate([splits["validation"].indices, splits["test"].indices]))


def test_fill_values_come_from_the_training_rows_only(tmp_path):
    n = 40
    held = set(held_out_rows(tmp_path, n).tolist())
    train_rows = [i for i in range(n) if i not in held]
    # held-out rows carry huge values: a whole-file mean would be pulled far up by them
    values = {i: (1000.0 if i in held else float(i)) for i in range(n)}
    missing = train_rows[0]
    lines = ["v,label"] + [f"{'NA' if i == missing else values[i]},{i % 2}" for i in range(n)]
    path = write_config(tmp_path, lines, {"missing": "mean"})
    experiment, splits = load(path)
    expected = np.mean([values[i] for i in train_rows if i != missing])
    whole_file = np.mean([values[i] for i in range(n) if i != missing])
    fill = experiment.sources["train"].fitted["fill"]["v"]
    assert fill == pytest.approx(expected) and abs(fill - whole_file) > 100
    assert splits["train"].x[missing, 0] == pytest.approx(expected, rel=1e-6)
    for name in ("train", "validation", "test"):                  # every split sees the refit x
        assert splits[name].x is splits["train"].x


def test_categories_come_from_the_training_rows_only(tmp_path):
    n = 40
    held = held_out_rows(tmp_path, n)
    # 'b' appears in training rows and in held-out ones; 'a' everywhere: both known
    lines = ["c,label"] + [f"{'b' if i % 3 == 0 else 'a'},{i % 2}" for i in range(n)]
    path = write_config(tmp_path, lines, width=2)
    experiment, splits = load(path)
    assert experiment.sources["train"].fitted["categories"] == {"c": ["a", "b"]}
    assert splits["train"].x.shape == (n, 2)
    # now a category only in one held-out row: unseen, so the documented data error, naming it
    row = int(held[0])
    lines = ["c,label"] + [f"{'z' if i == row else 'a'},{i % 2}" for i in range(n)]
    path = write_config(tmp_path, lines)
    with pytest.raises(DataError, match=rf"row {row + 1} \(line {row + 2}\), column 'c': category 'z' "
                                        "was not in the training data") as caught:
        load(path)
    assert "held out" in caught.value.fix


def test_a_category_only_in_held_out_rows_is_an_exit_3_naming_the_row(tmp_path, cli):
    n = 40
    row = int(held_out_rows(tmp_path, n)[-1])
    lines = ["c,label"] + [f"{'rare' if i == row else 'a'},{i % 2}" for i in range(n)]
    path = write_config(tmp_path, lines)
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 3, result.output
    assert f"row {row + 1}" in result.output and "'rare'" in result.output


def test_a_separate_test_file_uses_the_fill_values_of_the_training_rows(tmp_path):
    """A test source file adopts what the training rows taught, after the refit."""
    n = 40
    path = write_config(tmp_path, ["v,label"] + [f"{i},{i % 2}" for i in range(n)], {"missing": "mean"},
                        data={"test": {"type": "csv", "path": "test.csv", "label": "label"}})
    (tmp_path / "test.csv").write_text("v,label\n1,0\n")
    _, splits = load(path)
    held = set(splits["validation"].indices.tolist())
    lines = ["v,label"] + [f"{'NA' if i == 0 else (900 if i in held else 1)},{i % 2}" for i in range(n)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.csv").write_text("v,label\nNA,0\n")
    _, splits = load(path)
    assert 0 not in held and splits["test"].x[0, 0] == 1.0         # not pulled up by the 900s


def test_fit_saves_the_training_rows_record_and_evaluate_reuses_it(tmp_path, cli):
    import json

    n = 40
    held = set(held_out_rows(tmp_path, n).tolist())
    lines = ["v,label"] + [f"{'NA' if i == 1 else (500.0 if i in held else 1.0)},{i % 2}" for i in range(n)]
    path = write_config(tmp_path, lines, {"missing": "mean"})
    assert cli("fit", path, "--run-dir", tmp_path / "run", "--quiet").exit_code == 0
    from dltrain.training import checkpoint

    _, meta = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.npz")
    assert meta["source_state"]["fill"]["v"] == pytest.approx(1.0)      # the held-out 500s left out
    result = cli("evaluate", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    assert "loss" in json.loads(result.stdout)
