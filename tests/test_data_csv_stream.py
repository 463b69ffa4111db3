"""predict on large CSVs streams (issue 14, deliverable 10): numeric files are parsed by numpy's
C reader straight into float32, the table is written a block of rows at a time; results equal the
full reader's.

Measured (2 shared cores, load average 4.2-4.3, medians of 5 alternating runs), `dltrain predict
RUN big.csv -o out.csv` on 100,000 rows x 30 columns, in-process from the first import: 1.67 s
and 90.7 MiB VmHWM (the commit before this round's changes, 08c894c: 2.09 s, 85.1 MiB; the
process wall 1.79 vs 2.30 s). Where the time goes (load ~2): imports 0.3 s (numpy 0.12), parsing
0.35 s (np.loadtxt's own speed), writing 0.34 s (float repr), the model and the rest 0.15 s.
Old main: 14.0 s and 482 MiB on this machine; the issue measured 22 s and 342 MiB.
"""
import csv
import io
import subprocess
import sys

import numpy as np
import pytest
import yaml

from dltrain import api
from dltrain.errors import DataError

FEATURES = [f"f{i}" for i in range(6)]


def write_rows(path, x, y=None, header=True, delimiter=","):
    with open(path, "w") as f:
        if header:
            f.write(delimiter.join(FEATURES + (["label"] if y is not None else [])) + "\n")
        for i, row in enumerate(x):
            cells = [repr(float(v)) for v in row] + ([str(int(y[i]))] if y is not None else [])
            f.write(delimiter.join(cells) + "\n")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    write_rows(folder / "train.csv", rng.standard_normal((300, 6)).round(5), rng.integers(0, 3, 300))
    config = {"name": "s", "data": {"train": {"type": "csv", "path": "train.csv"},
                                    "preprocessing": ["standardize"]},
              "model": {"input_shape": [6], "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
              "loss": "sparse_categorical_crossentropy", "optimizer": "adam", "training": {"epochs": 1}}
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    api.fit(folder / "c.yaml", run_dir=folder / "run")
    return folder / "run"


def both_ways(run, path, monkeypatch, streamed=None):
    """Predictions with the streaming reader and with the full reader only; ``streamed``: assert
    whether the streaming reader took the file (True) or gave way (False)."""
    from dltrain.data import csv_stream

    taken = []
    real = csv_stream.features
    monkeypatch.setattr(csv_stream, "features", lambda source, path: taken.append(real(source, path)) or taken[-1])
    fast = api.predict(run, [str(path)])
    monkeypatch.setattr(csv_stream, "features", lambda source, path: None)
    full = api.predict(run, [str(path)])
    monkeypatch.undo()
    if streamed is not None:
        assert (taken[0] is not None) == streamed
    return fast, full


@pytest.mark.parametrize("header, label, delimiter", [
    (True, False, ","), (True, True, ","), (False, False, ","), (False, True, ","), (True, False, "\t")])
def test_the_streamed_reader_gives_what_the_full_reader_gives(run, tmp_path, monkeypatch, header, label, delimiter):
    rows = 60_000 if header and not label and delimiter == "," else 5000   # past loadtxt's 50,000-line chunks
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, 6))
    path = write_rows(tmp_path / ("p.tsv" if delimiter == "\t" else "p.csv"), x,
                      rng.integers(0, 3, rows) if label else None, header, delimiter)
    fast, full = both_ways(run, path, monkeypatch, streamed=True)
    np.testing.assert_array_equal(fast.outputs, full.outputs)
    assert fast.sources == full.sources and len(fast.sources) == rows


