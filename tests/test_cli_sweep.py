"""`dltrain sweep ...` and `dltrain runs ...` through click, and the example sweep file as the
help and the README show it."""
import json

import pytest
import yaml
from click.testing import CliRunner
from conftest import CONFIGS, ROOT

from dltrain.cli import main

EXAMPLE = CONFIGS / "sweeps" / "digits_lr.yaml"
SMALL = f"""base: {CONFIGS / "digits_mlp.yaml"}
sweep:
  method: random
  metric: val_accuracy
  trials: 2
  parallel: 2
  max_epochs: 3
  parameters:
    optimizer.learning_rate: {{log_uniform: [3.0e-3, 3.0e-2]}}
    model.layers[1].units: {{choice: [32, 64]}}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def example_lines():
    """The example sweep file without its first line (a comment naming the file)."""
    return EXAMPLE.read_text().splitlines()[1:]


def test_the_help_shows_the_example_sweep_file_as_it_is():
    result = invoke("sweep", "--help")
    assert result.exit_code == 0
    help_lines = [line[2:] for line in result.output.splitlines()]     # click indents by two
    start = help_lines.index(example_lines()[0])
    assert help_lines[start:start + len(example_lines())] == example_lines()


def test_the_readme_shows_the_example_sweep_file_as_it_is():
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLE.read_text() in readme
    assert "dltrain sweep configs/sweeps/digits_lr.yaml" in readme


def test_sweep_check_passes_the_example_and_reports_every_error(tmp_path):
    result = invoke("sweep", "check", EXAMPLE)
    assert result.exit_code == 0 and "ok:" in result.output and "rungs at 3, 9, 30 epochs" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("method: random", "method: randm").replace("units: {choice", "unit: {choice"))
    result = CliRunner().invoke(main, ["sweep", "check", str(bad)])
    assert result.exit_code == 2
    assert "did you mean 'random'" in result.output and "unknown argument 'unit'" in result.output


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A small sweep run through `dltrain sweep FILE --sweep-dir DIR`."""
    tmp_path = tmp_path_factory.mktemp("cli")
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    result = invoke("sweep", path, "--sweep-dir", tmp_path / "sweep", "--quiet")
    assert result.exit_code == 0, result.output
    return tmp_path / "sweep", result.output


def test_sweep_runs_reports_and_writes_the_table_and_plots(swept):
    folder, output = swept
    assert "small: random" in output and "next: dltrain sweep report" in output
    for name in ("trials.csv", "trials.json", "parallel_coordinates.png", "effect_optimizer.learning_rate.png"):
        assert (folder / "report" / name).stat().st_size > 0, name
    result = invoke("sweep", "report", folder, "--json")
    data = json.loads(result.output)
    assert data["metric"] == "val_accuracy" and len(data["trials"]) == 2
    assert data["trials"][0]["score"] >= data["trials"][1]["score"]
    assert [t["status"] for t in data["trials"]] == ["completed", "completed"]
    csv_lines = (folder / "report" / "trials.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rank,trial,optimizer.learning_rate,model.layers[1].units,epochs")
    assert len(csv_lines) == 3


def test_sweep_again_continues_and_runs_nothing_new(swept):
    folder, _ = swept
    before = (folder / "journal.jsonl").read_text()
    result = invoke("sweep", folder.parent / "small.yaml", "--sweep-dir", folder, "--quiet")
    assert result.exit_code == 0 and result.output.count("cached") == 2
    assert (folder / "journal.jsonl").read_text() == before


def test_sweep_best_and_refit(swept):
    folder, _ = swept
    data = json.loads(invoke("sweep", "report", folder, "--json").output)
    top = data["trials"][0]
    result = invoke("sweep", "best", folder)
    assert result.exit_code == 0 and top["trial"] in result.output
    result = invoke("sweep", "best", folder, "--refit")
    assert result.exit_code == 0, result.output
    refit = folder / "refit"
    config = yaml.safe_load((refit / "config.yaml").read_text())
    assert config["data"]["validation"] is None
    assert config["training"]["epochs"] == top["best_epoch"]
    assert config["optimizer"]["learning_rate"] == top["params"]["optimizer.learning_rate"]
    assert all(not str(c.get("monitor", "")).startswith("val_") for c in config["callbacks"])
    assert json.loads((refit / "run.json").read_text())["status"] == "completed"


def test_runs_lists_the_trials_and_compares_two(swept, tmp_path):
    folder, _ = swept
    result = invoke("runs", folder, "--json")
    listed = json.loads(result.output)
    trial_runs = [r for r in listed if "/trials/" in r["run"]]
    assert len(trial_runs) == 2 and all(r["status"] == "completed" and r["epochs"] == 3 for r in trial_runs)
    assert all(r["monitor"] == "val_accuracy" and r["best"] > 0 for r in trial_runs)
    result = invoke("runs", folder)
    assert result.exit_code == 0 and "runs under" in result.output
    a, b = (r["run"] for r in trial_runs)
    data = json.loads(invoke("runs", "compare", a, b, "--json").output)
    assert "optimizer.learning_rate" in data["config"]
    assert not any(key.endswith("path") for key in data["config"])       # the same data file
    assert set(data["final"]) >= {"loss", "val_accuracy"}
    result = invoke("runs", "compare", a, b, "--plot", tmp_path / "both.png")
    assert result.exit_code == 0 and (tmp_path / "both.png").stat().st_size > 0
    assert "config differences" in result.output and "final metrics" in result.output


def test_runs_compare_needs_two_runs(swept):
    folder, _ = swept
    result = CliRunner().invoke(main, ["runs", "compare", str(next((folder / "trials").iterdir()))])
    assert result.exit_code == 2 and "two runs or more" in result.output


def test_runs_lists_a_run_that_failed_before_its_first_epoch(tmp_path):
    run = tmp_path / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "failed", "started": "2026-01-01T00:00:00"}))
    (run / "checkpoints").mkdir()
    listed = json.loads(invoke("runs", tmp_path / "runs", "--json").output)
    assert [(r["status"], r["epochs"], r["best"]) for r in listed] == [("failed", 0, None)]
    result = CliRunner().invoke(main, ["runs", str(tmp_path / "nothere")])
    assert result.exit_code == 2 and "is not a folder" in result.output
