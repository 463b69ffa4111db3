"""Machine-readable and pipe-safe output: --json on list, summary, check, data inspect and
datasets list; tables never cut a name when stdout is not a terminal; the progress line keeps its
bar and drops metrics first at narrow widths."""
import io
import json

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from conftest import CONFIGS, run_dltrain
from dltrain import api
from dltrain.cli import main
from dltrain.cli.progress import KEPT_BAR_WIDTH, MIN_BAR_WIDTH, ProgressDisplay, layout
from dltrain.cli.render import json_text

RESNET = CONFIGS / "digits_resnet.yaml"     # long layer names: main cut 13 cells at 80 columns


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def stdout_json(*args, code=0):
    result = invoke(*args)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)        # one JSON document on stdout, nothing else there


# -- tables in a pipe ------------------------------------------------------------------------

def test_list_in_a_pipe_shows_every_registered_name_whole():
    """`dltrain list | grep global` showed `global_average_pool…` twice."""
    output = invoke("list").stdout
    names = [e.name for entries in api.catalogue().values() for e in entries]
    assert "global_average_pooling1d" in names and "global_average_pooling2d" in names
    lines = output.splitlines()
    for name in names:
        assert any(f" {name} " in line for line in lines), f"{name} is not shown whole"
    assert "…" not in output


def test_summary_in_a_pipe_shows_every_layer_name_and_type_whole():
    """`dltrain summary | cat` cut the layer names of digits_resnet."""
    output = invoke("summary", RESNET).stdout
    for row in api.summary(RESNET).rows:
        assert f" {row.name} " in output and f" {row.type} " in output
    assert "…" not in output


