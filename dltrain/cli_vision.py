"""Commands: time (per-layer timing). Attached to the main group when cli.py is imported."""
from dltrain.cli import CONTEXT, handle_errors, main, set_option  # noqa: F401

import click


@main.command("time", context_settings=CONTEXT)
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
