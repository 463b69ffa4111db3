"""Commands: sweep (run, check, report, best), over dltrain.sweep."""
import json
import os

import click

from dltrain.cli.app import CONTEXT, handle_errors


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not one of its commands, goes to ``default``:
    `dltrain sweep FILE` is `dltrain sweep run FILE`, `dltrain runs DIR` is `dltrain runs list DIR`."""

    def __init__(self, *args, default=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default, *args]
        elif not args and self.default == "list":
            args = ["list"]
        return super().parse_args(ctx, args)


def wide_console():
    """A rich console; 200 columns wide when it writes to a file or a pipe (tables of trials are wide)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=200)
    return console


SWEEP_HELP = """Search hyperparameters: train one run per trial, each a full run directory.

\b
dltrain sweep SWEEP.yaml [--sweep-dir DIR]   run or continue a sweep (default DIR: runs/NAME)
dltrain sweep check SWEEP.yaml               check everything, train nothing
dltrain sweep report DIR [--json]            ranked table, trials.csv, plots
dltrain sweep best DIR [--refit]             the best trial; --refit trains it on train+validation

A sweep file (configs/sweeps/digits_lr.yaml), keys of `parameters` are --set paths:

\b
base: ../digits_mlp.yaml
sweep:
  method: asha                 # grid | random | asha | hyperband | tpe (tpe: dltrain[optuna])
  metric: val_accuracy
  mode: max
  trials: 24
  parallel: 2                  # processes, each at 1 BLAS thread
  max_epochs: 30
  parameters:
    optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
    model.layers[1].units: {choice: [32, 64, 128]}
    model.layers[2].rate: {uniform: [0.0, 0.5]}

\b
Distributions: choice, grid, uniform, log_uniform, int_uniform, quantized [low, high, step].
Optional: seed (0), min_epochs (max_epochs / eta²), eta (3). ASHA and Hyperband continue a
promoted trial from its checkpoint. Running `dltrain sweep` again continues a sweep from its
journal; a changed file is refused unless --allow-change. Ctrl-C stops every trial cleanly.
"""


@click.group(cls=DefaultGroup, default="run", help=SWEEP_HELP, context_settings=CONTEXT,
            subcommand_metavar="SWEEP.yaml [--sweep-dir DIR] | COMMAND [ARGS]...")
def sweep():
    pass


@sweep.command("run", context_settings=CONTEXT)
@click.argument("sweep_file", metavar="SWEEP.yaml", type=click.Path(dir_okay=False))
@click.option("--sweep-dir", type=click.Path(file_okay=False), help="The sweep's folder (default runs/NAME).")
@click.option("--allow-change", is_flag=True, help="Continue a sweep whose file or base config changed.")
@click.option("--quiet", is_flag=True, help="No live table; one line per finished job.")
@handle_errors
def run_command(sweep_file, sweep_dir, allow_change, quiet):
    """Run the sweep SWEEP.yaml, or continue it (its folder holds a journal)."""
    from dltrain.sweep import report as reports, runner, spec

    console = wide_console()
    sweep_spec = spec.load(sweep_file)
    folder = sweep_dir or runner.default_dir(sweep_spec)
    console.print(f"sweep {sweep_spec.name}: {sweep_spec.method}, {_size(sweep_spec)}, parallel "
                  f"{sweep_spec.parallel}, metric {sweep_spec.metric} ({sweep_spec.mode}) -> {folder}")
    live = _LiveTable(console, sweep_spec, live=console.is_terminal and not quiet)
    with live:
        runner.Runner(sweep_spec, folder, allow_change, on_event=live.event).run()
    report = reports.load(folder)
    console.print(report_table(report, limit=10))
    written = _write_report(report)
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    console.print(f"next: dltrain sweep report {folder}   |   dltrain sweep best {folder} --refit")


def _size(sweep_spec):
    from dltrain.sweep import methods

    if sweep_spec.method in ("asha", "hyperband"):
        rungs = methods.budgets(sweep_spec.min_epochs, sweep_spec.max_epochs, sweep_spec.eta)
        return f"{sweep_spec.trials} trials, rungs at {', '.join(map(str, rungs))} epochs"
    count = sweep_spec.trials or sweep_spec.space.grid_size()
    if sweep_spec.method == "grid":
        count = min(count, sweep_spec.space.grid_size())
    return f"{count} trials of {sweep_spec.max_epochs} epochs"


class _LiveTable:
    """The trials so far, redrawn as jobs start and finish; one line per job when not live."""

    def __init__(self, console, sweep_spec, live):
        self.console, self.sweep, self.live = console, sweep_spec, None
        self.rows, self.use_live, self.done = {}, live, 0

    def __enter__(self):
        if self.use_live:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)

    def event(self, kind, job, record):
        from dltrain.cli.progress import format_value

        self.rows[job.trial] = (job, record, kind)
        if kind != "start":
            self.done += 1
        if self.live is not None:
            self.live.update(self._table())
        elif kind != "start":
            score = format_value(record["score"]) if record["score"] is not None else "-"
            note = f"  {record['message'].splitlines()[-1]}" if record.get("message") else ""
            self.console.print(f"{'cached' if kind == 'cached' else 'done':>6} {job.trial} "
                               f"{_params_text(job.params)}  {job.epochs} epochs  {self.sweep.metric} {score}  "
                               f"{record['status']}{note}", markup=False)

    def _table(self):
        from rich.table import Table

        from dltrain.cli.progress import format_value

        table = Table(title=f"{self.sweep.name}: {self.done} jobs done", title_justify="left")
        for column in ("trial", *self.sweep.space.paths, "epochs", self.sweep.metric, "status"):
            table.add_column(column, justify="right" if column != "trial" else "left")
        for job, record, kind in list(self.rows.values())[-20:]:
            score = "" if record is None or record["score"] is None else format_value(record["score"])
            table.add_row(job.trial, *[format_value(job.params.get(p)) for p in self.sweep.space.paths],
                          str(job.epochs), score, "running" if record is None else record["status"])
        return table


