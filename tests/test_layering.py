"""The import structure of DESIGN.md: no import circles, and the layers in their order.

Every `import` statement of every module counts, at the top of a file or inside a function (a
lazy import is still an edge). Then each module is imported alone in a fresh interpreter, and what
that pulled in is checked against the same rules, and every registry the module looks up by
name holds classes by then (so no lookup depends on what some other module imported first).
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dltrain"

# (importers, exempt importers, what they must not import, why)
FORBIDDEN = [
    ("dltrain.layers", (), ("dltrain.training", "dltrain.api", "dltrain.cli"), "layers sit below training and api"),
    ("dltrain.training", (), ("dltrain.cli",), "training knows nothing of the command line"),
    ("dltrain", ("dltrain.cli", "dltrain.__main__"), ("dltrain.cli",), "nothing imports cli"),
]
# The thin CLI calls api and renders what it returns; besides api it reads only these.
CLI_READS = ("dltrain.api", "dltrain.errors", "dltrain.cli",
             "dltrain.training.callbacks",     # the Callback base of the progress display
             "dltrain.summary")                # human_count / human_bytes for the summary table


def module_names():
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def imports_of(name):
    """The dltrain modules that ``name``'s import statements name (a package, for a name in its
    __init__; the submodule itself, for `from package import submodule`)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def add(target):
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if within(alias.name, "dltrain"):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if within(base, "dltrain"):
                for alias in node.names:
                    add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(importer, imported):
    """The rules of FORBIDDEN that ``importer`` importing ``imported`` breaks."""
    broken = []
    for prefix, exempt, banned, why in FORBIDDEN:
        if within(importer, prefix) and not any(within(importer, e) for e in exempt):
            broken += [f"{importer} imports {imported}: {why}" for b in banned if within(imported, b)]
    return broken


def test_the_cli_reads_only_the_api():
    extra = sorted(f"{importer} imports {target}" for importer, targets in GRAPH.items()
                   if within(importer, "dltrain.cli") for target in targets
                   if target != "dltrain" and not any(within(target, m) for m in CLI_READS))
    assert not extra, "the cli should call dltrain.api instead:\n" + "\n".join(extra)


def test_the_graph_finds_a_circle_and_a_banned_import():
    """The checks themselves can fail."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert violations("dltrain.layers.core", "dltrain.api")
    assert violations("dltrain.training.trainer", "dltrain.cli.render")
    assert violations("dltrain.data.sources", "dltrain.cli")
    assert not violations("dltrain.cli.training", "dltrain.cli.render")
    assert not violations("dltrain.__main__", "dltrain.cli")
    source = ("from dltrain.registry import build, registry\n"
              "def f(kind, logs):\n    build('metric', 'accuracy'); logs.get('loss'); return registry(kind)\n")
    assert kinds_looked_up(source) == sorted(KINDS)
    assert kinds_looked_up("from dltrain.registry import get\nget('initializer', 'zeros')") == ["initializer"]


def test_no_import_circles():
    found = circles(GRAPH)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_import_statement_keeps_the_layering():
    broken = [v for importer, targets in GRAPH.items() for target in sorted(targets)
              for v in violations(importer, target)]
    assert not broken, "\n".join(broken)


KINDS = ("layer", "activation", "initializer", "regularizer", "loss", "optimizer", "schedule",
         "metric", "callback", "source", "preprocessing")


def kinds_looked_up(source):
    """The registry kinds a module's source looks up by name (``build``, ``get`` or ``registry``
    from dltrain.registry, with a literal kind); all of them when the kind is a variable."""
    tree = ast.parse(source)
    lookups = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module == "dltrain.registry"
               for alias in node.names if alias.name in ("build", "get", "registry")}
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in lookups \
                and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in KINDS:
                kinds.add(first.value)
            elif not isinstance(first, ast.Constant):
                kinds.update(KINDS)
    return sorted(kinds)


# Imports each module in a fresh child (forked from an interpreter that has loaded the
# third-party libraries but no dltrain module) and reports what it pulled in.
DRIVER = r"""
import importlib, json, os, sys
import numpy, yaml, click, rich.console, rich.table  # third-party only: no dltrain module yet
assert not [m for m in sys.modules if m == "dltrain" or m.startswith("dltrain.")]
jobs = json.loads(sys.stdin.read())
for name, kinds in jobs:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            from dltrain.registry import registry
            report = {"modules": sorted(m for m in sys.modules if m == "dltrain" or m.startswith("dltrain.")),
                      "empty": [k for k in kinds if not registry(k).classes]}
        except BaseException as error:
            report = {"error": f"{type(error).__name__}: {error}"}
        os.write(write, (json.dumps(report) + "\n").encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    print(json.dumps([name, json.loads(text)]), flush=True)
"""


@pytest.fixture(scope="module")
def imported_alone():
    skipped = ("dltrain.__main__",)          # runs the CLI when imported
    jobs = [[name, kinds_looked_up(MODULES[name].read_text(encoding="utf-8"))] for name in sorted(MODULES) if name not in skipped]
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(jobs), capture_output=True,
                          text=True, timeout=300, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    reports = dict(json.loads(line) for line in done.stdout.splitlines())
    assert set(reports) == {name for name, _ in jobs}
    return {name: (report, kinds) for (name, kinds), report in
            ((job, reports[job[0]]) for job in jobs)}


def test_each_module_imports_alone(imported_alone):
    failed = {name: report["error"] for name, (report, _) in imported_alone.items() if "error" in report}
    assert not failed, failed


def test_each_module_imported_alone_keeps_the_layering(imported_alone):
    broken = [v for name, (report, _) in imported_alone.items()
              for loaded in report.get("modules", []) for v in violations(name, loaded)]
    assert not broken, "\n".join(broken)


def test_each_registry_a_module_looks_up_is_filled_by_its_own_imports(imported_alone):
    """A module that builds a kind by name imports the module that registers it."""
    empty = {name: report["empty"] for name, (report, _) in imported_alone.items() if report.get("empty")}
    assert not empty, f"looked up by name but nothing registered after importing the module alone: {empty}"
