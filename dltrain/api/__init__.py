"""Every command as a Python function that returns data; the cli/ modules render what they return.

Library code never prints and never exits: it returns values and raises DltrainError. One module
per command group; every name is re-exported here, so ``from dltrain import api; api.fit(...)`` is
the way in (the cli looks each function up here, so a test may patch ``api.NAME``):

    training.py     fit (k-fold, resume, data-parallel ranks) and the trainer it builds
    loading.py      checkpoint_path, LoadedRun: a trained run restored from its checkpoint
    evaluation.py   evaluate, ensemble, report, export
    predictions.py  predict, Predictions, write_predictions
    inspection.py   check, summary, gradcheck, time_layers, catalogue, describe, schema
    data.py         inspect_data, datasets, download_dataset
    run_folders.py  runs, compare_runs, plot, sweep, sweep_check, sweep_report, sweep_refit_plan
    parallel.py     launched, world, launch_workers, job_rank, end_job
"""
import dltrain.catalogue  # noqa: F401  (every kind can be built by name from here)
from dltrain.api.data import datasets, download_dataset, inspect_data
from dltrain.api.evaluation import (  # noqa: F401  (the two private helpers: for tests)
    _ensemble_members, _evaluation_split, ensemble, ensemble_predict, evaluate, export, report)
from dltrain.api.inspection import LayerTimes, catalogue, check, describe, gradcheck, schema, summary, time_layers
from dltrain.api.loading import LoadedRun, checkpoint_path
from dltrain.api.parallel import end_job, job_rank, launch_workers, launched, world
from dltrain.api.predictions import Predictions, predict, write_predictions
from dltrain.api.run_folders import compare_runs, plot, runs, sweep, sweep_check, sweep_refit_plan, sweep_report
from dltrain.api.training import FitResult, fit

__all__ = ["FitResult", "LayerTimes", "LoadedRun", "Predictions", "catalogue", "check", "checkpoint_path",
           "compare_runs", "datasets", "describe", "download_dataset", "end_job", "ensemble", "ensemble_predict",
           "evaluate", "export", "fit", "gradcheck", "inspect_data", "job_rank", "launch_workers", "launched",
           "plot", "predict", "report", "runs", "schema", "summary", "sweep", "sweep_check", "sweep_refit_plan",
           "sweep_report", "time_layers", "world", "write_predictions"]
