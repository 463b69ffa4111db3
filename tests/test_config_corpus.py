"""The corpus of broken configs: each must exit 2 with its message fragment, naming file and line.

Each tests/broken_configs/NN_name.yaml starts with ``# expect: FRAGMENT`` lines (all must appear in
the output) and optional ``# set: KEY=VALUE`` lines passed as --set overrides.
"""
import re
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "broken_configs"
CASES = sorted(CORPUS.glob("*.yaml"))


def header(path, key):
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith(f"# {key}:")]


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_config_is_reported(cli, path):
    expects, sets = header(path, "expect"), header(path, "set")
    assert expects, f"{path.name} has no '# expect:' line"
    args = ["check", path] + [a for s in sets for a in ("--set", s)]
    result = cli(*args)
    output = " ".join(result.output.split())     # rich wraps long lines
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for fragment in expects:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    # every message names where: a file and line, or the --set option
    located = re.search(r"\.yaml:\d+", output) or "--set" in output
    assert located, output


def test_three_mistakes_reported_in_one_run(cli):
    (path,) = CORPUS.glob("*three_mistakes.yaml")
    output = cli("check", path).output
    assert output.count("Error: ") >= 3, output
