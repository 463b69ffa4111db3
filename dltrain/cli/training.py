"""Commands: fit, evaluate and predict (training a run and using it)."""
import sys

import click

from dltrain.cli import render
from dltrain.cli.app import CONTEXT, device_option, handle_errors, set_option, stderr


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
@click.option("--workers", type=click.IntRange(min=1), default=1, metavar="N",
              help="Train data-parallel on N local processes (needs dltrain[mpi]); under "
                   "`mpiexec -n N dltrain fit ...` the world size is detected instead.")
@device_option
@handle_errors
def fit(config, overrides, run_dir, overwrite, resume, allow_config_change, quiet, workers, device):
    """Train the model described by CONFIG (or resume a run with --resume RUN)."""
    import warnings

    from dltrain import api
    from dltrain.cli.progress import ProgressDisplay

    if config is None and resume and resume.endswith((".yaml", ".yml")):   # fit --resume CONFIG
        config, resume = resume, "auto"
    if config is None and resume in (None, "auto"):
        raise click.UsageError("give CONFIG, or --resume RUN to continue a run")
    if workers > 1 and not api.launched():                  # start the ranks; each runs this command
        sys.exit(api.launch_workers(workers, click.get_current_context().params, debug=_debug()))
    comm = api.world()
    console = render.console()
    console.quiet = not comm.is_root                         # rank 0 alone reports
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *args, **kwargs: stderr().print(
            f"warning: {message}", markup=False) if comm.is_root else None
        result = api.fit(config, overrides, run_dir=run_dir, overwrite=overwrite,
                         callbacks=[ProgressDisplay(console, live=not quiet and comm.is_root)],
                         resume=resume, allow_config_change=allow_config_change, comm=comm,
                         check_replicas=100 if _debug() and comm.size > 1 else None,
                         device=device)
    if hasattr(result, "scores"):                # k-fold cross-validation: one row per fold
        return _print_cross_validation(console, result)
    if result.note:                              # e.g. resuming a run that has nothing left to do
        return console.print(f"{result.run_dir}: {result.note}", highlight=False)
    _print_fit_summary(console, result)


def _debug():
    return click.get_current_context().find_root().params.get("debug", False)


def _print_fit_summary(console, result):
    format_value = render.format_value
    if not result.history:
        return
    last = result.history[-1]
    table = render.table(f"{result.run_dir}  ({len(result.history)} epochs)", ("metric", render.NAME),
                         ("train", render.RIGHT), ("validation", render.RIGHT),
                         *([("test", render.RIGHT)] if result.test else []))
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
    format_value = render.format_value
    summary = result.summary()
    table = render.table(f"{result.run_dir}  ({len(result.scores)}-fold cross-validation, "
                         "validation metrics)", ("fold", render.NAME),
                         *((key, render.RIGHT) for key in summary))
    for i, scores in enumerate(result.scores, start=1):
        table.add_row(f"fold {i}", *(format_value(scores[key]) for key in summary))
    table.add_row("mean ± std", *(f"{format_value(m)} ± {format_value(s)}" for m, s in summary.values()),
                  style="bold")
    console.print(table)
    console.print(f"runs: {result.run_dir}/fold1 .. fold{len(result.scores)}")


def _print_fold_scores(console, result):
    """A k-fold run on its test split: each fold's model, mean ± std, and the fold ensemble."""
    format_value = render.format_value
    summary = result.summary()
    table = render.table(f"{result.run_dir}  ({len(result.folds)} fold models on the test split)",
                         ("model", render.NAME), *((key, render.RIGHT) for key in summary))
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
@device_option
@handle_errors
def evaluate(run, which, data, as_json, device):
    """Score the run RUN on its test split (or --data)."""
    from dltrain import api

    scores = api.evaluate(run, which, data, device=device)
    if as_json:                                  # strict JSON: NaN and Inf are null
        click.echo(render.json_text(scores.as_dict() if hasattr(scores, "ensemble") else scores, indent=None))
        return
    if hasattr(scores, "ensemble"):              # a k-fold run: each fold, mean ± std, ensemble
        return _print_fold_scores(render.console(), scores)
    table = render.table(f"{run}  ({scores.checkpoint})", ("metric", render.NAME), ("value", render.RIGHT))
    for key, value in scores.items():
        table.add_row(key, render.format_value(value))
    render.console().print(table)


@click.command(context_settings=CONTEXT)
@click.argument("run", type=click.Path())
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", "which", default="best", show_default=True,
              help="best, last, or a checkpoint file.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write predictions to this file.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "npy"]),
              help="Output format (default: from --output's extension, else csv).")
@click.option("--top-k", type=click.IntRange(min=1), help="The k most probable classes per sample.")
@device_option
@handle_errors
def predict(run, files, which, output, fmt, top_k, device):
    """Apply the run RUN to FILES (.csv, .npy, .npz, ...)."""
    from dltrain import api

    predictions = api.predict(run, files, which, device=device)
    top_k, note = predictions.capped_top_k(top_k)
    if note:
        stderr().print(note)
    if output:
        api.write_predictions(predictions, output, fmt, top_k)
        stderr().print(f"wrote {len(predictions.outputs)} predictions to {output}")
        return
    if fmt == "npy":
        raise click.UsageError("--format npy needs --output FILE")
    if fmt == "json":
        click.echo(render.json_text(predictions.records(top_k)))
        return
    predictions.write_csv(sys.stdout, top_k)


COMMANDS = [fit, evaluate, predict]
