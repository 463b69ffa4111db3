"""Commands: runs (list the runs under a folder) and runs compare, over dltrain.api."""
import click

from dltrain.cli import render
from dltrain.cli.app import CONTEXT, handle_errors
from dltrain.cli.sweep import DefaultGroup


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

    from dltrain import api

    found = api.runs(folder)
    if as_json:
        click.echo(render.json_text([r.as_dict() for r in found], indent=None))
        return
    right = ("epochs", "best", "best epoch", "train s")
    table = render.table(f"{len(found)} runs under {folder}", ("run", render.NAME), "name", "status",
                         *[(c, render.RIGHT) for c in right[:1]], "monitor",
                         *[(c, render.RIGHT) for c in right[1:]], "started")
    for run in found:
        shown = run.path.relative_to(folder) if run.path != Path(folder) else run.path
        table.add_row(str(shown), str(run.name), run.status, str(run.epochs), run.monitor or "",
                      "" if run.best is None else render.format_value(run.best), str(run.best_epoch or ""),
                      render.format_value(round(run.seconds, 2)), (run.started or "")[:19])
    render.console().print(table)


@runs.command(context_settings=CONTEXT)
@click.argument("paths", metavar="RUN RUN...", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="Also overlay their learning curves in this image (.png or .svg).")
@handle_errors
def compare(paths, as_json, plot_file):
    """The config differences and final metrics of RUNs side by side."""
    from dltrain import api

    comparison = api.compare_runs(paths)
    if as_json:
        click.echo(render.json_text(comparison.as_dict(), indent=None))
        return
    console = render.console()
    names = [str(r.path) for r in comparison.runs]
    for title, rows in (("config differences", comparison.config), ("final metrics", comparison.metrics)):
        table = render.table(title, ("key", render.NAME), *[(name, render.RIGHT) for name in names])
        for key, values in rows:
            table.add_row(key, *["-" if v is None else render.format_value(v) for v in values])
        if title == "config differences" and not rows:
            table.add_row("(the configs are the same)", *["" for _ in names])
        console.print(table)
    if plot_file:
        path, text = api.plot(paths, plot_file)
        console.print(f"wrote {path}" if path else text, markup=False)
    else:
        console.print(f"curves: dltrain plot {' '.join(paths)}   (or --plot FILE)", markup=False)


COMMANDS = [runs]