def test_a_csv_with_every_cell_quoted_is_streamed_too(run, tmp_path, monkeypatch):
    # before: any quote sent the file to the full reader (100,000 x 30: 4.3 s instead of 1.7 s)
    path = write_rows(tmp_path / "q.csv", np.random.default_rng(7).standard_normal((2000, 6)))
    rows = list(csv.reader(io.StringIO(path.read_text())))
    with open(path, "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    assert path.read_text().startswith('"f0","f1"')
    fast, full = both_ways(run, path, monkeypatch, streamed=True)
    np.testing.assert_array_equal(fast.outputs, full.outputs)


def scores_both_ways(run, path, monkeypatch):
    """evaluate --data scores with the streaming reader (asserted to take the file) and with the
    full reader only."""
    from dltrain.data import csv_stream

    taken = []
    real = csv_stream.labelled
    monkeypatch.setattr(csv_stream, "labelled", lambda source, path: taken.append(real(source, path)) or taken[-1])
    fast = api.evaluate(run, data=str(path))
    assert taken and taken[0] is not None
    monkeypatch.setattr(csv_stream, "labelled", lambda source, path: None)
    full = api.evaluate(run, data=str(path))
    monkeypatch.undo()
    return fast, full


@pytest.mark.parametrize("header", [True, False])
def test_evaluate_streams_a_numeric_labelled_csv_as_the_full_reader_reads_it(run, tmp_path, monkeypatch, header):
    rng = np.random.default_rng(6)
    path = write_rows(tmp_path / "e.csv", rng.standard_normal((3000, 6)), rng.integers(0, 3, 3000), header)
    fast, full = scores_both_ways(run, path, monkeypatch)
    assert dict(fast) == dict(full) and set(fast) >= {"loss"}


def test_streamed_labels_are_those_of_the_full_reader(run, tmp_path, monkeypatch):
    from dltrain.data import csv_stream
    from dltrain.data.sources import for_file

    train = api.LoadedRun(run, "best").experiment.sources["train"]
    real = csv_stream.labelled
    for labels, kind in (("0 2 1", np.int64), ("0.5 16777217 2", np.float32), ("1e300 0 1", None)):
        path = write_rows(tmp_path / "l.csv", np.ones((3, 6)))
        rows = path.read_text().splitlines()
        path.write_text("\n".join([rows[0] + ",label"] + [r + "," + v for r, v in zip(rows[1:], labels.split())]))
        streamed = real(for_file(path, train), path)
        monkeypatch.setattr(csv_stream, "labelled", lambda source, path: None)
        if kind is None:                    # a label beyond float32 (it was int64's minimum): named
            assert streamed is None
            with pytest.raises(DataError, match=r"l.csv, row 1 \(line 2\), column 'label': the label "
                                                r"'1e300' is beyond float32's range"):
                for_file(path, train).load(tmp_path)
            monkeypatch.undo()
            continue
        full = for_file(path, train).load(tmp_path)
        monkeypatch.undo()
        assert streamed[1].dtype == kind == full[1].dtype and np.array_equal(streamed[1], full[1])
        assert streamed[0].dtype == full[0].dtype and np.array_equal(streamed[0], full[0])


def quote_first_cell(text):
    header, first, rest = text.split("\n", 2)
    cell, others = first.split(",", 1)
    return f'{header}\n"{cell}",{others}\n{rest}'


@pytest.mark.parametrize("damage, error", [
    (lambda t: quote_first_cell(t), None),                              # a quoted number: alike
    (lambda t: t.replace("\n", '\n"1\n2",', 1), "has 7 columns"),          # a line break in quotes
    (lambda t: t.replace("\n", "\n\n  \n", 3), None),                   # blank lines: dropped alike
    (lambda t: t.rsplit("\n", 3)[0] + "\n1,2,3\n", "has 3 columns"),
    (lambda t: t[:-1].rsplit("\n", 1)[0] + "\n1,2,3,4,5,NA\n", "the value is missing"),
    (lambda t: t[:-1].rsplit("\n", 1)[0] + "\n1,2,3,4,5,nan\n", "the value is missing"),
    (lambda t: t[:-1].rsplit("\n", 1)[0] + "\n1,2,3,4,5,abc\n", "'abc' is not a number"),
    (lambda t: t[:-1].rsplit("\n", 1)[0] + "\n1,2,3,4,5,inf\n", "not a finite number"),
    (lambda t: t[:-1].rsplit("\n", 1)[0] + "\n1,2,3,4,5,\n", "the value is missing"),
])
def test_anything_but_plain_numbers_goes_to_the_full_reader(run, tmp_path, monkeypatch, damage, error):
    path = write_rows(tmp_path / "p.csv", np.random.default_rng(2).standard_normal((50, 6)))
    path.write_text(damage(path.read_text()))
    if error is None:
        fast, full = both_ways(run, path, monkeypatch)
        np.testing.assert_array_equal(fast.outputs, full.outputs)
        return
    with pytest.raises(DataError, match=error.replace("(", r"\(")):
        api.predict(run, [str(path)])


@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_the_csv_table_is_the_records_table(run, tmp_path, top_k):
    from dltrain.data.prediction_output import write_csv

    path = write_rows(tmp_path / "p.csv", np.random.default_rng(3).standard_normal((40, 6)))
    predictions = api.predict(run, [str(path)])
    ours = io.StringIO()
    write_csv(ours, predictions, top_k)
    theirs = io.StringIO()
    records = predictions.records(top_k)
    writer = csv.DictWriter(theirs, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    assert ours.getvalue() == theirs.getvalue()


@pytest.mark.parametrize("classifier", [True, False])
def test_text_cells_are_quoted_as_the_csv_module_quotes_them(classifier):
    from dltrain.data.prediction_output import write_csv

    outputs = np.random.default_rng(4).random((7, 3), dtype=np.float32)
    outputs[0] = [0.0, 1e-30, 1.0]
    sources = [('a,"b".csv', i) for i in range(3)] + [("plain.csv", 'x"y'), ("plain.csv", "z\nw"),
                                                      ("c d.csv", "s,t"), ("c d.csv", 5)]
    predictions = api.Predictions(outputs, sources, ['one', 'two, "2"', 'three'] if classifier else None,
                                  classifier)
    for top_k in (None, 2) if classifier else (None,):
        ours = io.StringIO()
        write_csv(ours, predictions, top_k)
        theirs = io.StringIO()
        records = predictions.records(top_k)
        writer = csv.DictWriter(theirs, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        assert ours.getvalue() == theirs.getvalue()


def test_predicting_100000_rows_of_30_columns_streams(tmp_path):
    """The issue's case in a fresh process: peak RSS (it was 342-482 MiB) and time (14-22 s)."""
    script = f"""
import resource, sys, time
import numpy as np, yaml
from pathlib import Path
folder = Path({str(tmp_path)!r})
rng = np.random.default_rng(0)
cols = [f"f{{i}}" for i in range(30)]
def write(path, x, y=None):
    body = "\\n".join(",".join(map(repr, r)) + ("" if y is None else f",{{y[i]}}")
                     for i, r in enumerate(x.round(6).tolist()))
    path.write_text(",".join(cols + ([] if y is None else ["label"])) + "\\n" + body + "\\n")
write(folder / "train.csv", rng.standard_normal((300, 30)), rng.integers(0, 3, 300))
write(folder / "big.csv", rng.standard_normal((100_000, 30)))
(folder / "c.yaml").write_text(yaml.safe_dump({{"name": "b", "data": {{"train": {{"type": "csv", "path": "train.csv"}},
  "preprocessing": ["standardize"]}}, "model": {{"input_shape": [30], "layers": [{{"type": "dense", "units": 3,
  "activation": "softmax"}}]}}, "loss": "sparse_categorical_crossentropy", "optimizer": "adam",
  "training": {{"epochs": 1}}}}))
from dltrain import api
api.fit(folder / "c.yaml", run_dir=folder / "run")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    measure = f"""
import time
start = time.perf_counter()
from dltrain.cli import main
try:
    main(["predict", {str(tmp_path / "run")!r}, {str(tmp_path / "big.csv")!r}, "-o", {str(tmp_path / "out.csv")!r}])
except SystemExit as done:
    assert not done.code, done.code
# VmHWM, not ru_maxrss: Linux carries the parent's RSS at fork into the child's ru_maxrss across
# exec (a pytest process of 168 MB made this read 168 MiB)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(time.perf_counter() - start, int(hwm.split()[1]) / 1024)
"""
    done = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, peak_mib = map(float, done.stdout.split()[-2:])
    print(f"predict 100,000 x 30: {seconds:.2f} s, {peak_mib:.0f} MiB")
    assert peak_mib < 150, peak_mib
    assert seconds < 12, seconds        # 3 s is the goal on a quiet machine; this guards the old 14-22 s
    assert sum(1 for _ in open(tmp_path / "out.csv")) == 100_001


def test_values_beyond_float32_are_refused_not_turned_into_inf(run, tmp_path):
    path = write_rows(tmp_path / "p.csv", np.ones((5, 6)))
    path.write_text(path.read_text() + "1,1,1,1,1,1e300\n")
    with pytest.raises(DataError, match="beyond float32's range"):
        api.predict(run, [str(path)])


def test_predicting_imports_no_network_code():
    """http.client and urllib.request (30-45 ms) load only when a download starts."""
    code = "import sys, dltrain.cli, dltrain.api; print(sorted(m for m in sys.modules if m in ('http.client', 'urllib.request')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
