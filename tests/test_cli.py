"""The command line: exit codes and stable fragments of messages (never exact rich formatting).

In-process through click's CliRunner; the install path (console script, `python -m dltrain`)
as real subprocesses.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CONFIGS, DATASETS, run_dltrain
from dltrain.cli import main

DIGITS = CONFIGS / "digits_mlp.yaml"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits run trained for two epochs, shared by the evaluate and predict tests."""
    run = tmp_path_factory.mktemp("cli") / "digits"
    result = invoke("fit", DIGITS, "--set", "training.epochs=2", "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    return run


def _config(tmp_path, text):
    """A config file in tmp_path that reads the bundled digits data."""
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("DIGITS", str(DATASETS / "digits.npz")))
    return path


BASE = """name: t
data:
  train: {type: npz, path: DIGITS}
  test: {split: 0.2}
model:
  input_shape: [8, 8]
  layers:
    - flatten
    - {type: %s, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
training: {epochs: 1}
"""


def assert_user_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in:\n{result.output}"


# -- fit -------------------------------------------------------------------------------------

def test_fit_writes_the_run_directory(digits_run):
    for name in ("config.yaml", "run.json", "metrics.csv", "metrics.jsonl", "checkpoints/last.npz",
                 "checkpoints/best.npz"):
        assert (digits_run / name).is_file(), name
    rows = (digits_run / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "loss"] and len(rows) == 3
    assert "val_accuracy" in rows[0] and rows[0].endswith("lr,seconds")


def test_unknown_layer_type_names_the_yaml_path_line_and_closest_name(tmp_path):
    config = _config(tmp_path, BASE % "dens")
    result = invoke("fit", config, "--run-dir", tmp_path / "run")
    assert_user_error(result, 2, "unknown layer type 'dens'", "model.layers[1]", f"{config}:9",
                      "did you mean 'dense'")


def test_unknown_layer_argument_names_the_yaml_path_line_and_closest_name(tmp_path):
    config = _config(tmp_path, (BASE % "dense").replace("units: 10", "unit: 10"))
    result = invoke("fit", config, "--run-dir", tmp_path / "run")
    assert_user_error(result, 2, "unknown argument 'unit'", "model.layers[1]", f"{config}:9",
                      "did you mean 'units'")


def test_a_missing_config_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = invoke("fit", missing)
    assert_user_error(result, 2, "nope.yaml")


