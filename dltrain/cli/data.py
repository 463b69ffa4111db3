"""Commands: datasets (list, download) and data (inspect)."""
import click

from dltrain.cli import render
from dltrain.cli.app import CONTEXT, handle_errors, set_option

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


@click.group(context_settings=CONTEXT)
def datasets():
    """Built-in datasets: list them, download them ahead of use."""


@datasets.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def datasets_list(as_json):
    """The built-in datasets, and whether each is on this machine."""
    from dltrain import api

    listing = api.datasets()
    if as_json:
        click.echo(render.json_text({"datasets": listing["datasets"], "cache": listing["cache"]}))
        return
    table = render.table("datasets  ({type: dataset, name: NAME, split: train|test})",
                         *((column, render.NAME) for column in ("name", "shape", "classes", "splits", "source")),
                         "about")
    for d in listing["datasets"]:
        source = d["source"] + (" (cached)" if d["source"] == "download" and d["cached"] else "")
        table.add_row(d["name"], "x".join(map(str, d["shape"])), str(d["classes"] or "regr."),
                      "/".join(d["splits"]), source, f"{d['description']}; {d['size']}")
    console = render.console()
    console.print(table)
    for d in listing["datasets"]:
        if d["source"] == "download":
            console.print(f"{d['name']} files are verified by: {d['verification']}")
    console.print(listing["note"])


@datasets.command("download", context_settings=CONTEXT)
@click.argument("name")
@click.option("--mirror", help="A base URL or local folder to fetch the files from.")
@handle_errors
def datasets_download(name, mirror):
    """Download NAME into the cache (resuming a partial download) and verify it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from dltrain import api

    tasks = {}
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=render.console(stderr=True), transient=False) as bar:
        def progress(file, done, total):
            if file not in tasks:
                tasks[file] = bar.add_task(file, total=total)
            bar.update(tasks[file], completed=done, total=total)

        paths = api.download_dataset(name, mirror, progress)
    for path in paths:
        click.echo(str(path))


@click.group(context_settings=CONTEXT)
def data():
    """Look at a config's data before training on it."""


@data.command("inspect", context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@json_option
@handle_errors
def data_inspect(config, overrides, as_json):
    """Per split: samples, shapes, dtypes, class balance, ranges, NaN/Inf counts."""
    from dltrain import api

    report = api.inspect_data(config, overrides)
    if as_json:
        click.echo(render.json_text({"config": config, **report}))
        return
    splits = report["splits"]
    table = render.table(f"{config}: data by split", ("", render.NAME),
                         *((name, render.RIGHT) for name in splits))

    def row(label, fn):
        table.add_row(label, *(fn(s) for s in splits.values()))

    fmt = lambda v: "-" if v is None else render.format_value(v)  # noqa: E731
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
    console = render.console()
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
