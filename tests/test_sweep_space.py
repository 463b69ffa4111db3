"""The search space, the sweep file's checks, and the methods' decisions (no training here)."""
import math

import numpy as np
import pytest
from conftest import CONFIGS

from dltrain.errors import ConfigError, ConfigErrors
from dltrain.sweep import methods, space, spec

WHERE = "sweep.parameters[x] (s.yaml:3)"


def dist(kind, args, path="p"):
    return space.check(path, {kind: args}, WHERE)


@pytest.mark.parametrize("kind,args", [("uniform", [0.0, 0.5]), ("log_uniform", [1e-4, 1e-1]),
                                       ("int_uniform", [2, 5]), ("quantized", [0.1, 0.9, 0.2]),
                                       ("choice", [1, "a", None]), ("grid", [3, 4])])
def test_samples_stay_in_their_distribution(kind, args):
    d = dist(kind, args)
    values = [d.sample(np.random.default_rng(i)) for i in range(200)]
    if kind in ("choice", "grid"):
        assert set(map(str, values)) == set(map(str, args))
        return
    assert all(args[0] <= v <= args[1] for v in values)
    if kind == "int_uniform":
        assert all(isinstance(v, int) for v in values) and set(values) == {2, 3, 4, 5}
    if kind == "quantized":
        assert all(abs((v - 0.1) / 0.2 - round((v - 0.1) / 0.2)) < 1e-9 for v in values)
        assert {round(v, 6) for v in values} == {0.1, 0.3, 0.5, 0.7, 0.9}
    if kind == "log_uniform":      # uniform in log: about half the draws below the geometric mean
        below = sum(v < math.sqrt(1e-4 * 1e-1) for v in values)
        assert 70 < below < 130


def test_integer_quantized_values_are_integers():
    d = dist("quantized", [16, 128, 16])
    assert {d.sample(np.random.default_rng(i)) for i in range(100)} <= set(range(16, 129, 16))
    assert all(isinstance(d.sample(np.random.default_rng(i)), int) for i in range(10))


@pytest.mark.parametrize("spec_value,fragment", [
    ({"uniform": [0.5, 0.1]}, "must be below high"),
    ({"log_uniform": [0.0, 1.0]}, "positive low bound"),
    ({"int_uniform": [1.5, 3]}, "must be integers"),
    ({"quantized": [0, 1]}, "needs 3 numbers"),
    ({"quantized": [0, 1, -0.1]}, "step must be positive"),
    ({"choice": []}, "at least one value"),
    ({"normal": [0, 1]}, "unknown distribution 'normal'"),
    ({"uniform": 3}, "takes a list"),
    ([1, 2], "is not a distribution"),
])
def test_bad_distributions_are_located_errors(spec_value, fragment):
    with pytest.raises(ConfigError) as caught:
        space.check("p", spec_value, WHERE)
    assert fragment in caught.value.message and caught.value.where == WHERE


def test_grid_lists_every_combination_first_parameter_slowest():
    s = space.Space([dist("grid", [1, 2], "a"), dist("choice", ["x", "y", "z"], "b")])
    combos = s.grid()
    assert len(combos) == s.grid_size() == 6
    assert combos[0] == {"a": 1, "b": "x"} and combos[3] == {"a": 2, "b": "x"}


def test_samples_are_seeded_distinct_and_stop_when_the_space_is_exhausted():
    s = space.Space([dist("log_uniform", [1e-4, 1e-1], "lr"), dist("choice", [32, 64], "units")])
    assert s.samples(10, seed=3) == s.samples(10, seed=3)
    assert s.samples(10, seed=3) != s.samples(10, seed=4)
    assert len({space.trial_id(p) for p in s.samples(10, seed=3)}) == 10
    small = space.Space([dist("choice", [1, 2, 3], "a")])
    assert sorted(p["a"] for p in small.samples(10, seed=0)) == [1, 2, 3]


def test_trial_id_is_a_hash_of_the_values_not_of_their_order():
    assert space.trial_id({"a": 1, "b": 0.5}) == space.trial_id({"b": 0.5, "a": 1})
    assert space.trial_id({"a": 1, "b": 0.5}) != space.trial_id({"a": 1, "b": 0.50001})
    assert space.override("model.layers[1].units", 64) == "model.layers[1].units=64"
    assert space.override("optimizer.learning_rate", 0.1 + 0.2) == "optimizer.learning_rate=0.30000000000000004"


# -- the sweep file -----------------------------------------------------------------------------

def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text.replace("BASE", str(CONFIGS / "digits_mlp.yaml")))
    return path


def test_the_example_sweep_file_loads():
    loaded = spec.load(CONFIGS / "sweeps" / "digits_lr.yaml")
    assert (loaded.method, loaded.metric, loaded.mode, loaded.trials, loaded.parallel) == \
        ("asha", "val_accuracy", "max", 24, 2)
    assert loaded.space.paths == ["optimizer.learning_rate", "model.layers[1].units", "model.layers[2].rate"]
    assert methods.budgets(loaded.min_epochs, loaded.max_epochs, loaded.eta) == [3, 9, 30]


