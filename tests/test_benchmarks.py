"""The benchmark scripts run: each, dltrain only and tiny, as a real subprocess (PyTorch is never
imported here), and prints its dltrain line and peak memory; with ``--workers 2`` each dltrain
round is a real 2-rank MPI job (the MPICH wheel's mpiexec) that reports the all-reduce's share
and the peak memory of each rank."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

RUNS = [
    ("lstm.py", ["--rounds", "1", "--batches", "1"]),
    ("lstm.py", ["--rounds", "1", "--batches", "1", "--cell", "gru"]),
    ("convnet.py", ["--rounds", "1", "--steps", "2"]),
    ("mlp.py", ["--epochs", "1"]),
]
IDS = ["lstm", "gru", "convnet", "mlp"]


def run(script, args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--no-torch", "--threads", "1",
                           *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("script, args", RUNS, ids=IDS)
def test_benchmark_script_runs_dltrain_only(script, args):
    result = run(script, args)
    assert result.returncode == 0, result.stderr
    assert "median" in result.stdout and "peak RSS" in result.stdout, result.stdout
    assert "dltrain / torch" not in result.stdout                # no PyTorch round, no ratio


TWO_RANKS = [RUNS[0], RUNS[2], ("mlp.py", ["--epochs", "1", "--samples", "2048"])]


@pytest.mark.parametrize("script, args", TWO_RANKS, ids=["lstm", "convnet", "mlp"])
def test_benchmark_script_runs_dltrain_on_two_ranks(script, args):
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install 'dltrain[mpi]'")
    if not (Path(sys.executable).parent / "mpiexec").exists():
        pytest.skip("no mpiexec beside this Python (the mpich wheel of dltrain[mpi])")
    result = run(script, [*args, "--workers", "2"])
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "2 ranks x 1 BLAS threads" in out and "median" in out, out
    assert "all-reduce" in out and "% of the round by rank" in out, out
    assert "peak RSS by rank" in out and "gradient buffer" in out, out
    assert "dltrain / torch" not in out


def test_peaks_reports_each_rank_against_one_process_plus_the_gradient_buffer():
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install 'dltrain[mpi]'")
    if not (Path(sys.executable).parent / "mpiexec").exists():
        pytest.skip("no mpiexec beside this Python (the mpich wheel of dltrain[mpi])")
    result = run("mlp.py", ["--samples", "2048", "--peaks"])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("1 process:") and "allowed per rank" in line for line in lines), lines
    for ranks in (2, 4):
        line = next(line for line in lines if line.strip().startswith(f"{ranks} ranks:"))
        assert len(line.split(";")[0].split(",")) == ranks and "highest" in line, line
