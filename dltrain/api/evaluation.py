"""Scoring trained runs: evaluate one, an ensemble of several, the per-class report; and export,
which writes a trained run in another format."""
from dltrain import device as devices
from dltrain.api.loading import LoadedRun
from dltrain.api.predictions import Predictions, predict
from dltrain.api.training import _check_labels
from dltrain.data import prediction_inputs
from dltrain.errors import ConfigError


def evaluate(run, which="best", data=None, device=None):
    """{metric: value} of a run on its config's test split, or on ``data`` (a file or a spec)."""
    from dltrain.data import kfold

    if kfold.fold_runs(run):                            # a k-fold run: every fold, and the ensemble
        return kfold.evaluate_folds(run, which, data, LoadedRun)
    loaded = LoadedRun(run, which)
    experiment = loaded.experiment
    device = devices.choose(device, experiment.config.get("device"))
    split = _evaluation_split(loaded, data)
    _check_labels(experiment, {"test": split})
    return prediction_inputs.scores(devices.place(loaded.trainer(), device).evaluate(split), loaded.path,
                                    loaded.meta)


def export(run, format="onnx", output=None, which="best", text_input="strings"):
    """Write a trained run as ONNX or safetensors (dltrain/export); return an ``Exported`` (the
    file written, and for ONNX what its input is: a text model's raw strings, or with
    ``text_input="ids"`` the token ids)."""
    from dltrain.export import export as export_run

    return export_run(LoadedRun(run, which), format, output, text_input)


def _evaluation_split(loaded, data=None):
    """What ``evaluate`` scores a run on: ``data`` (a file or a source spec), else its test split."""
    if data is not None:
        return prediction_inputs.evaluation_split(data, loaded.experiment)
    if loaded.experiment.sources.get("test") is None:
        raise ConfigError(f"the config of {loaded.run_dir} has no test split",
                          fix="pass --data FILE, or add `test: {split: 0.2}` under data.")
    return loaded.experiment.load_data()["test"]


def _ensemble_members(runs, which):
    from dltrain import ensemble as ensembles

    members = [LoadedRun(run, which) for run in ensembles.member_runs(runs)]
    ensembles.check(members)
    return members


def ensemble(runs, data=None, which="best"):
    """Scores of several runs' averaged outputs (dltrain/ensemble.py): an EnsembleScores. A
    k-fold run directory stands for its folds."""
    from dltrain import ensemble as ensembles

    members = _ensemble_members(runs, which)
    return ensembles.evaluate(members, _evaluation_split(members[0], data), data is not None)


def ensemble_predict(runs, files, which="best"):
    """Predictions of several runs' averaged outputs for every sample of the files."""
    from dltrain import ensemble as ensembles

    parts = [predict(member.path, files) for member in _ensemble_members(runs, which)]
    return Predictions(ensembles.mean_outputs([p.outputs for p in parts]), parts[0].sources,
                       parts[0].class_names, parts[0].classifier)


def report(run, which="best", data=None, image=True):
    """(per-class or residual report, path of its PNG or None) of a run (dltrain/report.py)."""
    from dltrain import report as reports

    loaded = LoadedRun(run, which)
    found = reports.report(loaded, _evaluation_split(loaded, data))
    name = "confusion_matrix.png" if found.kind == "classification" else "predicted_vs_true.png"
    return found, (reports.draw(found, loaded.run_dir / name) if image else None)
