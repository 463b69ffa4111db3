"""Commands: runs (list the runs under a folder) and runs compare, over dltrain.runs."""
import json

import click

from dltrain.cli.app import CONTEXT, handle_errors
from dltrain.cli.sweep import DefaultGroup, wide_console


@click.group(cls=DefaultGroup, default="list", context_settings=CONTEXT,
            subcommand_metavar="[DIR] | compare RUN RUN...")
def runs():
    """Runs on disk: `dltrain runs [DIR]` lists every run under DIR (default runs/) with its
    status, epochs, best monitored metric and training time; `dltrain runs compare RUN RUN...`
    shows what differs in their configs and their final metrics side by side."""


@runs.command("list", context_settings=CONTEXT)
@click.argument("folder", metavar="[DIR]", default="runs", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list and nothing else.")
@handle_errors
def list_command(folder, as_json):
    """Every run directory under DIR (default runs/)."""
    from pathlib import Path

    from dltrain import runs as runs_lib

    found = runs_lib.list_runs(folder)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found]))
        return
    from rich.table import Table

    from dltrain.cli.progress import format_value

    table = Table(title=f"{len(found)} runs under {folder}", title_justify="left")
    for column in ("run", "name", "status", "epochs", "monitor", "best", "best epoch", "train s", "started"):
        table.add_column(column, justify="right" if column in ("epochs", "best", "best epoch", "train s") else "left")
    for run in found:
        shown = run.path.relative_to(folder) if run.path != Path(folder) else run.path
        table.add_row(str(shown), str(run.name), run.status, str(run.epochs), run.monitor or "",
                      "" if run.best is None else format_value(run.best), str(run.best_epoch or ""),
                      format_value(round(run.seconds, 2)), (run.started or "")[:19])
    wide_console().print(table)


@runs.command(context_settings=CONTEXT)
@click.argument("paths", metavar="RUN RUN...", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="Also overlay their learning curves in this image (.png or .svg).")
@handle_errors
def compare(paths, as_json, plot_file):
    """The config differences and final metrics of RUNs side by side."""
    from dltrain import runs as runs_lib

    comparison = runs_lib.compare(paths)
    if as_json:
        click.echo(json.dumps(comparison.as_dict(), default=str))
        return
    from rich.table import Table

    from dltrain.cli.progress import format_value

    console = wide_console()
    names = [str(r.path) for r in comparison.runs]
    for title, rows in (("config differences", comparison.config), ("final metrics", comparison.metrics)):
        table = Table(title=title, title_justify="left")
        table.add_column("key")
        for name in names:
            table.add_column(name, justify="right")
        for key, values in rows:
            table.add_row(key, *["-" if v is None else format_value(v) for v in values])
        if title == "config differences" and not rows:
            table.add_row("(the configs are the same)", *["" for _ in names])
        console.print(table)
    if plot_file:
        from dltrain import plot as plotting

        path, text = plotting.plot(paths, plot_file)
        console.print(f"wrote {path}" if path else text)
    else:
        console.print(f"curves: dltrain plot {' '.join(paths)}   (or --plot FILE)")


COMMANDS = [runs]
