"""Composition: ``base: [common.yaml, ...]`` merged under the file that names it.

Bases are read relative to the including file and merged in order (a later base wins), then the
including file goes on top: mappings merge key by key, lists and scalars are replaced whole (a
list of layers is one value). Every value keeps the file and line it came from, so an error in a
value a base gave points into the base. Data paths a base gives stay relative to the base's
folder (they are rewritten relative to the including file). A base that includes itself, directly
or through others, is an error naming the chain.
"""
import os
from pathlib import Path

import dltrain.data  # noqa: F401  (registers the sources looked up below)
from dltrain.config.loader import Document, load
from dltrain.errors import ConfigError

DATA_SPLITS = ("train", "validation", "test")


def compose(document, _chain=()):
    """The document with its bases merged in (``base`` removed); the document itself when it has none."""
    data = document.data
    if not isinstance(data, dict) or "base" not in data:
        return document
    names = data.pop("base")
    if names is None:
        return document
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"base must be a file name or a list of file names, not {names!r}",
                          where=document.where(("base",)), expected="e.g. `base: [common.yaml]`")
    folder = Path(document.file).parent
    chain = _chain + ((Path(document.file).resolve(), str(document.file)),)
    merged, merged_lines = {}, {}
    for i, name in enumerate(names):
        path = folder / name
        key = path.resolve()
        seen = [resolved for resolved, _ in chain]
        if key in seen:
            trail = [shown for _, shown in chain[seen.index(key):]] + [str(path)]
            raise ConfigError(f"base configs form a cycle: {' -> '.join(trail)}",
                              where=document.where(("base", i)),
                              fix="remove the `base:` entry that leads back to a file already included.")
        if not path.is_file():
            raise ConfigError(f"base config {name!r} does not exist", where=document.where(("base", i)),
                              expected=f"a file at {path}",
                              fix="base paths are relative to the file that names them.")
        base = compose(load(path), chain)
        _rebase_data_paths(base.data, path.parent, folder)
        lines = {p: (line if isinstance(line, tuple) or line == "--set" else (base.file, line))
                 for p, line in base.lines.items()}
        merged, merged_lines = merge(merged, merged_lines, base.data, lines)
    own_lines = {p: line for p, line in document.lines.items() if p[:1] != ("base",)}
    data, lines = merge(merged, merged_lines, data, own_lines)
    return Document(data, lines, document.file)


def merge(a, a_lines, b, b_lines):
    """(data, lines) of b merged over a: mappings key by key, everything else replaced."""
    data = _merge_values(a, b)
    lines = {}
    _collect_lines(data, (), a_lines, b_lines, lines)
    return data, lines


def _merge_values(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        result = dict(a)
        for key, value in b.items():
            result[key] = _merge_values(a[key], value) if key in a else value
        return result
    return b


def _collect_lines(value, path, a_lines, b_lines, out):
    line = b_lines.get(path, a_lines.get(path))
    if line is not None:
        out[path] = line
    if isinstance(value, dict):
        for key, item in value.items():
            _collect_lines(item, path + (key,), a_lines, b_lines, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _collect_lines(item, path + (i,), a_lines, b_lines, out)


def _rebase_data_paths(data, base_folder, folder):
    """Rewrite a base's relative data paths so they stay right when read from ``folder``."""
    if Path(base_folder).resolve() == Path(folder).resolve():
        return
    sections = data.get("data") if isinstance(data, dict) else None
    if not isinstance(sections, dict):
        return
    from dltrain.registry import registry

    for split in DATA_SPLITS:
        spec = sections.get(split)
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            continue
        if spec["type"] not in registry("source"):
            continue
        cls = registry("source").get(spec["type"])
        for key in getattr(cls, "path_arguments", ("path",)):
            value = spec.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                spec[key] = os.path.relpath(Path(base_folder) / value, folder)
