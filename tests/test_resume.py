"""Exact resume: 4 epochs straight == 2 + resume + 2 == SIGTERM mid-epoch 2 + resume, bit for bit;
dropping any one piece of saved state breaks the equality."""
import os
import signal
import subprocess
import sys
import time

import pytest

from dltrain import api
from dltrain.errors import ConfigError, Interrupted
from dltrain.training import resume as resuming
from dltrain.training.callbacks import Callback
from training_helpers import digits_config, metrics_rows, same_state, state

CALLBACKS = ({"type": "early_stopping", "monitor": "val_loss", "patience": 3},
             {"type": "model_checkpoint", "monitor": "val_accuracy"},
             {"type": "reduce_lr_on_plateau", "monitor": "val_accuracy", "patience": 0, "factor": 0.5})


class KillAt(Callback):
    """Sends this process a signal after a given batch of a given epoch."""

    def __init__(self, epoch, batch, signum=signal.SIGTERM):
        self.at, self.epoch, self.signum = (epoch, batch), None, signum

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    folder = tmp_path_factory.mktemp("straight")
    config = digits_config(folder, epochs=4)
    api.fit(config, run_dir=folder / "run")
    return folder / "run"


def assert_same_run(run, reference):
    assert metrics_rows(run) == metrics_rows(reference)
    assert same_state(state(run), state(reference))


def test_two_plus_two_equals_four(tmp_path, straight):
    config = digits_config(tmp_path, epochs=2)
    api.fit(config, run_dir=tmp_path / "run")
    api.fit(None, ["training.epochs=4"], resume=tmp_path / "run")
    assert_same_run(tmp_path / "run", straight)


def test_sigterm_mid_epoch_then_resume_equals_straight(tmp_path, straight):
    config = digits_config(tmp_path, epochs=4)
    with pytest.raises(Interrupted) as caught:
        api.fit(config, run_dir=tmp_path / "run", callbacks=[KillAt(2, 5)])
    assert "in epoch 2 after batch 6" in caught.value.message
    assert "--resume" in caught.value.fix
    assert len(metrics_rows(tmp_path / "run")) == 1
    api.fit(None, resume=tmp_path / "run")
    assert_same_run(tmp_path / "run", straight)


def test_callbacks_state_resumes_exactly(tmp_path):
    straight = digits_config(tmp_path, epochs=5, callbacks=CALLBACKS, name="cb",
                             optimizer={"type": "nadam", "learning_rate": 0.004})
    api.fit(straight, run_dir=tmp_path / "straight")
    api.fit(straight, ["training.epochs=3"], run_dir=tmp_path / "resumed")
    with pytest.raises(Interrupted):
        api.fit(None, ["training.epochs=5"], resume=tmp_path / "resumed",
                callbacks=[KillAt(4, 2, signal.SIGINT)])
    api.fit(straight, resume="auto", run_dir=tmp_path / "resumed")
    assert_same_run(tmp_path / "resumed", tmp_path / "straight")
    assert same_state(state(tmp_path / "resumed", "best.npz"), state(tmp_path / "straight", "best.npz"))


def _drop_random(arrays, meta):
    meta["random"].pop("layer:dropout_1")


def _drop_step(arrays, meta):
    arrays["optimizer/iterations"] = arrays["optimizer/iterations"] * 0


def _drop_slots(arrays, meta):
    for key in [k for k in arrays if k.endswith("/momentum")]:
        arrays[key] = arrays[key] * 0


def _drop_position(arrays, meta):
    meta["position"] = None


def _drop_running_sums(arrays, meta):
    meta["position"]["total"] = 0.0


@pytest.mark.parametrize("drop", [_drop_random, _drop_step, _drop_slots, _drop_position, _drop_running_sums])
def test_dropping_any_saved_state_breaks_exactness(tmp_path, straight, monkeypatch, drop):
    """The equality above is not luck: each piece of the checkpoint is needed."""
    config = digits_config(tmp_path, epochs=4)
    with pytest.raises(Interrupted):
        api.fit(config, run_dir=tmp_path / "run", callbacks=[KillAt(2, 5)])
    restore = resuming.restore

    def restore_without(trainer, arrays, meta):
        drop(arrays, meta)
        restore(trainer, arrays, meta)

    monkeypatch.setattr(resuming, "restore", restore_without)
    api.fit(None, resume=tmp_path / "run")
    assert metrics_rows(tmp_path / "run") != metrics_rows(straight) \
        or not same_state(state(tmp_path / "run"), state(straight))


def test_adam_step_count_matters_with_a_constant_rate(tmp_path, monkeypatch):
    """Adam's bias correction reads the step count even when the rate has no schedule."""
    adam = {"type": "adam", "learning_rate": 0.003}
    api.fit(digits_config(tmp_path, epochs=3, optimizer=adam), run_dir=tmp_path / "straight")
    api.fit(digits_config(tmp_path, epochs=2, optimizer=adam), run_dir=tmp_path / "run")
    restore = resuming.restore

    def restore_without(trainer, arrays, meta):
        _drop_step(arrays, meta)
        restore(trainer, arrays, meta)

    monkeypatch.setattr(resuming, "restore", restore_without)
    api.fit(None, ["training.epochs=3"], resume=tmp_path / "run")
    assert not same_state(state(tmp_path / "run"), state(tmp_path / "straight"))


def test_changed_config_is_refused_with_a_diff(tmp_path, cli):
    config = digits_config(tmp_path, epochs=1)
    api.fit(config, run_dir=tmp_path / "run")
    with pytest.raises(ConfigError) as caught:
        api.fit(None, ["optimizer.beta_1=0.5", "training.batch_size=32"], resume=tmp_path / "run")
    assert "optimizer.beta_1: (not set) -> 0.5" in caught.value.message
    assert "training.batch_size: 64 -> 32" in caught.value.message
    result = cli("fit", "--resume", tmp_path / "run", "--set", "optimizer.beta_1=0.5", "--quiet")
    assert result.exit_code == 2 and "allow-config-change" in result.output
    result = cli("fit", "--resume", tmp_path / "run", "--set", "optimizer.beta_1=0.5",
                 "--set", "training.epochs=2", "--allow-config-change", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(metrics_rows(tmp_path / "run")) == 2


def test_resume_auto_starts_fresh_without_a_checkpoint(tmp_path, cli):
    config = digits_config(tmp_path, epochs=1)
    result = cli("fit", config, "--resume", "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    result = cli("fit", config, "--resume", "auto", "--run-dir", tmp_path / "run", "--quiet",
                 "--set", "training.epochs=2")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in metrics_rows(tmp_path / "run")] == ["1", "2"]


def test_real_sigterm_in_a_subprocess_then_resume(tmp_path, straight):
    """A signal at an arbitrary moment: exit 130 with the resume command; the resumed run equals
    the straight one wherever the signal landed."""
    config = digits_config(tmp_path, epochs=4)
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "dltrain", "fit", str(config), "--run-dir", str(run),
                                "--quiet", "--set", "training.epochs=400"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("epoch 1/")
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"dltrain fit --resume {run}" in err.replace("\n", "")
    done = len(metrics_rows(run))
    assert 1 <= done < 400
    result = subprocess.run([sys.executable, "-m", "dltrain", "fit", "--resume", str(run), "--quiet",
                             "--set", f"training.epochs={max(done + 1, 4)}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    if done < 4:        # the first four epochs are the straight run's, wherever the signal landed
        assert metrics_rows(run)[:4] == metrics_rows(straight)
