"""The bad-data corpus (tests/bad_data/cases.yaml): each file makes `fit` exit 3 with its message.

Every case runs in-process through the CLI (fast); one runs as a real subprocess to show that the
user sees a message and no traceback.
"""
from pathlib import Path

import pytest
import yaml

from conftest import run_dltrain

BAD = Path(__file__).resolve().parent / "bad_data"
CASES = yaml.safe_load((BAD / "cases.yaml").read_text())


def config_for(case, tmp_path):
    source = {"type": case.get("type", "csv"), "path": str(BAD / case["file"])}
    for key, value in (case.get("source") or {}).items():
        source[key] = str(BAD / value) if key == "labels" else value
    config = {"name": "bad", "data": {"train": source},
              "model": {"input_shape": [3], "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "training": {"epochs": 1}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_corpus_holds_at_least_twenty_files():
    assert len(CASES) >= 20
    assert len({c["file"] for c in CASES}) >= 20
    for case in CASES:
        assert (BAD / case["file"]).exists(), case["file"]


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_file_is_a_data_error(case, tmp_path):
    from click.testing import CliRunner

    from dltrain.cli import main

    config = config_for(case, tmp_path)
    result = CliRunner().invoke(main, ["fit", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"])
    output = " ".join(result.output.split())          # rich wraps long lines
    assert result.exit_code == 3, output
    assert output.startswith("DataError:"), output
    assert "Traceback" not in output
    for fragment in case["expect"]:
        assert fragment in output, f"{fragment!r} not in {output!r}"
    if case.get("names_file", True):
        assert case["file"] in output
    else:
        assert "data.train" in output                    # the config line that names the file
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bad_file_in_a_subprocess_shows_no_traceback(tmp_path):
    case = next(c for c in CASES if c["file"] == "non_numeric_cell.csv")
    result = run_dltrain("fit", config_for(case, tmp_path), "--run-dir", tmp_path / "run", "--quiet")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr + result.stdout
    assert "'abc' is not a number" in " ".join(result.stderr.split())