def _params_text(params):
    from dltrain.cli.progress import format_value

    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())


def report_table(report, limit=None):
    """A rich Table of a sweep's ranked trials."""
    from rich.table import Table

    from dltrain.cli.progress import format_value

    shown = report.rows[:limit] if limit else report.rows
    more = f" (best {len(shown)} of {len(report.rows)})" if len(shown) < len(report.rows) else ""
    table = Table(title=f"{report.name}: {report.method}, {report.metric} ({report.mode}){more}",
                  title_justify="left")
    for column in report.columns()[:-1]:
        table.add_column(column, justify="left" if column in ("trial", "status", "note") else "right")
    for row in report.table()[:len(shown)]:
        table.add_row(*["" if v is None else format_value(v) for v in row[:-1]])
    return table


def _write_report(report):
    """trials.csv and trials.json in DIR/report, and the plots when matplotlib is installed."""
    from dltrain.plot import have_matplotlib

    folder = report.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written = [report.write_csv(folder / "trials.csv"), report.write_json(folder / "trials.json")]
    if have_matplotlib() and report.best is not None:
        from dltrain.sweep import plots

        written += plots.effects(report, folder) + [plots.parallel_coordinates(report, folder)]
    return written


@sweep.command(context_settings=CONTEXT)
@click.argument("sweep_file", metavar="SWEEP.yaml", type=click.Path(dir_okay=False))
@handle_errors
def check(sweep_file):
    """Check SWEEP.yaml: its settings, every distribution, the base config with each parameter at
    its extremes; every problem is reported at once. Trains nothing."""
    from rich.console import Console

    from dltrain.sweep import spec

    sweep_spec = spec.load(sweep_file)
    console = Console(highlight=False)
    console.print(f"{sweep_spec.method}: {_size(sweep_spec)}, parallel {sweep_spec.parallel}, "
                  f"metric {sweep_spec.metric} ({sweep_spec.mode}), base {sweep_spec.base}", markup=False)
    for distribution in sweep_spec.space.distributions:
        console.print(f"  {distribution.path}: {json.dumps(distribution.spec())}", markup=False)
    console.print(f"ok: {sweep_file} is valid")


@sweep.command(context_settings=CONTEXT)
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the ranked trials as one JSON object.")
@handle_errors
def report(folder, as_json):
    """The ranked trials of the sweep in DIR; writes DIR/report/trials.csv, trials.json, plots."""
    from dltrain.sweep import report as reports

    loaded = reports.load(folder)
    if as_json:
        click.echo(json.dumps(loaded.as_dict()))
        return
    console = wide_console()
    console.print(report_table(loaded))
    console.print(f"wrote {', '.join(str(p) for p in _write_report(loaded))}")


@sweep.command(context_settings=CONTEXT)
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--refit", is_flag=True, help="Train the best configuration on train+validation (DIR/refit).")
@click.option("--json", "as_json", is_flag=True, help="Print the best trial as one JSON object.")
@handle_errors
def best(folder, refit, as_json):
    """The best trial of the sweep in DIR, and how to train it again."""
    from rich.console import Console

    from dltrain.cli.progress import format_value
    from dltrain.sweep import report as reports

    loaded = reports.load(folder)
    top = loaded.best
    if top is None:
        raise click.ClickException(f"no trial of {folder} has a score yet")
    if as_json and not refit:
        click.echo(json.dumps(top))
        return
    console = Console(highlight=False)
    console.print(f"best: trial {top['trial']}  {loaded.metric} {format_value(top['score'])} at epoch "
                  f"{top['best_epoch']} of {top['epochs']}  ({top['run']})", markup=False)
    for key, value in top["params"].items():
        console.print(f"  {key} = {value!r}", markup=False)
    if not refit:
        console.print(f"next: dltrain evaluate {top['run']}   |   dltrain sweep best {folder} --refit")
        return
    from dltrain import api
    from dltrain.cli.training import _print_fit_summary
    from dltrain.cli.progress import ProgressDisplay

    base, overrides, run_dir = reports.refit_plan(loaded)
    console.print(f"refit: dltrain fit {base} " + " ".join(f"--set '{o}'" for o in overrides)
                  + f" --run-dir {run_dir} --overwrite", markup=False)
    result = api.fit(base, overrides, run_dir=run_dir, overwrite=True,
                     callbacks=[ProgressDisplay(console, live=console.is_terminal)])
    _print_fit_summary(console, result)


COMMANDS = [sweep]