def test_a_real_pipe_with_columns_80_cuts_nothing():
    """The install path: stdout is a pipe of a subprocess whose environment says 80 columns."""
    done = run_dltrain("list", "layers", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    global_lines = [line for line in done.stdout.splitlines() if "global_average" in line]
    assert len(global_lines) == 2
    assert "global_average_pooling1d" in global_lines[0] and "global_average_pooling2d" in global_lines[1]


def test_a_terminal_keeps_names_whole_and_shrinks_the_other_columns():
    from dltrain.cli.catalogue import list_command  # noqa: F401  (the command renders through render.table)
    from dltrain.cli import render

    table = render.table("layers", ("name", render.NAME), "arguments", "description")
    for e in api.catalogue("layers")["layer"]:
        table.add_row(e.name, e.signature, e.description)
    out = io.StringIO()
    Console(file=out, width=80, force_terminal=True, color_system=None).print(table)
    assert "global_average_pooling1d" in out.getvalue() and "global_average_pooling2d" in out.getvalue()


# -- --json ----------------------------------------------------------------------------------

def test_list_json_holds_every_entry_with_its_arguments():
    listing = stdout_json("list", "--json")
    assert set(listing) == set(api.catalogue())
    for kind, entries in api.catalogue().items():
        assert [e["name"] for e in listing[kind]] == [e.name for e in entries]
    dense = next(e for e in listing["layer"] if e["name"] == "dense")
    assert dense["required"] == ["units"] and dense["arguments"]["use_bias"] is True


def test_list_one_kind_and_details_json():
    assert list(stdout_json("list", "losses", "--json")) == ["loss"]
    adam = stdout_json("list", "--details", "adam", "--json")
    assert adam["kind"] == "optimizer" and adam["name"] == "adam" and "learning_rate" in adam["arguments"]
    assert adam["doc"].startswith(adam["description"])


def test_summary_json_has_every_layer_and_the_totals():
    record = stdout_json("summary", RESNET, "--json")
    summary = api.summary(RESNET)
    assert [layer["name"] for layer in record["layers"]] == [r.name for r in summary.rows]
    assert record["params"] == summary.params == sum(layer["params"] for layer in record["layers"])
    assert record["input_shape"] == list(summary.input_shape)
    assert set(record["memory"]) == {"parameters", "gradients", "optimizer", "activations", "total"}


def test_check_json_on_a_valid_config():
    record = stdout_json("check", CONFIGS / "digits_mlp.yaml", "--json")
    assert record["valid"] is True and record["model"]["name"] == "digits-mlp"


def test_check_json_lists_every_error_and_exits_2():
    record = stdout_json("check", CONFIGS / "digits_mlp.yaml", "--json", "--set", "training.epochs=-1",
                         "--set", "optimizer.learning_rate=fast", code=2)
    assert record["valid"] is False and len(record["errors"]) == 2
    assert {e["kind"] for e in record["errors"]} == {"ConfigError"}
    assert any("epochs" in e["where"] for e in record["errors"])


def test_data_inspect_json():
    record = stdout_json("data", "inspect", CONFIGS / "iris_mlp.yaml", "--json")
    assert record["classes"] == 3 and record["model_input"] == [4]
    assert sum(split["samples"] for split in record["splits"].values()) == 150


def test_datasets_list_json():
    record = stdout_json("datasets", "list", "--json")
    names = [d["name"] for d in record["datasets"]]
    assert "digits" in names and "iris" in names and record["cache"]


def test_json_is_strict_nan_and_infinity_become_null():
    import numpy as np

    text = json_text({"a": float("nan"), "b": np.float32(np.inf), "c": np.arange(2), "d": (1.5,)})
    assert json.loads(text) == {"a": None, "b": None, "c": [0, 1], "d": [1.5]}


# -- the progress line -----------------------------------------------------------------------

FOUR_METRICS = {"loss": 0.123456, "accuracy": 0.9876, "precision": 0.912345, "recall": 0.87654,
                "auc": 0.99123, "samples": 3200, "seconds": 1.5}


def progress_line(width, logs=FOUR_METRICS, batch=900, steps=1875):
    """The progress line a terminal of ``width`` columns shows half way through an epoch."""
    display = ProgressDisplay(Console(file=io.StringIO(), width=width, force_terminal=True,
                                      color_system=None))
    display.on_train_begin({"epochs": 10, "steps": steps})
    display.on_epoch_begin(3)
    display.on_train_batch_end(batch, logs)
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(
        display.progress.make_tasks_table(display.progress.tasks))
    display.on_train_end()
    return out.getvalue().splitlines()[0]


@pytest.mark.parametrize("width", [60, 80, 100, 120, 200])
def test_the_progress_bar_stays_and_the_line_fits(width):
    """At 80 columns the bar of a model with four metrics disappeared."""
    line = progress_line(width)
    assert cell_len(line) <= width
    assert line.count("━") >= MIN_BAR_WIDTH // 2 - 1     # half way: half of a bar of >= 10 cells
    assert "epoch 3/10" in line and "901/1875" in line
    assert "…" not in line                                       # metrics are dropped, not cut
    if width >= 80:
        assert "loss 0.1235" in line


def test_metrics_are_dropped_from_the_last_then_the_rate():
    metrics = ["loss 0.1", "accuracy 0.9", "auc 0.8"]
    bar, rate, shown = layout(200, 30, "100 samples/s", metrics)
    assert (rate, shown) == ("100 samples/s", "loss 0.1  accuracy 0.9  auc 0.8") and bar == 40
    bar, rate, shown = layout(30 + KEPT_BAR_WIDTH + len("100 samples/s") + len("loss 0.1"), 30,
                              "100 samples/s", metrics)
    assert (shown, rate, bar) == ("loss 0.1", "100 samples/s", KEPT_BAR_WIDTH)
    bar, rate, shown = layout(30 + KEPT_BAR_WIDTH + 5, 30, "100 samples/s", metrics)
    assert (shown, rate) == ("", "") and bar == KEPT_BAR_WIDTH + 5
    assert layout(10, 30, "100 samples/s", metrics) == (MIN_BAR_WIDTH, "", "")
