"""Runs and sweeps on disk: list and compare run directories, plot their curves, run a sweep
and report on it (dltrain.runs, dltrain.plot, dltrain.sweep)."""
from pathlib import Path


def plot(runs, output=None, terminal=False):
    """Learning curves of runs: (path of the image written, None), or (None, text) without
    matplotlib or with ``terminal``."""
    from dltrain.plot import plot as draw

    return draw(runs, output, terminal)


def sweep_check(sweep_file):
    """The checked sweep.spec.Sweep of a sweep file; ConfigErrors listing every problem."""
    from dltrain.sweep import spec

    return spec.load(sweep_file)


def sweep(sweep_file, sweep_dir=None, allow_change=False, on_event=None):
    """Run (or continue) a sweep; returns (report.Report, files written: table, JSON, plots).
    ``on_event(kind, job, record)`` hears of each job ("start", "result", "cached")."""
    from dltrain.sweep import runner, spec

    loaded = spec.load(sweep_file)
    folder = Path(sweep_dir) if sweep_dir else loaded.default_dir
    runner.Runner(loaded, folder, allow_change, on_event=on_event).run()
    return sweep_report(folder)


def sweep_report(sweep_dir, write=True):
    """(report.Report, files written): DIR/report/trials.csv, trials.json and, with matplotlib,
    one effect plot per parameter and a parallel-coordinates plot."""
    from dltrain.plot import have_matplotlib
    from dltrain.sweep import report

    loaded = report.load(sweep_dir)
    if not write:
        return loaded, []
    folder = loaded.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written = [loaded.write_csv(folder / "trials.csv"), loaded.write_json(folder / "trials.json")]
    if have_matplotlib() and loaded.best is not None:
        from dltrain.sweep import plots

        written += plots.effects(loaded, folder) + [plots.parallel_coordinates(loaded, folder)]
    return loaded, written


def sweep_refit_plan(sweep_dir):
    """(base config, overrides, run directory) that train the sweep's best values on train +
    validation (see sweep.report.refit_plan)."""
    from dltrain.sweep import report

    return report.refit_plan(report.load(sweep_dir))


def runs(folder="runs"):
    """[runs.Run] of every run directory under ``folder``."""
    from dltrain import runs as on_disk

    return on_disk.list_runs(folder)


def compare_runs(paths):
    """runs.Comparison: the config differences and final metrics of two runs or more."""
    from dltrain import runs as on_disk

    return on_disk.compare(paths)
