"""Hyperparameter sweeps: a search space over `--set` paths, methods that choose trials, a
journal that makes a sweep resumable, a runner that trains each trial as its own `dltrain fit`
process, and reports.

spec.py (the sweep file) -> space.py (distributions) -> methods.py (which trial next) ->
runner.py (processes, journal.py) -> report.py (ranked table, plots, best).
"""
