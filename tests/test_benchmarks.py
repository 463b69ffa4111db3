"""The benchmark scripts run: each, dltrain only and tiny, as a real subprocess (PyTorch is never
imported here), and prints its dltrain line and peak memory."""
import subprocess
import sys

import pytest

from conftest import ROOT

RUNS = [
    ("lstm.py", ["--rounds", "1", "--batches", "1"]),
    ("lstm.py", ["--rounds", "1", "--batches", "1", "--cell", "gru"]),
    ("convnet.py", ["--rounds", "1", "--steps", "2"]),
    ("mlp.py", ["--epochs", "1"]),
]


@pytest.mark.parametrize("script, args", RUNS, ids=["lstm", "gru", "convnet", "mlp"])
def test_benchmark_script_runs_dltrain_only(script, args):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--no-torch", "--threads", "1",
                             *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "median" in result.stdout and "peak RSS" in result.stdout, result.stdout
    assert "dltrain / torch" not in result.stdout                # no PyTorch round, no ratio
