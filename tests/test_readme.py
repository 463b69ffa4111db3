"""README's recipes run as written: every command in its shell blocks is executed, in order, in a
copy of the repository's configs and datasets (so runs/ and predictions land there), except those
that need the network or full MNIST, the test suite itself, and the command-reference syntax.
A block that shows a command's output (`$ dltrain ...` then text) must print that output's first
line, with the exit code its kind of error has."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA

README = ROOT / "README.md"
SHELL = ("", "bash", "sh", "shell", "console")
#: what is not run here, and why
SKIPPED = {
    "pip install": "needs the network (the test environment is installed already)",
    "python -m pytest": "the test suite itself",
    "/path/to": "a placeholder path (the PyTorch comparison)",
    "mnist": "needs full MNIST",
    "datasets download": "needs the network",
}
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b|\[|\||\.\.\.")   # CONFIG, RUN, [--flag], a | b


def blocks():
    """(line number, [(command, shown output or None)]) of each shell block that has commands."""
    text = README.read_text()
    found = []
    for match in re.finditer(r"^( *)```([a-z]*)\n(.*?)^\1```", text, re.S | re.M):
        if match.group(2) not in SHELL:
            continue
        line = text[:match.start()].count("\n") + 1
        commands, lines = [], match.group(3).splitlines()
        for i, raw in enumerate(lines):
            shown = raw.strip().startswith("$ ")
            command = raw.strip()[2:] if shown else raw.strip()
            if not re.match(r"(dltrain|python|pip)\b", command) or command.startswith("dltrain/"):
                continue
            output = None
            if shown:
                output = next((l.strip() for l in lines[i + 1:] if l.strip()), None)
            commands.append((command, output))
        if commands:
            found.append((line, commands))
    return found


def why_skipped(command):
    for word, reason in SKIPPED.items():
        if word in command:
            return reason
    words = shlex.split(command, comments=True)
    if any(PLACEHOLDER.search(w) for w in words[1:]):
        return "command-reference syntax with placeholders"
    return None


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of what README's commands read; ../shared/data beside it as in a checkout."""
    folder = tmp_path_factory.mktemp("readme")
    copy = folder / "repo"
    for part in ("configs", "datasets", "tests/broken_configs"):
        shutil.copytree(ROOT / part, copy / part)
    if SHARED_DATA.exists():
        os.symlink(SHARED_DATA.parent, folder / "shared")
    return copy


BLOCKS = blocks()


def test_the_readme_has_the_recipes_this_test_runs():
    runnable = [c for _, commands in BLOCKS for c, _ in commands if why_skipped(c) is None]
    assert any(c.startswith("dltrain fit configs/digits_mlp.yaml") for c in runnable), runnable
    assert len(runnable) >= 8, runnable


@pytest.mark.parametrize("line, commands", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block(repo, line, commands):
    ran = 0
    for command, output in commands:
        if why_skipped(command):
            continue
        words = shlex.split(command, comments=True)
        args = [sys.executable, "-m", "dltrain", *words[1:]] if words[0] == "dltrain" else \
            [sys.executable, *words[1:]]
        env = {k: v for k, v in os.environ.items() if k != "DLTRAIN_DATA_DIR"}
        done = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=600, env=env)
        said = done.stdout + done.stderr
        if output and output.split(":")[0].endswith("Error"):      # a shown error: its kind's code
            assert done.returncode in (2, 3, 5), (command, done.returncode, said[-2000:])
            assert " ".join(output.split()) in " ".join(said.split()), (command, said[-2000:])
        else:
            assert done.returncode == 0, (f"README.md:{line}: {command}", said[-3000:])
            if output:
                assert " ".join(output.split()) in " ".join(said.split()), (command, said[-2000:])
        ran += 1
    if not ran:
        pytest.skip("; ".join(sorted({why_skipped(c) for c, _ in commands})))
