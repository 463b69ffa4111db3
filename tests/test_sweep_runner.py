"""The runner's loop with stand-in trial processes that finish in a random order: the jobs a
sweep runs, and its table, depend on the results only — not on which process finished first."""
import json
import random

import pytest
from conftest import CONFIGS

from dltrain.errors import ConfigError
from dltrain.sweep import journal, report, runner, spec, trial

SWEEP = """base: BASE
sweep:
  method: METHOD
  metric: val_accuracy
  trials: 12
  parallel: PARALLEL
  max_epochs: 9
  min_epochs: 1
  parameters:
    optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
    model.layers[1].units: {choice: [32, 64, 128]}
"""


def score(params, epoch):
    """A made-up learning curve: best near lr 0.01, better with more units and epochs."""
    import math

    return 1 / (1 + abs(math.log10(params["optimizer.learning_rate"]) + 2)) + params["model.layers[1].units"] / 1e3 \
        + epoch / 100


class FakeProcess:
    """Stands in for trial.Process: 'finishes' at random, writing the metrics.csv a run would."""

    order = random.Random(0)
    started_jobs = []

    def __init__(self, job, args, log_dir, keep_fds=()):
        self.job, self.started = job, 0.0
        self.run_dir = args[args.index("--run-dir") + 1]
        FakeProcess.started_jobs.append((job.trial, job.epochs))

    def poll(self):
        if FakeProcess.order.random() > 0.3:
            return None
        from pathlib import Path

        folder = Path(self.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        rows = ["epoch,loss,val_accuracy,lr,seconds"]
        rows += [f"{e},0.5,{score(self.job.params, e)!r},0.001,0.01" for e in range(1, self.job.epochs + 1)]
        (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
        (folder / "config.yaml").write_text("name: fake\n")
        return 0

    def interrupt(self):
        pass

    def stop(self):
        pass

    def message(self):
        return ""


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(trial, "Process", FakeProcess)
    monkeypatch.setattr(runner, "POLL", 0.0005)
    FakeProcess.started_jobs = []
    return FakeProcess


def sweep_file(tmp_path, method="asha", parallel=3):
    path = tmp_path / f"{method}.yaml"
    path.write_text(SWEEP.replace("BASE", str(CONFIGS / "digits_mlp.yaml")).replace("METHOD", method)
                    .replace("PARALLEL", str(parallel)))
    return spec.load(path)


def table(folder):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in report.load(folder).rows]


@pytest.mark.parametrize("method", ["asha", "hyperband", "random", "grid"])
def test_the_jobs_do_not_depend_on_the_order_processes_finish(tmp_path, fake, method):
    if method == "grid":
        text = SWEEP.replace("{log_uniform: [1.0e-4, 1.0e-1]}", "{grid: [0.001, 0.01]}")
        path = tmp_path / "grid.yaml"
        path.write_text(text.replace("BASE", str(CONFIGS / "digits_mlp.yaml")).replace("METHOD", "grid")
                        .replace("PARALLEL", "3"))
        sweep = spec.load(path)
    else:
        sweep = sweep_file(tmp_path, method)
    tables, jobs = [], []
    for seed in range(3):
        FakeProcess.order = random.Random(seed)
        FakeProcess.started_jobs = []
        records = runner.Runner(sweep, tmp_path / f"run{seed}").run()
        jobs.append([(r["trial"], r["epochs"]) for r in records])
        tables.append(table(tmp_path / f"run{seed}"))
    assert jobs[0] == jobs[1] == jobs[2]
    assert [{k: v for k, v in r.items() if k != "run"} for r in tables[0]] == \
        [{k: v for k, v in r.items() if k != "run"} for r in tables[2]]
    expected = {"grid": 6, "random": 12, "asha": 12, "hyperband": 12}[method]
    assert len(tables[0]) == expected
    if method in ("asha", "hyperband"):
        assert any(r["epochs"] == 9 for r in tables[0]) and any(r["epochs"] < 9 for r in tables[0])
        best = tables[0][0]
        assert best["epochs"] == 9 and best["status"] == "completed"


def test_a_continued_sweep_runs_only_what_is_missing(tmp_path, fake):
    sweep = sweep_file(tmp_path)
    folder = tmp_path / "sweep"
    full = runner.Runner(sweep, folder).run()
    # a journal cut after 10 results (and a line half written) continues to the same end
    lines = (folder / journal.NAME).read_text().splitlines(keepends=True)
    (folder / journal.NAME).write_text("".join(lines[:11]) + lines[11][:20])
    FakeProcess.started_jobs = []
    again = runner.Runner(sweep, folder).run()
    assert [(r["trial"], r["epochs"], r["score"]) for r in again] == [(r["trial"], r["epochs"], r["score"]) for r in full]
    assert len(FakeProcess.started_jobs) == len(full) - 10
    FakeProcess.started_jobs = []
    runner.Runner(sweep, folder).run()
    assert FakeProcess.started_jobs == []


def test_a_changed_sweep_is_refused_with_the_differences(tmp_path, fake):
    folder = tmp_path / "sweep"
    runner.Runner(sweep_file(tmp_path), folder).run()
    changed = (tmp_path / "asha.yaml").read_text().replace("[32, 64, 128]", "[32, 64]")
    (tmp_path / "asha.yaml").write_text(changed)
    with pytest.raises(ConfigError) as caught:
        runner.Runner(spec.load(tmp_path / "asha.yaml"), folder).run()
    assert "sweep.parameters" in caught.value.message and "[32, 64, 128] -> [32, 64]" in caught.value.message
    assert "--allow-change" in caught.value.fix
    runner.Runner(spec.load(tmp_path / "asha.yaml"), folder, allow_change=True).run()
    events = [json.loads(line)["event"] for line in (folder / journal.NAME).read_text().splitlines()]
    assert events[0] == "sweep" and events.count("change") == 1


def test_a_duplicate_trial_never_runs_twice(tmp_path, fake):
    text = SWEEP.replace("{log_uniform: [1.0e-4, 1.0e-1]}", "{choice: [0.001, 0.01]}").replace(
        "trials: 12", "trials: 12\n  seed: 1")
    path = tmp_path / "small.yaml"
    path.write_text(text.replace("BASE", str(CONFIGS / "digits_mlp.yaml")).replace("METHOD", "random")
                    .replace("PARALLEL", "2"))
    records = runner.Runner(spec.load(path), tmp_path / "sweep").run()
    assert len(records) == 6 == len({r["trial"] for r in records})      # 2 x 3 distinct values
    assert len(FakeProcess.started_jobs) == len(set(FakeProcess.started_jobs)) == 6


def test_ctrl_c_stops_every_running_trial_and_says_how_to_continue(tmp_path, fake, monkeypatch):
    from dltrain.errors import Interrupted

    stopped = []
    polls = iter(range(10 ** 6))

    def poll(self):
        if next(polls) == 40:
            raise KeyboardInterrupt
        return FakeProcess.finish(self) if FakeProcess.order.random() < 0.3 else None

    monkeypatch.setattr(FakeProcess, "finish", FakeProcess.poll, raising=False)
    monkeypatch.setattr(FakeProcess, "poll", poll)
    monkeypatch.setattr(FakeProcess, "interrupt", lambda self: stopped.append(self.job))
    sweep = sweep_file(tmp_path)
    with pytest.raises(Interrupted) as caught:
        runner.Runner(sweep, tmp_path / "elsewhere").run()
    assert caught.value.exit_code == 130 and len(stopped) == sweep.parallel
    assert f"dltrain sweep {sweep.file} --sweep-dir {tmp_path / 'elsewhere'}" in caught.value.fix


def test_tpe_asks_optuna_and_repeats_itself_whatever_the_finishing_order(tmp_path, fake):
    pytest.importorskip("optuna", reason="TPE needs the optuna extra: pip install 'dltrain[optuna]'")
    text = SWEEP.replace("method: METHOD", "method: tpe").replace("trials: 12", "trials: 14").replace(
        "model.layers[1].units: {choice: [32, 64, 128]}",
        "model.layers[1].units: {choice: [32, 64, 128]}\n    model.layers[2].rate: {quantized: [0.0, 0.5, 0.1]}")
    path = tmp_path / "tpe.yaml"
    path.write_text(text.replace("BASE", str(CONFIGS / "digits_mlp.yaml")).replace("PARALLEL", "2"))
    sweep = spec.load(path)
    runs = []
    for seed in range(2):
        FakeProcess.order = random.Random(seed)
        FakeProcess.started_jobs = []
        records = runner.Runner(sweep, tmp_path / f"run{seed}").run()
        runs.append([(r["trial"], r["score"]) for r in records])
    assert runs[0] == runs[1] and len(runs[0]) == 14
    rates = {r["params"]["model.layers[2].rate"] for r in records}
    assert rates <= {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    assert all(r["epochs"] == 9 for r in records)
    assert len(FakeProcess.started_jobs) == len({trial for trial, _ in runs[1]})   # a repeat is not rerun
