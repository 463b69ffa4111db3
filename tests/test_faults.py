"""Crash safety and divergence: killed writes, full disks, damaged checkpoints, NaN and Inf."""
import resource
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from dltrain import api
from dltrain.errors import CheckpointError, DivergedError
from dltrain.training import checkpoint
from dltrain.training.files import TEMP_MARK
from training_helpers import digits_config, metrics_rows, same_state, state

DLTRAIN = [sys.executable, "-m", "dltrain"]


def run_cli(*args, **kwargs):
    return subprocess.run([*DLTRAIN, *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs)


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    target = tmp_path / "last.npz"
    script = textwrap.dedent(f"""
        import numpy as np
        from dltrain.training import checkpoint
        big = np.zeros((4_000_000,), np.float32)
        i = 0
        while True:
            big[:] = i
            checkpoint.save({str(target)!r}, {{"model/w": big}}, {{"epoch": i}})
            i += 1
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 30
        while not target.exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.25)               # well inside a later write (16 MB each)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    arrays, meta = checkpoint.load(target)
    assert np.all(arrays["model/w"] == meta["epoch"])


def test_file_size_limit_during_save_exits_5_and_keeps_the_previous_checkpoint(tmp_path):
    config = digits_config(tmp_path, epochs=1)
    run = tmp_path / "run"
    api.fit(config, run_dir=run)
    before = state(run)
    size = (run / "checkpoints" / "last.npz").stat().st_size

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    result = run_cli("fit", "--resume", run, "--set", "training.epochs=2", "--quiet", preexec_fn=limit)
    assert result.returncode == 5, result.stderr
    assert "CheckpointError" in result.stderr and "cannot write" in result.stderr
    assert "Traceback" not in result.stderr
    assert same_state(state(run), before)
    assert checkpoint.load(run / "checkpoints" / "last.npz")[1]["epoch"] == 1
    assert not list(run.rglob(f"*{TEMP_MARK}*"))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_is_named_and_resume_auto_falls_back(tmp_path, cli, damage):
    config = digits_config(tmp_path, epochs=2)
    run = tmp_path / "run"
    api.fit(config, run_dir=run)
    last = run / "checkpoints" / "last.npz"
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x40
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as caught:
        checkpoint.load(last)
    assert str(last) in caught.value.message
    result = cli("evaluate", run, "--checkpoint", "last")
    assert result.exit_code == 5 and "last.npz" in result.output.replace("\n", "")
    # auto: a warning naming last.npz, then the previous checkpoint (epoch 1) continues exactly
    result = cli("fit", config, "--resume", "auto", "--run-dir", run, "--quiet", "--set", "training.epochs=3")
    assert result.exit_code == 0, result.output
    output = result.output.replace("\n", "")
    assert "warning" in output and "last.npz" in output and "previous.npz" in output
    api.fit(digits_config(tmp_path, epochs=3, name="straight"), run_dir=tmp_path / "straight")
    assert metrics_rows(run) == metrics_rows(tmp_path / "straight")
    assert same_state(state(run), state(tmp_path / "straight"))


def test_stale_temporaries_are_cleaned_on_resume(tmp_path):
    config = digits_config(tmp_path, epochs=1)
    run = tmp_path / "run"
    api.fit(config, run_dir=run)
    stale = run / "checkpoints" / f".last.npz{TEMP_MARK}99999"
    stale.write_bytes(b"half a checkpoint")
    api.fit(None, ["training.epochs=2"], resume=run)
    assert not stale.exists()


def test_unwritable_run_directory_exits_5_before_training(tmp_path):
    config = digits_config(tmp_path, epochs=1)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("fit", config, "--run-dir", blocker / "run", "--quiet")
    assert result.returncode == 5, result.stderr
    assert "cannot write to run directory" in result.stderr


REGRESSION = ["flatten", {"type": "dense", "units": 24, "activation": "relu"}, {"type": "dense", "units": 1}]


@pytest.mark.parametrize("optimizer, named", [("sgd", "output of layer 'dense_2'"),
                                              ("adam", "parameters of layer 'dense_1'")])
def test_huge_learning_rate_exits_4_naming_batch_and_layer(tmp_path, optimizer, named):
    config = digits_config(tmp_path, epochs=3, optimizer={"type": optimizer, "learning_rate": 1e6},
                           layers=REGRESSION)
    result = run_cli("fit", config, "--run-dir", tmp_path / "run", "--quiet",
                     "--set", "loss=mse", "--set", "metrics=[mae]",
                     # the non-finite path itself: the finite-explosion limit would stop it first
                     "--set", "training.divergence_factor=null")
    assert result.returncode == 4, result.stderr
    assert "DivergedError" in result.stderr and "Traceback" not in result.stderr
    text = " ".join(result.stderr.split())
    assert "at epoch 1, batch " in text and named in text, text
    assert not list((tmp_path / "run" / "checkpoints").glob("*.npz"))


def test_overflowed_optimizer_slot_is_never_checkpointed(tmp_path):
    """rmsprop's velocity overflows to inf while the parameters stay finite: exit 4 at the save."""
    config = digits_config(tmp_path, epochs=3, optimizer={"type": "rmsprop", "learning_rate": 1e6},
                           layers=REGRESSION)
    with pytest.raises(DivergedError, match="velocity holds NaN or Inf after epoch 1"):
        api.fit(config, ["loss=mse", "metrics=[mae]", "training.divergence_factor=null"],
                run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "last.npz").exists()


def test_a_non_finite_checkpoint_is_never_written(tmp_path):
    result = api.fit(digits_config(tmp_path, epochs=1), run_dir=tmp_path / "run")
    trainer = result.trainer
    before = (tmp_path / "run" / "checkpoints" / "last.npz").read_bytes()
    next(iter(trainer.model.parameters()))[1][0, 0] = np.inf
    with pytest.raises(DivergedError, match="refusing to write last.npz"):
        trainer.save_checkpoint("last.npz", 2)
    assert (tmp_path / "run" / "checkpoints" / "last.npz").read_bytes() == before


def test_second_signal_stops_at_once_without_damage(tmp_path):
    config = digits_config(tmp_path, epochs=400)
    run = tmp_path / "run"
    process = subprocess.Popen([*DLTRAIN, "fit", str(config), "--run-dir", str(run), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("epoch 1/")
    # the epoch line is shown before last.npz is written: wait for the file, or the two signals
    # can land inside the first save (which then, correctly, leaves nothing behind)
    saved = run / "checkpoints" / "last.npz"
    deadline = time.monotonic() + 60
    while not saved.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert checkpoint.load(run / "checkpoints" / "last.npz")[1]["epoch"] >= 1
    assert not list(run.rglob(f"*{TEMP_MARK}*"))
