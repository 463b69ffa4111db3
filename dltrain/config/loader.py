"""YAML loading that keeps the line of every value, so errors can say ``file:line``.

``load(path)`` returns a ``Document``: ``data`` holds plain dicts, lists and scalars, and
``where(path)`` turns a key path such as ``("model", "layers", 1, "units")`` into
``model.layers[1].units (configs/x.yaml:12)``. Duplicate keys are an error naming both lines;
``1e-3`` is read as a float (YAML 1.1 wants ``1.0e-3``).
"""
import re
from pathlib import Path

import yaml

from dltrain.errors import ConfigError


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.1 reads 1e-3 as a string; read every decimal number with an exponent as a float.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def format_path(path):
    """('model', 'layers', 1, 'units') -> 'model.layers[1].units'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class Document:
    """Parsed YAML plus the line of every key path."""

    def __init__(self, data, lines, file):
        self.data = data
        #: {path tuple: 1-based line in ``file``, (other file, line) for a value that came from a
        #: base config, or "--set" for an override}
        self.lines = lines
        self.file = file

    def line(self, path):
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def location(self, path):
        """'file:line' of ``path`` (the base file's for a value a base config gave), or '--set'."""
        line = self.line(path)
        if line == "--set":
            return "--set"
        if isinstance(line, tuple):
            return f"{line[0]}:{line[1]}"
        return f"{self.file}:{line}" if line else str(self.file)

    def where(self, path):
        return f"{format_path(path)} ({self.location(path)})"


def _walk(node, path, lines, file):
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r}",
                    where=f"{format_path(path + (key,))} ({file}:{key_node.start_mark.line + 1})",
                    expected=f"each key once; it was first given on line {seen[key]}",
                    fix=f"remove one of the two {key!r} entries (lines {seen[key]} and "
                        f"{key_node.start_mark.line + 1}).")
            seen[key] = key_node.start_mark.line + 1
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, file)


def parse(text, file="<string>"):
    """A Document from YAML text."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document({}, {}, file)
        lines = {}
        _walk(node, (), lines, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line_text = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise ConfigError(
            f"YAML syntax error: {error.problem or error.context}",
            where=where + (f"\n    {line_text}\n    {' ' * mark.column}^" if mark else ""),
            fix="check the indentation and the punctuation (':' after keys, matching brackets "
                "and quotes) on that line or the one before it.") from None
    finally:
        loader.dispose()
    return Document(data, lines, file)


def load(path):
    """A Document from a YAML file; a missing or unreadable file is a ConfigError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist",
                          fix="check the path; it is relative to the current directory.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error}") from None
    return parse(text, str(path))
