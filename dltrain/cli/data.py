"""Commands: datasets (list, download) and data (inspect)."""
import click

from dltrain.cli.app import CONTEXT, handle_errors, set_option


@click.group(context_settings=CONTEXT)
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
    for column in ("name", "shape", "classes", "splits", "source"):
        table.add_column(column, no_wrap=True)
    table.add_column("about")
    listing = registry.listing()
    for d in listing:
        source = d["source"] + (" (cached)" if d["source"] == "download" and d["cached"] else "")
        table.add_row(d["name"], "x".join(map(str, d["shape"])), str(d["classes"] or "regr."),
                      "/".join(d["splits"]), source, f"{d['description']}; {d['size']}")
    console = Console()
    console.print(table)
    for d in listing:
        if d["source"] == "download":
            console.print(f"{d['name']} files are verified by: {d['verification']}", highlight=False)
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


@click.group(context_settings=CONTEXT)
def data():
    """Look at a config's data before training on it."""


@data.command("inspect", context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@handle_errors
def data_inspect(config, overrides):
    """Per split: samples, shapes, dtypes, class balance, ranges, NaN/Inf counts."""
    from rich.console import Console
    from rich.table import Table

    from dltrain.data.inspect import inspect
    from dltrain.cli.progress import format_value

    report = inspect(config, overrides)
    splits = report["splits"]
    table = Table(title=f"{config}: data by split", title_justify="left")
    table.add_column("")
    for name in splits:
        table.add_column(name, justify="right")

    def row(label, fn):
        table.add_row(label, *(fn(s) for s in splits.values()))

    fmt = lambda v: "-" if v is None else format_value(v)  # noqa: E731
    row("samples", lambda s: str(s["samples"]))
    row("input shape", lambda s: "x".join(map(str, s["shape"])) or "scalar")
    row("input dtype", lambda s: s["dtype"])
    row("input range", lambda s: f"{fmt(s['min'])} .. {fmt(s['max'])}")
    row("input mean", lambda s: fmt(s["mean"]))
    row("input NaN / Inf", lambda s: f"{s['nan']} / {s['inf']}")
    if any("characters" in s for s in splits.values()):        # text sources
        row("characters", lambda s: "{} .. {} (mean {:.0f})".format(*s["characters"])
            if s.get("characters") else "-")
    row("label dtype", lambda s: s.get("label_dtype", "-"))
    if any("label_nan" in s for s in splits.values()):
        row("label NaN / Inf", lambda s: f"{s.get('label_nan', 0)} / {s.get('label_inf', 0)}")
    if any("label_range" in s for s in splits.values()):
        row("target range", lambda s: " .. ".join(map(fmt, s["label_range"]))
            if s.get("label_range") else "-")
    names = report["class_names"]
    if report["classes"]:
        for c in range(report["classes"]):
            label = f"class {c}" + (f" ({names[c]})" if names and c < len(names) else "")
            row(label, lambda s, c=c: _share(s.get("balance"), c))
    console = Console()
    console.print(table)
    console.print(f"model input shape: {'x'.join(map(str, report['model_input']))}")
    after = report["after_preprocessing"]
    if after:
        console.print(f"after preprocessing (fitted on train): shape {'x'.join(map(str, after['shape']))}, "
                      f"range {fmt(after['min'])} .. {fmt(after['max'])}, mean {fmt(after['mean'])}")
    if report["kfold"]:
        console.print(f"validation: {report['kfold']}-fold cross-validation over the train split")


def _share(balance, c):
    if not balance:
        return "-"
    count = balance[c] if c < len(balance) else 0
    return f"{count} ({100 * count / max(sum(balance), 1):.1f}%)"


COMMANDS = [datasets, data]
