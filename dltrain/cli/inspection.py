"""Commands: check, summary, gradcheck and time (a config's model, inspected without training)."""
import click

from dltrain.cli.app import CONTEXT, handle_errors, set_option


def _console():
    from rich.console import Console

    return Console(highlight=False)


@click.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--quiet", is_flag=True, help="Print nothing on success (the exit code says it).")
@handle_errors
def check(config, overrides, quiet):
    """Validate CONFIG and infer every shape; train nothing, read no data (exit 0 or 2)."""
    from dltrain.config.validate import validate
    from dltrain.summary import summarize

    from dltrain.feasibility import check_config

    checked = validate(config, overrides, files=True)
    check_config(checked)                   # memory this machine lacks, labels vs the last layer
    if quiet:
        return
    summary = summarize(checked)
    console = _console()
    _print_summary(console, summary)
    console.print(f"[green]ok[/green]: {config} is valid")


@click.command(context_settings=CONTEXT)
@click.argument("target", metavar="CONFIG|RUN", type=click.Path())
@set_option
@click.option("--passes", "passes", is_flag=True, help="Also list the graph passes and what each rewrote.")
@handle_errors
def summary(target, overrides, passes):
    """Per-layer table of a config or a run: output shape, parameters, FLOPs, memory."""
    from dltrain.config.validate import validate
    from dltrain.summary import config_of, summarize

    checked = validate(config_of(target), overrides, files=False)
    result = summarize(checked, passes=passes)
    console = _console()
    _print_summary(console, result)
    for graph_pass in result.passes or ():
        rewrites = graph_pass["rewrites"] or ["(nothing in this model)"]
        console.print(f"[bold]{graph_pass['name']}[/bold]: {graph_pass['description']}", highlight=False)
        for note in rewrites if graph_pass["enabled"] else ["(off)"]:
            console.print(f"  {note}", highlight=False)


def _print_summary(console, summary):
    from rich.table import Table

    from dltrain.summary import human_bytes, human_count

    table = Table(title=f"{summary.name}  input {summary.input_shape}", title_justify="left")
    for column, justify in (("layer", "left"), ("type", "left"), ("inputs", "left"),
                            ("output shape", "left"), ("params", "right"), ("FLOPs", "right")):
        table.add_column(column, justify=justify)
    for row in summary.rows:
        table.add_row(row.name, row.kind, ", ".join(row.inputs), str(row.output_shape),
                      f"{row.params:,}", human_count(row.flops))
    table.add_section()
    table.add_row("total", "", "", "", f"{summary.params:,}", human_count(summary.flops))
    console.print(table)
    memory = summary.memory
    console.print(
        f"memory at batch size {summary.batch_size}: parameters {human_bytes(memory['parameters'])}, "
        f"gradients {human_bytes(memory['gradients'])}, optimizer {summary.optimizer} "
        f"{human_bytes(memory['optimizer'])}, activations {human_bytes(memory['activations'])}; "
        f"total {human_bytes(memory['total'])}")


@click.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1),
              help="Samples in the random batch.")
@click.option("--elements", default=30, show_default=True, type=click.IntRange(min=1),
              help="Elements checked per parameter array (all, when it has fewer).")
@handle_errors
def gradcheck(config, overrides, batch_size, elements):
    """Compare every parameter's gradient with central differences, in float64 (exit 0 or 1)."""
    from rich.table import Table

    from dltrain.config.validate import validate
    from dltrain.model_gradcheck import check_model

    checks = check_model(validate(config, overrides, files=False), batch_size, elements)
    table = Table(title=f"{config}: relative error of each gradient (float64)", title_justify="left")
    for column in ("layer", "type", "worst", "per parameter", "at kinks"):
        table.add_column(column)
    worst = 0.0
    for item in checks:
        worst = max(worst, item.worst)
        mark = "green" if item.worst < 1e-6 else "red"
        table.add_row(item.name, item.type, f"[{mark}]{item.worst:.2e}[/{mark}]",
                      ", ".join(f"{k} {v:.1e}" for k, v in item.errors.items()),
                      str(item.skipped) if item.skipped else "")
    console = _console()
    console.print(table)
    console.print(f"worst relative error: {worst:.2e} ({'ok' if worst < 1e-6 else 'above 1e-6'})")
    if worst >= 1e-6:
        raise SystemExit(1)


@click.command("time", context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per batch (default: the config's).")
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(min=1),
              help="Timed passes; the median is shown.")
@handle_errors
def time_command(config, overrides, batch_size, iterations):
    """Forward and backward milliseconds per layer for one batch (reads no data)."""
    from rich.console import Console
    from rich.table import Table

    from dltrain.api import _tune_allocator
    from dltrain.experiment import Experiment
    from dltrain.timing import time_layers

    _tune_allocator()                   # as `fit` does: without it every large array page-faults
    experiment = Experiment(config, overrides)
    model = experiment.build()
    batch_size = batch_size or experiment.training["batch_size"]
    rows = time_layers(model, batch_size, iterations)
    table = Table(title=f"{config}: batch {batch_size}, median of {iterations} passes (training mode)",
                  title_justify="left")
    for column in ("layer", "type", "output shape", "forward ms", "backward ms"):
        table.add_column(column, justify="right" if column.endswith("ms") else "left")
    for row in rows:
        table.add_row(row.name, row.type, str(row.output_shape), f"{row.forward_ms:.3f}", f"{row.backward_ms:.3f}")
    forward, backward = sum(r.forward_ms for r in rows), sum(r.backward_ms for r in rows)
    table.add_row("total", "", "", f"{forward:.3f}", f"{backward:.3f}", style="bold")
    Console(highlight=False).print(table)


COMMANDS = [check, summary, gradcheck, time_command]