def test_every_problem_of_a_sweep_file_is_reported_at_once_with_its_line(tmp_path):
    path = write(tmp_path, """base: BASE
extra: 1
sweep:
  method: ashaa
  metric: val_acuracy
  trials: 0
  paralel: 2
  parameters:
    optimizer.learnin_rate: {log_uniform: [1.0e-4, 1.0e-1]}
    model.layers[1].units: {choice: [0, 64]}
    model.layers[2].rate: {uniform: [0.5, 0.1]}
    model.layers[9].rate: {uniform: [0.1, 0.5]}
    training.batch_size: {normal: [1, 2]}
""")
    with pytest.raises(ConfigErrors) as caught:
        spec.load(path)
    text = str(caught.value)
    expected = [("unknown key 'extra'", ":2"), ("did you mean 'parallel'", ":7"), ("did you mean 'asha'", ":4"),
                ("trials must be an integer >= 1", ":6"), ("must be below high", ":11"),
                ("unknown distribution 'normal'", ":13"), ("did you mean 'val_accuracy'", ":5"),
                ("model.layers[9] does not exist", ":12"), ("units=0 is out of range", ":10"),
                ("did you mean 'learning_rate'", ":9")]
    assert len(caught.value.errors) == len(expected)
    for fragment, line in expected:
        error = next(e for e in caught.value.errors if fragment in str(e))
        assert f"s.yaml{line})" in error.where, (fragment, error.where)
    assert "sweep.parameters[\"model.layers[1].units\"]" in text


def test_grid_needs_listed_values_and_asha_owns_the_epochs(tmp_path):
    path = write(tmp_path, """base: BASE
sweep:
  method: grid
  metric: val_loss
  parameters:
    model.layers[2].rate: {uniform: [0.0, 0.5]}
""")
    with pytest.raises(ConfigError, match="grid search needs listed values"):
        spec.load(path)
    path = write(tmp_path, """base: BASE
sweep:
  method: asha
  trials: 3
  parameters:
    training.epochs: {choice: [3, 5]}
""")
    with pytest.raises(ConfigError, match="asha sets training.epochs itself"):
        spec.load(path)


def test_a_missing_base_and_a_missing_trials_are_errors(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: nothere.yaml\nsweep:\n  method: random\n  parameters:\n"
                    "    optimizer.learning_rate: {uniform: [0.1, 0.2]}\n")
    with pytest.raises(ConfigErrors) as caught:
        spec.load(path)
    messages = [e.message for e in caught.value.errors]
    assert any("does not exist" in m for m in messages) and any("needs `trials:`" in m for m in messages)


def test_mode_defaults_from_the_metric(tmp_path):
    text = "base: BASE\nsweep:\n  method: random\n  trials: 2\n  metric: METRIC\n  parameters:\n" \
           "    optimizer.learning_rate: {uniform: [0.001, 0.01]}\n"
    assert spec.load(write(tmp_path, text.replace("METRIC", "val_accuracy"))).mode == "max"
    assert spec.load(write(tmp_path, text.replace("METRIC", "val_loss"))).mode == "min"


# -- the methods' decisions ------------------------------------------------------------------------

def sort_max(score):
    return (1, 0.0) if score is None else (0, -score)


def drain(method, score_of):
    """Run a method to its end, telling each job's result at once; returns the jobs in order."""
    jobs = []
    while True:
        job = method.next_job()
        if job is None:
            return jobs
        assert job is not methods.WAIT
        jobs.append(job)
        method.tell(job, {"score": score_of(job)})


def test_asha_promotes_a_trial_once_it_is_in_the_top_third_of_its_rung():
    configs = [{"q": i} for i in range(9)]
    asha = methods.ASHA(configs, [1, 3, 9], 3, sort_max)
    jobs = drain(asha, lambda job: -job.params["q"])       # the first trials are the best
    assert sum(j.rung == 0 for j in jobs) == 9
    # after 3, 6 and 9 results the top third is q0; q0, q1; q0, q1, q2 — each promoted once
    assert [j.params["q"] for j in jobs if j.rung == 1] == [0, 1, 2]
    assert [j.params["q"] for j in jobs if j.rung == 2] == [0]
    assert [(j.params["q"], j.rung) for j in jobs][:5] == [(0, 0), (1, 0), (2, 0), (0, 1), (3, 0)]
    assert all(j.epochs == {0: 1, 1: 3, 2: 9}[j.rung] for j in jobs)


def test_asha_never_promotes_a_failed_trial():
    asha = methods.ASHA([{"q": i} for i in range(3)], [1, 3], 3, sort_max)
    jobs = drain(asha, lambda job: None if job.params["q"] == 2 else job.params["q"])
    assert [j.params["q"] for j in jobs if j.rung == 1] == [1]


def test_hyperband_brackets_halve_synchronously():
    shapes = methods.brackets(24, 3, 30, 3)
    assert [rungs for _, rungs in shapes] == [[3, 9, 30], [10, 30], [30]]
    assert sum(n for n, _ in shapes) == 24
    hyperband = methods.Hyperband([{"q": i} for i in range(24)], 3, 30, 3, sort_max)
    jobs = drain(hyperband, lambda job: job.params["q"])
    first = [j for j in jobs if j.bracket == 0]
    assert [j.epochs for j in first].count(3) == 13 and [j.epochs for j in first].count(9) == 4
    assert [j.params["q"] for j in first if j.epochs == 30] == [12]
    assert {j.epochs for j in jobs if j.bracket == 2} == {30}


def test_a_waiting_method_says_so_until_told():
    asha = methods.ASHA([{"q": 0}, {"q": 1}, {"q": 2}], [1, 3], 3, sort_max)
    jobs = [asha.next_job() for _ in range(3)]
    assert asha.next_job() is methods.WAIT
    for job in jobs:
        asha.tell(job, {"score": job.params["q"]})
    assert asha.next_job().rung == 1
