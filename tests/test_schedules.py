"""Learning-rate schedules against their formulas, and the rate the optimizer uses and logs."""
import math

import pytest

from dltrain import api
from dltrain.errors import ConfigError
from dltrain.registry import build, registry
from training_helpers import digits_config, metrics_rows


def schedule(**spec):
    return build("schedule", spec)


def test_exponential_decay():
    s = schedule(type="exponential_decay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == 0.1 and s(10) == pytest.approx(0.05) and s(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    stairs = schedule(type="exponential_decay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5,
                      staircase=True)
    assert stairs(9) == 0.1 and stairs(10) == pytest.approx(0.05)


def test_piecewise_constant():
    s = schedule(type="piecewise_constant", boundaries=[100, 200], values=[1.0, 0.5, 0.1])
    # Keras keeps values[0] while step <= boundaries[0] (issue 17, 6: it switched one step early)
    assert [s(0), s(99), s(100), s(101), s(200), s(201), s(10**6)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ConfigError, match="one more than boundaries"):
        schedule(type="piecewise_constant", boundaries=[100], values=[1.0])
    with pytest.raises(ConfigError, match="increase"):
        schedule(type="piecewise_constant", boundaries=[200, 100], values=[1.0, 0.5, 0.1])


def test_cosine_decay_with_warmup():
    s = schedule(type="cosine_decay", initial_learning_rate=0.0, decay_steps=100, alpha=0.1,
                 warmup_target=1.0, warmup_steps=10)
    assert s(0) == 0.0 and s(5) == pytest.approx(0.5) and s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    plain = schedule(type="cosine_decay", initial_learning_rate=2.0, decay_steps=4)
    assert [plain(i) for i in range(5)] == pytest.approx([2.0, 2 * (0.5 + 0.5 * math.cos(math.pi / 4)), 1.0,
                                                          2 * (0.5 + 0.5 * math.cos(3 * math.pi / 4)), 0.0])


def test_polynomial_decay():
    s = schedule(type="polynomial_decay", initial_learning_rate=1.0, decay_steps=10, end_learning_rate=0.0,
                 power=2.0)
    assert s(0) == 1.0 and s(5) == pytest.approx(0.25) and s(10) == 0.0 and s(20) == 0.0
    cyc = schedule(type="polynomial_decay", initial_learning_rate=1.0, decay_steps=10,
                   end_learning_rate=0.0, cycle=True)
    assert cyc(15) == pytest.approx(0.25)      # decay_steps grows to 20: 1 - 15/20


def test_one_cycle_goes_up_then_down():
    s = schedule(type="one_cycle", max_learning_rate=1.0, total_steps=101, pct_start=0.3)
    values = [s(i) for i in range(101)]
    peak = values.index(max(values))
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1.0, abs=1e-3)
    assert 28 <= peak <= 30
    assert values[-1] == pytest.approx(1 / 25 / 1e4)
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))


def test_every_schedule_is_registered_and_documented():
    names = registry("schedule").names()
    assert set(names) >= {"exponential_decay", "piecewise_constant", "cosine_decay", "polynomial_decay",
                          "one_cycle"}
    for name in names:
        assert "Args:" in registry("schedule").get(name).__doc__


def test_optimizer_follows_the_schedule_and_metrics_log_it(tmp_path):
    spec = {"type": "exponential_decay", "initial_learning_rate": 0.01, "decay_steps": 5, "decay_rate": 0.5}
    optimizer = build("optimizer", {"type": "sgd", "learning_rate": spec})
    optimizer.iterations = 10
    assert optimizer.current_learning_rate == pytest.approx(0.0025)
    result = api.fit(digits_config(tmp_path, epochs=3, optimizer={"type": "sgd", "learning_rate": spec}),
                     run_dir=tmp_path / "run")
    per_epoch = result.trainer.step // 3
    logged = [float(row["lr"]) for row in metrics_rows(tmp_path / "run")]
    assert logged == pytest.approx([0.01 * 0.5 ** (e * per_epoch / 5) for e in range(3)])


def test_unknown_schedule_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'cosine_decay'"):
        build("optimizer", {"type": "adam", "learning_rate": {"type": "cosine_decy",
                                                               "initial_learning_rate": 0.1, "decay_steps": 5}})
