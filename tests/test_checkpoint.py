"""Checkpoints: the format of DESIGN.md, read with allow_pickle=False, and written atomically, so
that killing `fit` at any moment never leaves a corrupt last.npz."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import CONFIGS, ROOT
from dltrain.errors import CheckpointError
from dltrain.training import checkpoint


def test_save_load_round_trip_and_checksum(tmp_path):
    arrays = {"model/dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
              "optimizer/iterations": np.asarray(3)}
    path = tmp_path / "c.npz"
    checkpoint.save(path, arrays, {"epoch": 2, "random": {"shuffle": 1}})
    loaded, meta = checkpoint.load(path)
    assert meta["epoch"] == 2 and meta["format_version"] == checkpoint.FORMAT_VERSION
    np.testing.assert_array_equal(loaded["model/dense/kernel"], arrays["model/dense/kernel"])
    assert loaded["model/dense/kernel"].dtype == np.float32
    assert checkpoint.section(loaded, "model") == {"dense/kernel": loaded["model/dense/kernel"]}
    assert not [p for p in tmp_path.iterdir() if p.name != "c.npz"], "a temporary file was left"


def test_truncated_altered_and_missing_checkpoints_are_checkpoint_errors(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"a": np.ones(1000, np.float32)}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        checkpoint.load(path)
    # same size, one array value changed: the zip is fine, the checksum is not
    with np.load(_resave(tmp_path, data), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["a"] = arrays["a"].copy()
    arrays["a"][7] = 2
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nothing.npz")


def test_the_seal_covers_bytes_no_zip_reader_checks(tmp_path):
    """A timestamp byte of a member's local header: np.load and the zip CRCs never look at it."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"a": np.ones(10, np.float32)}, {"epoch": 1})
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF                                     # the first member's modification time
    path.write_bytes(bytes(data))
    with np.load(path, allow_pickle=False) as f:         # what the zip format itself notices: nothing
        assert f["a"].sum() == 10
    with pytest.raises(CheckpointError, match="c.npz.*fails its checksum"):
        checkpoint.load(path)


def test_a_stripped_seal_is_refused_and_an_unsealed_older_checkpoint_is_read(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"a": np.ones(10, np.float32)}, {"epoch": 1})
    arrays = dict(np.load(path, allow_pickle=False))
    np.savez(path, **arrays)                             # the same members, no seal: refused
    with pytest.raises(CheckpointError, match="seal at its end .* is missing or damaged"):
        checkpoint.load(path)
    record = json.loads(arrays.pop("meta").tobytes())
    del record["file_checksum"]                          # as a dltrain before seals wrote it
    np.savez(path, meta=np.frombuffer(json.dumps(record).encode(), np.uint8), **arrays)
    loaded, meta = checkpoint.load(path)                 # checked by its CRCs and array digest
    assert meta["epoch"] == 1 and loaded["a"].sum() == 10
    loaded["a"][0] = 5
    np.savez(path, meta=np.frombuffer(json.dumps(record).encode(), np.uint8), **loaded)
    with pytest.raises(CheckpointError, match="fails its checksum"):
        checkpoint.load(path)


def _resave(tmp_path, data):
    good = tmp_path / "good.npz"
    good.write_bytes(data)
    return good


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.frombuffer(json.dumps({}).encode(), np.uint8),
             a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_killing_fit_at_random_moments_never_leaves_a_corrupt_checkpoint(tmp_path):
    """SIGKILL a training process at random moments while it writes a checkpoint every epoch."""
    rng = np.random.default_rng(0)
    command = [sys.executable, "-m", "dltrain", "fit", str(CONFIGS / "digits_mlp.yaml"),
               "--set", "training.epochs=1000", "--set", "callbacks=[]", "--set", "training.batch_size=512",
               "--set", "model.layers[1].units=4096",       # a bigger file: longer writes
               "--quiet"]
    checked = mid_write = 0
    for attempt in range(8):
        # a fresh run directory each time: with --overwrite the new process would first empty
        # the old one, and the wait below could see the previous process's last.npz
        run = tmp_path / f"run{attempt}"
        process = subprocess.Popen(command + ["--run-dir", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        deadline = time.monotonic() + 30
        while not (run / "checkpoints" / "last.npz").exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))          # epochs take ~20 ms: some kill lands mid-write
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
        mid_write += any(p.name.startswith(".last.npz.tmp") for p in (run / "checkpoints").iterdir())
        arrays, meta = checkpoint.load(run / "checkpoints" / "last.npz")   # raises if corrupt
        assert meta["epoch"] >= 1 and any(k.startswith("model/") for k in arrays)
        checked += 1
    assert checked == 8
    print(f"{mid_write} of 8 kills landed while a checkpoint was being written", file=sys.stderr)


WRITER = """
import sys, numpy as np
from dltrain.training import checkpoint
arrays = {"model/w": np.random.default_rng(0).standard_normal(4_000_000).astype(np.float32)}
epoch = 0
while True:
    epoch += 1
    arrays["model/w"][:1] = epoch
    checkpoint.save(sys.argv[1], arrays, {"epoch": epoch})
    print(epoch, flush=True)
"""


def test_killing_a_process_in_the_middle_of_checkpoint_writes_keeps_the_old_one(tmp_path):
    """A 16 MB checkpoint saved in a loop, SIGKILLed at random moments: most kills land mid-write."""
    rng = np.random.default_rng(1)
    path = tmp_path / "last.npz"
    mid_write = 0
    for attempt in range(6):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                   cwd=ROOT, text=True)
        process.stdout.readline()                      # one checkpoint is complete
        time.sleep(rng.uniform(0.01, 0.2))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        mid_write += any(".tmp-" in p.name for p in tmp_path.iterdir())
        arrays, meta = checkpoint.load(path)
        assert arrays["model/w"][0] == meta["epoch"]
        for p in tmp_path.iterdir():
            if ".tmp-" in p.name:
                p.unlink()
    assert mid_write >= 1, "no kill landed during a write: the test did not test anything"
