"""`dltrain export` (ONNX, safetensors) and `dltrain ensemble`."""
import click

from dltrain.cli.app import CONTEXT, handle_errors


@click.command(context_settings=CONTEXT)
@click.argument("run", type=click.Path())
@click.option("--format", "format_", type=click.Choice(["onnx", "safetensors"]), default="onnx", show_default=True,
              help="onnx: the model with its preprocessing, for onnxruntime; safetensors: the weights.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The file to write (default RUN/model.FORMAT).")
@click.option("--checkpoint", default="best", show_default=True, help="best, last or a checkpoint file.")
@click.option("--text-input", type=click.Choice(["strings", "ids"]), default="strings", show_default=True,
              help="A text model's ONNX input: raw strings (text_vectorization inside), or its token ids/counts "
                   "(for runtimes without string operators).")
@handle_errors
def export(run, format_, output, checkpoint, text_input):
    """Write a trained RUN as an ONNX model or a safetensors file of its weights."""
    from dltrain import api

    exported = api.export(run, format_, output, checkpoint, text_input)
    click.echo(f"wrote {exported.path}")
    if exported.input:
        described = exported.input
        shape = ", ".join(map(str, described["shape"]))
        click.echo(f"input {described['name']!r}: {described['dtype']} ({shape}): {described['expects']}")




def show_report(run, which, data, scores, as_json):
    """`evaluate --report`: the scores, then the confusion matrix and per-class table (or the
    residual summary), and the PNG written."""
    import json

    from dltrain import api

    found, image = api.report(run, which, data)
    if as_json:
        click.echo(json.dumps({**scores, "report": found.as_dict(), "image": str(image) if image else None}))
        return
    from rich.console import Console

    console = Console()
    console.print(_scores_table(str(run), scores))
    if found.kind == "classification":
        console.print(_matrix_table(found))
        console.print(_per_class_table(found))
    else:
        console.print(_residual_table(found))
    console.print(f"image: {image}" if image else "image: not drawn (install matplotlib)")


def _scores_table(title, scores):
    from rich.table import Table

    from dltrain.cli.progress import format_value

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in scores.items():
        table.add_row(key, format_value(value))
    return table


def _matrix_table(found):
    from rich.table import Table

    table = Table(title=f"confusion matrix: {found.correct} of {found.samples} correct", title_justify="left",
                  caption="rows: true class; columns: predicted", caption_justify="left")
    table.add_column("true \\ predicted")
    for name in found.class_names:
        table.add_column(name, justify="right")
    for i, (name, row) in enumerate(zip(found.class_names, found.matrix)):
        table.add_row(name, *(f"[bold]{v}[/bold]" if i == j else str(v) for j, v in enumerate(row)))
    return table


def _per_class_table(found):
    from rich.table import Table

    table = Table(title="per class", title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in found.rows:
        table.add_row(row["class"], f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                      str(row["support"]))
    return table


def _residual_table(found):
    from rich.table import Table

    table = Table(title="residuals (prediction - target)", title_justify="left")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in found.summary.items():
        table.add_row(key, str(value) if key == "samples" else f"{value:.6g}")
    return table


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", "which", default="best", show_default=True, help="best, last, or a checkpoint file.")
@click.option("--data", help="A data file (or a source spec in YAML) instead of the first run's test split.")
@click.option("--predict", "files", multiple=True, type=click.Path(),
              help="Predict these files with the averaged members instead of scoring (repeatable).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="With --predict: write the predictions here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the ensemble's scores) and nothing else.")
@handle_errors
def ensemble(runs, which, data, files, output, as_json):
    """Average the outputs of several RUNS (a k-fold run: its folds) and score them like evaluate."""
    import json

    from dltrain import api

    if files:
        predictions = api.ensemble_predict(runs, files, which)
        if output:
            click.echo(f"wrote {api.write_predictions(predictions, output)}")
            return
        click.echo(json.dumps(predictions.records(), indent=1))
        return
    result = api.ensemble(runs, data, which)
    if result.warnings:
        from dltrain.cli.app import stderr

        for warning in result.warnings:
            stderr().print(f"warning: {warning}", markup=False)
    if as_json:
        click.echo(json.dumps(result.scores))
        return
    from rich.console import Console
    from rich.table import Table

    from dltrain.cli.progress import format_value

    keys = list(result.scores)
    table = Table(title=f"ensemble of {len(result.members)} runs, {result.samples} samples", title_justify="left")
    table.add_column("run")
    for key in keys:
        table.add_column(key, justify="right")
    for run, scores in result.members.items():
        table.add_row(run, *(format_value(scores[k]) for k in keys))
    table.add_row("[bold]ensemble[/bold]", *(f"[bold]{format_value(result.scores[k])}[/bold]" for k in keys))
    Console().print(table)


COMMANDS = [export, ensemble]
