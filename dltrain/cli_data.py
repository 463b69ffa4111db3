"""Commands: datasets and data inspect. Attached to the main group when cli.py is imported."""
import click

from dltrain.cli import CONTEXT, handle_errors, main, set_option  # noqa: F401


def print_cross_validation(console, result):
    """Each fold's validation metrics, then their mean ± standard deviation."""
    from rich.table import Table

    from dltrain.progress import format_value

    summary = result.summary()
    table = Table(title=f"{result.run_dir}  ({len(result.scores)}-fold cross-validation, "
                        "validation metrics)", title_justify="left")
    table.add_column("fold")
    for key in summary:
        table.add_column(key, justify="right")
    for i, scores in enumerate(result.scores, start=1):
        table.add_row(f"fold {i}", *(format_value(scores[key]) for key in summary))
    table.add_row("mean ± std", *(f"{format_value(m)} ± {format_value(s)}" for m, s in summary.values()),
                  style="bold")
    console.print(table)
    console.print(f"runs: {result.run_dir}/fold1 .. fold{len(result.scores)}")


@main.group(context_settings=CONTEXT)
def datasets():
    """Built-in datasets: list them, download them ahead of use."""


@datasets.command("list", context_settings=CONTEXT)
@handle_errors
def datasets_list():
    """The built-in datasets, and whether each is on this machine."""
    from rich.console import Console
    from rich.table import Table

    from dltrain.data import datasets as registry

    table = Table(title="datasets  ({type: dataset, name: NAME, split: train|test})",
                  title_justify="left")
    for column in ("name", "samples", "shape", "classes", "splits", "source", "description"):
        table.add_column(column)
    for d in registry.listing():
        source = d["source"] + (" (cached)" if d["source"] == "download" and d["cached"] else "")
        table.add_row(d["name"], d["size"], "x".join(map(str, d["shape"])),
                      str(d["classes"] or "regression"), ", ".join(d["splits"]), source,
                      d["description"])
    console = Console()
    console.print(table)
    console.print(registry.environment_note())


@datasets.command("download", context_settings=CONTEXT)
@click.argument("name")
@click.option("--mirror", help="A base URL or local folder to fetch the files from.")
@handle_errors
def datasets_download(name, mirror):
    """Download NAME into the cache (resuming a partial download) and verify it."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from dltrain.data import datasets as registry

    data = registry.info(name)
    console = Console(stderr=True)
    tasks = {}
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=console, transient=False) as bar:
        def progress(file, done, total):
            if file not in tasks:
                tasks[file] = bar.add_task(file, total=total)
            bar.update(tasks[file], completed=done, total=total)

        paths = [p for split in data.splits for p in registry.files(name, split, mirror, progress)]
    for path in paths:
        click.echo(str(path))
