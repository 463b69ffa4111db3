"""Shared fixtures: paths to the repository, its configs and the shared real datasets."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DATASETS = ROOT / "datasets"
# the team's shared real datasets (MNIST, text); CI has them at the same place
SHARED_DATA = Path(os.environ.get("DLTRAIN_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data():
    if not SHARED_DATA.exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def cli():
    """Run the CLI in-process through click's CliRunner: cli(args...) -> result."""
    from click.testing import CliRunner

    from dltrain.cli import main

    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


def run_dltrain(*args, cwd=None, timeout=300, env=None):
    """Run `python -m dltrain ARGS` as a real subprocess; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "dltrain", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
