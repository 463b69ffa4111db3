"""Commands: fit, evaluate and predict (training a run and using it)."""
import json
import sys

import click

from dltrain.cli.app import CONTEXT, handle_errors, set_option, stderr


@click.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@set_option
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where to write the run (default runs/NAME).")
@click.option("--overwrite", is_flag=True, help="Replace an existing, non-empty run directory.")
@click.option("--resume", is_flag=False, flag_value="auto", default=None, metavar="[auto|PATH]",
              help="Continue a run exactly: `auto` (the default value) resumes the run directory's "
                   "last checkpoint if there is one; PATH is a run directory or checkpoint (CONFIG "
                   "then optional).")
@click.option("--allow-config-change", is_flag=True,
              help="Resume even though the config differs from the run's.")
@click.option("--quiet", is_flag=True, help="No progress bar; one line per epoch, for logs.")
@handle_errors
def fit(config, overrides, run_dir, overwrite, resume, allow_config_change, quiet):
    """Train the model described by CONFIG (or resume a run with --resume RUN)."""
    import warnings

    from rich.console import Console

    from dltrain import api
    from dltrain.cli.progress import ProgressDisplay

    if config is None and resume and resume.endswith((".yaml", ".yml")):   # fit --resume CONFIG
        config, resume = resume, "auto"
    if config is None and resume in (None, "auto"):
        raise click.UsageError("give CONFIG, or --resume RUN to continue a run")
    console = Console(stderr=False, highlight=False)
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: stderr().print(
            f"warning: {message}", markup=False)
        result = api.fit(config, overrides, run_dir=run_dir, overwrite=overwrite,
                         callbacks=[ProgressDisplay(console, live=not quiet)], resume=resume,
                         allow_config_change=allow_config_change)
    if hasattr(result, "scores"):                # k-fold cross-validation: one row per fold
        return _print_cross_validation(console, result)
    _print_fit_summary(console, result)


def _print_fit_summary(console, result):
    from rich.table import Table

    from dltrain.cli.progress import format_value

    if not result.history:
        return
    last = result.history[-1]
    table = Table(title=f"{result.run_dir}  ({len(result.history)} epochs)", title_justify="left")
    table.add_column("metric")
    table.add_column("train", justify="right")
    table.add_column("validation", justify="right")
    if result.test:
        table.add_column("test", justify="right")
    for key, value in last.items():
        if key in ("epoch", "lr", "seconds") or key.startswith("val_"):
            continue
        row = [key, format_value(value), format_value(last.get(f"val_{key}", ""))]
        if result.test:
            row.append(format_value(result.test.get(key, "")))
        table.add_row(*row)
    console.print(table)
    if result.trainer.restored_epoch:
        console.print(f"restored the weights of epoch {result.trainer.restored_epoch} (early stopping)")
    if result.test:
        weights = f"epoch {result.trainer.restored_epoch}'s restored" if result.trainer.restored_epoch \
            else f"the last epoch's ({len(result.history)})"
        console.print(f"test: scored with {weights} weights; `dltrain evaluate` scores the best "
                      "checkpoint (best.npz) when the run kept one, else last.npz")
    console.print(f"next: dltrain evaluate {result.run_dir}")


def _print_cross_validation(console, result):
    """Each fold's validation metrics, then their mean ± standard deviation."""
    from rich.table import Table

    from dltrain.cli.progress import format_value

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


def _print_fold_scores(console, result):
    """A k-fold run on its test split: each fold's model, mean ± std, and the fold ensemble."""
    from rich.table import Table

    from dltrain.cli.progress import format_value

    summary = result.summary()
    table = Table(title=f"{result.run_dir}  ({len(result.folds)} fold models on the test split)",
                  title_justify="left")
    table.add_column("model")
    for key in summary:
        table.add_column(key, justify="right")
    for checkpoint, scores in zip(result.checkpoints, result.folds):
        table.add_row(checkpoint, *(format_value(scores[key]) for key in summary))
    table.add_row("mean ± std", *(f"{format_value(m)} ± {format_value(s)}" for m, s in summary.values()),
                  style="bold")
    table.add_row("ensemble (mean output)", *(format_value(result.ensemble.get(key, "")) for key in summary),
                  style="bold")
    console.print(table)


@click.command(context_settings=CONTEXT)
@click.argument("run", type=click.Path())
@click.option("--checkpoint", "which", default="best", show_default=True,
              help="best, last, or a checkpoint file.")
@click.option("--data", help="A data file (or a source spec in YAML) instead of the test split.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
@handle_errors
def evaluate(run, which, data, as_json):
    """Score the run RUN on its test split (or --data)."""
    from dltrain import api

    from dltrain.data.prediction_inputs import strict

    scores = api.evaluate(run, which, data)
    if as_json:                                  # strict JSON: NaN and Inf are null
        click.echo(json.dumps(strict(scores.as_dict() if hasattr(scores, "ensemble") else scores),
                              allow_nan=False))
        return
    from rich.console import Console
    from rich.table import Table

    from dltrain.cli.progress import format_value

    if hasattr(scores, "ensemble"):              # a k-fold run: each fold, mean ± std, ensemble
        return _print_fold_scores(Console(), scores)
    table = Table(title=f"{run}  ({scores.checkpoint})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in scores.items():
        table.add_row(key, format_value(value))
    Console().print(table)


@click.command(context_settings=CONTEXT)
@click.argument("run", type=click.Path())
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", "which", default="best", show_default=True,
              help="best, last, or a checkpoint file.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write predictions to this file.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "npy"]),
              help="Output format (default: from --output's extension, else csv).")
@click.option("--top-k", type=click.IntRange(min=1), help="The k most probable classes per sample.")
@handle_errors
def predict(run, files, which, output, fmt, top_k):
    """Apply the run RUN to FILES (.csv, .npy, .npz, ...)."""
    from dltrain import api

    from dltrain.data.prediction_inputs import cap_top_k

    predictions = api.predict(run, files, which)
    top_k, note = cap_top_k(top_k, predictions)
    if note:
        stderr().print(note)
    if output:
        api.write_predictions(predictions, output, fmt, top_k)
        stderr().print(f"wrote {len(predictions.outputs)} predictions to {output}")
        return
    if fmt == "npy":
        raise click.UsageError("--format npy needs --output FILE")
    if fmt == "json":
        click.echo(json.dumps(predictions.records(top_k), indent=1))
        return
    from dltrain.data.prediction_output import write_csv

    write_csv(sys.stdout, predictions, top_k)


COMMANDS = [fit, evaluate, predict]