def test_a_missing_data_file_exits_2_naming_it(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text((BASE % "dense").replace("DIGITS", "absent.npz"))
    result = invoke("fit", config, "--run-dir", tmp_path / "run")
    assert_user_error(result, 2, "absent.npz")


def test_a_non_empty_run_directory_is_refused_without_overwrite(tmp_path):
    config = _config(tmp_path, BASE % "dense")
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("x")
    assert_user_error(invoke("fit", config, "--run-dir", run, "--quiet"), 2, "--overwrite")
    assert (run / "keep.txt").exists()
    # --overwrite replaces only a dltrain run (or an empty folder): someone's files are kept (issue 14)
    assert_user_error(invoke("fit", config, "--run-dir", run, "--quiet", "--overwrite"), 2,
                      "not a dltrain run directory")
    assert (run / "keep.txt").exists()
    (run / "keep.txt").unlink()
    assert invoke("fit", config, "--run-dir", run, "--quiet").exit_code == 0
    (run / "checkpoints" / "mine.txt").write_text("x")         # inside a run: the run is replaced
    result = invoke("fit", config, "--run-dir", run, "--quiet", "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (run / "checkpoints" / "mine.txt").exists() and (run / "checkpoints" / "last.npz").exists()


def test_set_override_reaches_the_resolved_config(tmp_path):
    config = _config(tmp_path, BASE % "dense")
    run = tmp_path / "run"
    result = invoke("fit", config, "--run-dir", run, "--quiet", "--set", "training.batch_size=64")
    assert result.exit_code == 0, result.output
    assert "batch_size: 64" in (run / "config.yaml").read_text()


# -- evaluate --------------------------------------------------------------------------------

def test_evaluate_json_prints_only_one_json_object_on_stdout(digits_run):
    result = invoke("evaluate", digits_run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert set(scores) == {"loss", "accuracy"}
    assert 0 <= scores["accuracy"] <= 1


def test_evaluate_table_and_last_checkpoint(digits_run):
    result = invoke("evaluate", digits_run, "--checkpoint", "last")
    assert result.exit_code == 0 and "accuracy" in result.output


def test_evaluate_a_run_that_does_not_exist_exits_2(tmp_path):
    assert_user_error(invoke("evaluate", tmp_path / "nothing"), 2, "nothing")


# -- predict ---------------------------------------------------------------------------------

@pytest.fixture
def samples(tmp_path):
    """Five digits as a CSV of 64 features, an .npy and an .npz."""
    with np.load(DATASETS / "digits.npz") as archive:
        x, y = archive["x"][:5], archive["y"][:5]
    csv = tmp_path / "samples.csv"
    header = ",".join(f"p{i}" for i in range(64))
    np.savetxt(csv, x.reshape(5, -1), delimiter=",", fmt="%d", header=header, comments="")
    np.save(tmp_path / "samples.npy", x)
    np.savez(tmp_path / "samples.npz", x=x, y=y)
    return tmp_path


def test_predict_writes_csv_json_and_npy(digits_run, samples):
    out = samples / "p.csv"
    result = invoke("predict", digits_run, samples / "samples.csv", "--output", out)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("file,row,prediction,p_0") and len(lines) == 6

    result = invoke("predict", digits_run, samples / "samples.npy", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 5
    assert sum(records[0][f"p_{c}"] for c in range(10)) == pytest.approx(1, abs=1e-5)

    out = samples / "p.npy"
    assert invoke("predict", digits_run, samples / "samples.npz", "--output", out).exit_code == 0
    probabilities = np.load(out)
    assert probabilities.shape == (5, 10) and probabilities.dtype == np.float32
    assert [r["prediction"] for r in records] == list(probabilities.argmax(axis=1))


@pytest.mark.parametrize("suffix", ["csv", "npy"])
def test_predict_to_a_folder_that_does_not_exist_says_it_once_with_the_fix(digits_run, samples, suffix):
    # before: "cannot write predictions to X: cannot write X: ..." and a fix about the run directory
    out = samples / "no-such-folder" / f"p.{suffix}"
    result = invoke("predict", digits_run, samples / "samples.npy", "--output", out)
    assert_user_error(result, 5, f"cannot write predictions to {out}: No such file or directory", "--output")
    assert result.output.count("cannot write") == 1 and "run directory" not in result.output


def test_predict_top_k(digits_run, samples):
    result = invoke("predict", digits_run, samples / "samples.npy", "--top-k", "3")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split(",")
    assert header == ["file", "row", "prediction", "top1", "top1_probability", "top2",
                      "top2_probability", "top3", "top3_probability"]
    assert len(result.stdout.splitlines()) == 6


def test_predict_with_a_csv_of_the_wrong_width_exits_3_expected_vs_found(digits_run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n4,5,6\n")
    result = invoke("predict", digits_run, bad)
    assert_user_error(result, 3, "bad.csv", "expect")
    assert "(3,)" in result.output or "3 feature columns" in result.output       # what was found
    assert "(8, 8)" in result.output or "64" in result.output                     # what was expected


def test_predict_a_missing_file_exits_2_naming_it(digits_run, tmp_path):
    assert_user_error(invoke("predict", digits_run, tmp_path / "ghost.csv"), 2, "ghost.csv")


# -- the installed command -------------------------------------------------------------------

def test_help_answers_in_under_half_a_second():
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "dltrain", "--help"], capture_output=True, text=True)
        timings.append(time.perf_counter() - started)
        assert done.returncode == 0 and "fit" in done.stdout
    assert min(timings) < 0.5, f"`dltrain --help` took {min(timings):.2f} s (heavy imports at top level?)"


def test_console_script_fit_and_evaluate_json_as_a_real_process(tmp_path):
    script = Path(sys.executable).parent / "dltrain"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dltrain"]
    run = tmp_path / "run"
    done = subprocess.run([*command, "fit", DIGITS, "--set", "training.epochs=1", "--run-dir", run],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    done = run_dltrain("evaluate", run, "--json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"loss", "accuracy"}        # stdout holds only JSON
    done = run_dltrain("fit", tmp_path / "missing.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "missing.yaml" in done.stderr
