"""Commands: sweep (run, check, report, best), over dltrain.api's sweep functions."""
import click

from dltrain.cli import render
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
    from dltrain import api

    console = render.console()
    sweep_spec = api.sweep_check(sweep_file)
    folder = sweep_dir or sweep_spec.default_dir
    console.print(f"sweep {sweep_spec.name}: {sweep_spec.method}, {sweep_spec.describe()}, parallel "
                  f"{sweep_spec.parallel}, metric {sweep_spec.metric} ({sweep_spec.mode}) -> {folder}", markup=False)
    live = _LiveTable(console, sweep_spec, live=console.is_terminal and not quiet)
    with live:
        report, written = api.sweep(sweep_file, folder, allow_change, on_event=live.event)
    console.print(report_table(report, limit=10))
    console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False)
    console.print(f"next: dltrain sweep report {folder}   |   dltrain sweep best {folder} --refit", markup=False)


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
        self.rows[job.trial] = (job, record, kind)
        if kind != "start":
            self.done += 1
        if self.live is not None:
            self.live.update(self._table())
        elif kind != "start":
            score = render.format_value(record["score"]) if record["score"] is not None else "-"
            note = f"  {record['message'].splitlines()[-1]}" if record.get("message") else ""
            self.console.print(f"{'cached' if kind == 'cached' else 'done':>6} {job.trial} "
                               f"{_params_text(job.params)}  {job.epochs} epochs  {self.sweep.metric} {score}  "
                               f"{record['status']}{note}", markup=False)

    def _table(self):
        table = render.table(f"{self.sweep.name}: {self.done} jobs done", ("trial", render.NAME),
                             *[(c, render.RIGHT) for c in (*self.sweep.space.paths, "epochs", self.sweep.metric)],
                             "status")
        for job, record, kind in list(self.rows.values())[-20:]:
            score = "" if record is None or record["score"] is None else render.format_value(record["score"])
            table.add_row(job.trial, *[render.format_value(job.params.get(p)) for p in self.sweep.space.paths],
                          str(job.epochs), score, "running" if record is None else record["status"])
        return table


def _params_text(params):
    return " ".join(f"{k}={render.format_value(v)}" for k, v in params.items())


def report_table(report, limit=None):
    """A rich Table of a sweep's ranked trials."""
    shown = report.rows[:limit] if limit else report.rows
    more = f" (best {len(shown)} of {len(report.rows)})" if len(shown) < len(report.rows) else ""
    columns = [(c, render.NAME if c == "trial" else {} if c in ("status", "note") else render.RIGHT)
               for c in report.columns()[:-1]]
    table = render.table(f"{report.name}: {report.method}, {report.metric} ({report.mode}){more}", *columns)
    for row in report.table()[:len(shown)]:
        table.add_row(*["" if v is None else render.format_value(v) for v in row[:-1]])
    return table


@sweep.command(context_settings=CONTEXT)
@click.argument("sweep_file", metavar="SWEEP.yaml", type=click.Path(dir_okay=False))
@handle_errors
def check(sweep_file):
    """Check SWEEP.yaml: its settings, every distribution, the base config with each parameter at
    its extremes; every problem is reported at once. Trains nothing."""
    import json

    from dltrain import api

    sweep_spec = api.sweep_check(sweep_file)
    console = render.console()
    console.print(f"{sweep_spec.method}: {sweep_spec.describe()}, parallel {sweep_spec.parallel}, "
                  f"metric {sweep_spec.metric} ({sweep_spec.mode}), base {sweep_spec.base}", markup=False)
    for distribution in sweep_spec.space.distributions:
        console.print(f"  {distribution.path}: {json.dumps(distribution.spec())}", markup=False)
    console.print(f"ok: {sweep_file} is valid", markup=False)


@sweep.command(context_settings=CONTEXT)
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the ranked trials as one JSON object.")
@handle_errors
def report(folder, as_json):
    """The ranked trials of the sweep in DIR; writes DIR/report/trials.csv, trials.json, plots."""
    from dltrain import api

    loaded, written = api.sweep_report(folder)
    if as_json:
        click.echo(render.json_text(loaded.as_dict(), indent=None))
        return
    console = render.console()
    console.print(report_table(loaded))
    console.print(f"wrote {', '.join(str(p) for p in written)}", markup=False)


@sweep.command(context_settings=CONTEXT)
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--refit", is_flag=True, help="Train the best configuration on train+validation (DIR/refit).")
@click.option("--json", "as_json", is_flag=True, help="Print the best trial as one JSON object.")
@handle_errors
def best(folder, refit, as_json):
    """The best trial of the sweep in DIR, and how to train it again."""
    from dltrain import api

    loaded, _ = api.sweep_report(folder, write=False)
    top = loaded.best
    if top is None:
        from dltrain.errors import ConfigError

        raise ConfigError(f"no trial of {folder} has a score yet", fix="run the sweep first: dltrain sweep SWEEP.yaml")
    if as_json and not refit:
        click.echo(render.json_text(top, indent=None))
        return
    console = render.console()
    console.print(f"best: trial {top['trial']}  {loaded.metric} {render.format_value(top['score'])} at epoch "
                  f"{top['best_epoch']} of {top['epochs']}  ({top['run']})", markup=False)
    for key, value in top["params"].items():
        console.print(f"  {key} = {value!r}", markup=False)
    if not refit:
        console.print(f"next: dltrain evaluate {top['run']}   |   dltrain sweep best {folder} --refit", markup=False)
        return
    from dltrain.cli.progress import ProgressDisplay
    from dltrain.cli.training import _print_fit_summary

    base, overrides, run_dir = api.sweep_refit_plan(folder)
    console.print(f"refit: dltrain fit {base} " + " ".join(f"--set '{o}'" for o in overrides)
                  + f" --run-dir {run_dir} --overwrite", markup=False)
    result = api.fit(base, overrides, run_dir=run_dir, overwrite=True,
                     callbacks=[ProgressDisplay(console, live=console.is_terminal)])
    _print_fit_summary(console, result)


COMMANDS = [sweep]
