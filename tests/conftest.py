"""Shared fixtures: paths to the repository, its configs and the shared real datasets."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dltrain.catalogue  # noqa: F401  (tests build every kind by name through dltrain.registry)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DATASETS = ROOT / "datasets"
# the team's shared real datasets (MNIST, text); CI has them at the same place
SHARED_DATA = Path(os.environ.get("DLTRAIN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def config_data_files(config_path):
    """The files a config's data sources name (path-like arguments), resolved from its folder."""
    import yaml

    config = yaml.safe_load(Path(config_path).read_text())
    files = []
    for spec in (config.get("data") or {}).values():
        if not isinstance(spec, dict) or "type" not in spec:
            continue
        for key, value in spec.items():
            if key in ("path", "labels", "images", "folder", "directory") and isinstance(value, str):
                files.append(Path(config_path).parent / value)
    return files


def skip_without_data(config_path):
    """Skip the calling test, naming the files, when a config's data is not on this machine
    (the example configs read ../shared/data, which CI has beside the checkout)."""
    missing = [f for f in config_data_files(config_path) if not f.exists()]
    if missing:
        pytest.skip(f"{Path(config_path).name}: data not on this machine: {', '.join(map(str, missing))}")


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
