"""How commands print: tables that never cut a name in a pipe, strict JSON, short numbers.

When stdout is a terminal, tables fit its width and name columns are the last to shrink; when it
is a pipe or a file, the console is as wide as the longest line, so `dltrain list | grep` and
`dltrain summary | cat` see every name whole.
"""
import dataclasses
import json
import math
from pathlib import Path

UNLIMITED = 1 << 16       # the console width when the output is not a terminal


def console(stderr=False):
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, width=UNLIMITED)
    return out


def table(title, *columns):
    """A rich Table; each column is a name, or (name, {"justify": ..., "name": True}) where a
    name column is never wrapped or cut before the others."""
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        name, options = (column, {}) if isinstance(column, str) else column
        options = dict(options)
        if options.pop("name", False):
            options["no_wrap"] = True
        result.add_column(name, **options)
    return result


NAME = {"name": True}
RIGHT = {"justify": "right"}


def format_value(value):
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def plain(value):
    """``value`` as JSON's types: numpy scalars and arrays, tuples, paths and dataclasses
    converted; NaN and infinities become null (JSON has no such numbers)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):                 # numpy arrays and scalars
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return repr(value)


def json_text(value, indent=1):
    """Strict JSON text of ``value`` (see ``plain``)."""
    return json.dumps(plain(value), indent=indent, allow_nan=False)
