"""Run directories are safe and resume is total (issue 14, deliverables 1, 2 and 6): --overwrite and
--resume act only on a dltrain run or an empty folder; a lock keeps a second fit off a run
directory; a finished or early-stopped run has nothing to do; SIGTERM in any phase of fit exits
130 with run.json saying "interrupted"."""
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from training_helpers import digits_config, metrics_rows

DLTRAIN = [sys.executable, "-m", "dltrain"]


def run_cli(*args, timeout=300):
    return subprocess.run([*DLTRAIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("flag", [["--resume", "auto"], ["--overwrite"]])
def test_someones_own_folder_is_never_emptied(tmp_path, flag):
    # old main: both deleted the files and trained there (exit 0)
    victim = tmp_path / "victim"
    (victim / "notes").mkdir(parents=True)
    (victim / "thesis.tex").write_text("years of work")
    (victim / "notes" / "a.txt").write_text("more")
    result = run_cli("fit", digits_config(tmp_path, epochs=1), "--run-dir", victim, *flag, "--quiet")
    assert result.returncode == 2, result.stderr
    assert "is not a dltrain run directory" in result.stderr and "thesis.tex" in result.stderr
    assert (victim / "thesis.tex").read_text() == "years of work" and (victim / "notes" / "a.txt").exists()


def test_a_second_fit_on_a_run_directory_is_kept_off_naming_the_holder(tmp_path):
    # old main: the second --overwrite wiped the first one's run mid-training
    config = digits_config(tmp_path, epochs=400)
    run = tmp_path / "run"
    first = subprocess.Popen([*DLTRAIN, "fit", str(config), "--run-dir", str(run), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (run / "checkpoints" / "last.npz").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = run_cli("fit", config, "--run-dir", run, "--overwrite", "--quiet")
        assert second.returncode == 2, second.stderr
        assert f"in use by another dltrain process (PID {first.pid})" in second.stderr
        assert (run / "checkpoints" / "last.npz").exists()
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 130, err
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    resumed = run_cli("fit", "--resume", run, "--set", "training.epochs=3", "--quiet",
                      "--allow-config-change")
    assert resumed.returncode == 0, resumed.stderr          # the lock went with the process


def test_an_early_stopped_run_resumed_has_nothing_to_do(tmp_path):
    # old main: --resume auto trained on past the stop
    config = digits_config(tmp_path, epochs=40, callbacks=[
        {"type": "early_stopping", "monitor": "val_loss", "patience": 1, "min_delta": 10.0}])
    run = tmp_path / "run"
    assert run_cli("fit", config, "--run-dir", run, "--quiet").returncode == 0
    before = metrics_rows(run)
    assert len(before) < 40
    again = run_cli("fit", config, "--run-dir", run, "--resume", "auto")
    assert again.returncode == 0, again.stderr
    assert "nothing to do: it stopped early at epoch" in " ".join(again.stdout.split())
    assert metrics_rows(run) == before


def test_a_finished_run_resumed_has_nothing_to_do(tmp_path):
    config = digits_config(tmp_path, epochs=2)
    run = tmp_path / "run"
    assert run_cli("fit", config, "--run-dir", run, "--quiet").returncode == 0
    stamp = (run / "checkpoints" / "last.npz").stat().st_mtime_ns
    again = run_cli("fit", config, "--run-dir", run, "--resume", "auto")
    assert again.returncode == 0 and "nothing to do: it finished its 2 epochs" in " ".join(again.stdout.split())
    assert (run / "checkpoints" / "last.npz").stat().st_mtime_ns == stamp


SIGNAL_AT = textwrap.dedent('''
    import os, signal, sys
    from dltrain.training import rundir, trainer
    phase = sys.argv[1]
    if phase == "start-up":                  # while the run directory is being set up
        manifest = rundir.manifest
        def hooked(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            return manifest(*a, **k)
        rundir.manifest = hooked
    elif phase == "validation":              # during the last (2nd) epoch's validation
        evaluate, seen = trainer.Trainer.evaluate, []
        def hooked(self, split, *a, **k):
            if split.name != "test":
                seen.append(split.name)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGTERM)
            return evaluate(self, split, *a, **k)
        trainer.Trainer.evaluate = hooked
    else:                                    # during the final test evaluation
        evaluate = trainer.Trainer.evaluate
        def hooked(self, split, *a, **k):
            if split.name == "test":
                os.kill(os.getpid(), signal.SIGTERM)
            return evaluate(self, split, *a, **k)
        trainer.Trainer.evaluate = hooked
    from dltrain.cli import main
    main(sys.argv[2:])
''')


@pytest.mark.parametrize("phase", ["start-up", "validation", "test evaluation"])
def test_sigterm_in_every_phase_exits_130_and_says_interrupted(tmp_path, phase):
    # old main: at start-up SIGTERM killed the process silently (run.json "running"); during the
    # last epoch's validation and the test evaluation it was ignored (the handlers were gone) or
    # killed it
    config = digits_config(tmp_path, epochs=2, training={})
    data = yaml.safe_load(config.read_text())
    data["data"]["test"] = {"split": 0.2}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", SIGNAL_AT, phase, "fit", str(config), "--run-dir", str(run),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "SIGTERM received" in done.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def rewrite_record(path, change):
    """Re-save a checkpoint with its record changed by ``change(meta)``, its array checksum kept
    valid. Written as a plain .npz without a seal (as a dltrain before seals wrote it), so the
    same test runs against the old code too; a fresh file: previous.npz may be a hard link."""
    import numpy as np

    from dltrain.training import checkpoint

    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    meta.pop("file_checksum", None)
    record = change({**meta, "sha256": checkpoint.digest(arrays)})
    path.unlink()
    np.savez(path, meta=np.frombuffer(json.dumps(record).encode(), np.uint8), **arrays)


@pytest.fixture
def trained(tmp_path):
    config = digits_config(tmp_path, epochs=3)
    run = tmp_path / "run"
    assert run_cli("fit", config, "--run-dir", run, "--quiet").returncode == 0
    return config, run


def config_data(config):
    return yaml.safe_load(config.read_text())["data"]["train"]["path"]


def test_a_checkpoint_of_another_format_version_is_named(trained):
    # old main: read as if it were this version
    config, run = trained
    for name in ("last.npz", "best.npz", "previous.npz"):
        if (run / "checkpoints" / name).exists():
            rewrite_record(run / "checkpoints" / name, lambda m: {**m, "format_version": 2})
    for args in (["fit", config, "--run-dir", run, "--resume", "auto", "--set", "training.epochs=5",
                  "--allow-config-change"], ["evaluate", run, "--data", config_data(config)]):
        result = run_cli(*args)
        assert result.returncode == 5, result.stderr
        said = " ".join(result.stderr.split())
        assert "format version 2, this dltrain reads version 1 (written by a newer dltrain)" in said
        assert "last.npz" in said and "Traceback" not in said


def test_every_missing_key_is_named_and_resume_exits_5(trained):
    # old main: KeyError traceback (exit 1)
    config, run = trained
    for name in ("last.npz", "previous.npz"):
        rewrite_record(run / "checkpoints" / name,
                       lambda m: {k: v for k, v in m.items() if k not in ("random", "step")} | {"epoch": "3"})
    result = run_cli("fit", config, "--run-dir", run, "--resume", "auto", "--set", "training.epochs=5",
                     "--allow-config-change")
    assert result.returncode == 5, result.stderr
    said = " ".join(result.stderr.split())
    for problem in ("the key 'step' is missing", "the key 'random' is missing", "'epoch' is str, not an integer"):
        assert said.count(problem) == 2, (problem, said)          # for last.npz and previous.npz
    assert "Traceback" not in said


@pytest.mark.parametrize("where", ["central directory", "timestamp", "seal"])
def test_a_damaged_zip_header_byte_falls_back_to_previous_with_a_warning(trained, where):
    # central directory: the first member's compression method there (old main: NotImplementedError
    # traceback, exit 1, and --resume auto did not fall back); timestamp: its local header's
    # modification time, a byte no zip reader checks (before the seal: loaded as if sound); seal:
    # the last byte of the file, the seal's own digest
    import zipfile

    config, run = trained
    last = run / "checkpoints" / "last.npz"
    with zipfile.ZipFile(last) as archive:
        central = archive.start_dir
    position = {"central directory": central + 10, "timestamp": 10, "seal": -1}[where]
    damaged = bytearray(last.read_bytes())
    damaged[position] ^= 0xFF
    last.write_bytes(bytes(damaged))
    evaluated = run_cli("evaluate", run, "--checkpoint", "last")
    assert evaluated.returncode == 5 and "last.npz" in evaluated.stderr
    result = run_cli("fit", config, "--run-dir", run, "--resume", "auto", "--set", "training.epochs=4",
                     "--allow-config-change", "--quiet")
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "last.npz" in said and "previous.npz" in said and "(epoch 2) instead" in said
    assert len(metrics_rows(run)) == 4


def test_sigterm_while_the_data_loads_exits_130(tmp_path):
    """Before the writer exists: old main's default handler killed the process without a word."""
    script = SIGNAL_AT.replace('if phase == "start-up":', 'if phase == "loading":\n'
                               '    from dltrain.data import sources\n'
                               '    load = sources.Npz.load\n'
                               '    def hooked(self, base):\n'
                               '        os.kill(os.getpid(), signal.SIGTERM)\n'
                               '        return load(self, base)\n'
                               '    sources.Npz.load = hooked\n'
                               'elif phase == "start-up":')
    config = digits_config(tmp_path, epochs=2)
    done = subprocess.run([sys.executable, "-c", script, "loading", "fit", str(config), "--run-dir",
                           str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert "SIGTERM received" in done.stderr and "Traceback" not in done.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


def test_retention_past_epoch_999_keeps_the_newest(tmp_path):
    # old main: epoch_1000.npz sorts before epoch_999.npz as text, so keep_last 1 deleted the newest
    config = digits_config(tmp_path, epochs=2, callbacks=[
        {"type": "model_checkpoint", "save_best_only": False, "keep_last": 1, "every_n_epochs": 1}])
    run = tmp_path / "run"
    assert run_cli("fit", config, "--run-dir", run, "--quiet").returncode == 0
    (run / "checkpoints" / "previous.npz").unlink()     # pretend 998 epochs are done
    rewrite_record(run / "checkpoints" / "last.npz",
                   lambda meta: {**meta, "epoch": 998, "history": (meta["history"] * 499)[:998]})
    result = run_cli("fit", config, "--run-dir", run, "--resume", "auto", "--set", "training.epochs=1000",
                     "--allow-config-change", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch_*.npz")) == ["epoch_1000.npz"]
