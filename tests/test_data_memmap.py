"""Training from a .npy larger than we want in memory: the file is memory-mapped, batches are
gathered lazily, the preprocessing is fitted in chunks, and mapped pages are released as they are
passed, so peak resident memory does not grow with the file.

One subprocess writes the file and exits; a second, fresh one (so none of the writer's memory is
in its peak) trains one epoch with `standardize` and reports its peak RSS growth during
``api.fit``, both from getrusage's ru_maxrss and from /proc/self/status VmHWM (each counts the
file pages it maps, so a whole-file read would show up in full).

Batches are read from the file (``arrays.gather``), not through the mapping: on Linux 6.18 with
ext4 large folios one page fault maps the whole folio, ~800 kB per random 1 KiB row, so gathering
through the mapping grew RSS by 240-310 MB on the 256 MB file (the old accounting assumed 64 KiB
of fault-around). Measured here (2 cores shared, 23 GB RAM, kernel 6.18), both counters agreeing:
256 MB file, peak growth 70 MB (was 309 MB through the mapping); 2 GB file, 79 MB (VmHWM 84).
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

MAKE = textwrap.dedent('''
    import sys
    from pathlib import Path
    import numpy as np, yaml
    folder, megabytes = Path(sys.argv[1]), int(sys.argv[2])
    features = 256
    rows = megabytes * (1 << 20) // (4 * features)
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (rows, features))
    for start in range(0, rows, 65536):
        n = min(65536, rows - start)
        x[start:start + n] = np.random.default_rng(start).standard_normal((n, features), np.float32) * 3 + 1
    x.flush(); del x
    np.save(folder / "y.npy", np.random.default_rng(0).standard_normal((rows, 1)).astype(np.float32))
    (folder / "c.yaml").write_text(yaml.safe_dump({
        "name": "big", "data": {"train": {"type": "npy", "path": "x.npy", "labels": "y.npy"},
                                "preprocessing": [{"type": "standardize"}]},
        "model": {"input_shape": [features], "layers": [{"type": "dense", "units": 1}]},
        "loss": "mse", "optimizer": "sgd", "training": {"epochs": 1, "batch_size": 256}}))
''')

# the training runs in a fresh process, so the writer's memory is not in its peak
SCRIPT = textwrap.dedent('''
    import json, resource, sys
    from pathlib import Path
    import numpy as np
    folder = Path(sys.argv[1])
    rows = np.load(folder / "x.npy", mmap_mode="r").shape[0]
    from dltrain import api
    import dltrain.catalogue
    def status(key):                 # kB, from the kernel's own accounting of this process
        line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
        return int(line.split()[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_before, rss_before = status("VmHWM"), status("VmRSS")
    result = api.fit(str(folder / "c.yaml"), run_dir=folder / "run")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mean = np.load(folder / "run" / "checkpoints" / "last.npz")["preprocessing/0/mean"]
    print(json.dumps({"growth_mb": (after - before) / 1024, "rows": rows,
                      "vmhwm_growth_mb": (status("VmHWM") - hwm_before) / 1024,
                      "rss_before_mb": rss_before / 1024, "file_mb": (folder / "x.npy").stat().st_size / 2**20,
                      "mean": float(mean.mean()), "loss": result.history[-1]["loss"]}))
''')


def train_from_npy(tmp_path, megabytes):
    made = subprocess.run([sys.executable, "-c", MAKE, str(tmp_path), str(megabytes)],
                          capture_output=True, text=True, timeout=1200)
    assert made.returncode == 0, made.stderr[-3000:]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(megabytes, "MB:", report)
    return report


def test_training_from_a_256_mb_npy_keeps_memory_flat(tmp_path):
    report = train_from_npy(tmp_path, 256)
    assert abs(report["mean"] - 1.0) < 0.01          # standardize saw the whole file, in chunks
    # 70 MB measured (chunked statistics, the model, numpy's buffers); a whole-file read, or
    # batches gathered through the mapping on a large-folio kernel, add >= 240 MB
    # VmHWM too: ru_maxrss starts at the parent's RSS at fork (Linux keeps it across exec), so
    # under a large pytest process its growth under-reports; VmHWM is this process's own
    assert report["growth_mb"] < 150 and report["vmhwm_growth_mb"] < 150, report


def test_gather_reads_the_rows_numpy_would(tmp_path):
    from dltrain.data.arrays import gather
    x = np.arange(5000 * 7, dtype=np.float32).reshape(5000, 7)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    rng = np.random.default_rng(0)
    for rows in (rng.integers(0, 5000, 300), np.arange(100, 900), np.array([4999, 0, 0, -1]),
                 np.array([], dtype=int), np.sort(rng.choice(5000, 64, replace=False))):
        got = gather(mapped, rows)
        assert type(got) is np.ndarray and np.array_equal(got, x[rows])
    labels = np.arange(5000, dtype=np.int64)
    np.save(tmp_path / "y.npy", labels)
    assert np.array_equal(gather(np.load(tmp_path / "y.npy", mmap_mode="r"), [3, 1, 2]), [3, 1, 2])
    with pytest.raises(IndexError):
        gather(mapped, [5000])


def test_gathering_random_rows_does_not_map_the_file(tmp_path):
    """Random rows of a 64 MiB file: through the mapping, on a large-folio kernel, this made most of
    the file resident (~800 kB per row); read from the file it adds about the rows' own bytes."""
    from dltrain.data.arrays import gather
    x = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (65536, 256))
    x[:] = 1.0
    x.flush()
    del x
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")

    def rss_kb():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1])

    before = rss_kb()
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = gather(mapped, rng.integers(0, 65536, 256))
    assert batch.shape == (256, 256)
    assert rss_kb() - before < 8 * 1024        # 20 batches of 256 KiB, not the file's 64 MiB


@pytest.mark.slow
def test_training_from_a_2_gb_npy_grows_rss_by_less_than_300_mb(tmp_path):
    report = train_from_npy(tmp_path, 2048)
    assert round(report["file_mb"]) == 2048 and report["rows"] == 2048 * 1024
    assert abs(report["mean"] - 1.0) < 0.01
    assert report["growth_mb"] < 300 and report["vmhwm_growth_mb"] < 300, report
