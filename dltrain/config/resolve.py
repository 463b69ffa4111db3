"""The resolved config: overrides applied, sections checked, defaults filled in.

What the run directory stores is this resolved form, so ``dltrain fit runs/X/config.yaml``
reproduces run X.
"""
import copy
import re
from pathlib import Path

import yaml

from dltrain.config.compose import compose
from dltrain.config.loader import Document, format_path, load, parse
from dltrain.errors import ConfigError, join_errors
from dltrain.registry import suggest

SECTIONS = {
    "name": None,
    "seed": 0,
    "precision": "float32",
    "device": None,          # cpu, cuda or auto; --device overrides it (dltrain/backend.py)
    "data": None,
    "model": None,
    "loss": None,
    "optimizer": "rmsprop",
    "metrics": [],
    "training": {},
    "callbacks": [],
    "base": None,
}
REQUIRED = ("data", "model", "loss")
#: divergence_factor: stop (exit 4) when a batch's loss exceeds this many times the first batch's
#: (or 1, if larger) — a loss can explode yet stay finite; null turns the check off
TRAINING_DEFAULTS = {"epochs": 10, "batch_size": 32, "shuffle": True, "divergence_factor": 1e6}

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def parse_override(text):
    """'model.layers[1].units=128' -> (('model', 'layers', 1, 'units'), 128)."""
    if "=" not in text:
        raise ConfigError(where="--set", message=f"--set {text!r} has no '='", fix="write --set KEY=VALUE, e.g. "
                          "--set training.epochs=5.")
    key, value = text.split("=", 1)
    path, position = [], 0
    for match in _PATH_PART.finditer(key):
        if match.start() != position and key[position:match.start()] != ".":
            break
        path.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not path or position != len(key) or isinstance(path[0], int):
        raise ConfigError(where="--set", message=f"--set {text!r}: {key!r} is not a key path",
                          fix="use dotted keys and [i] for list items, e.g. model.layers[1].units=128.")
    try:
        parsed = parse(value, "--set").data if value.strip() else None
    except ConfigError as error:
        raise ConfigError(where="--set", message=f"--set {text!r}: the value is not valid YAML", fix=error.fix) from None
    return tuple(path), parsed


def apply_override(document, text):
    path, value = parse_override(text)
    node = document.data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise ConfigError(where="--set", message=f"--set {text!r}: {format_path(path[:i + 1])} does not exist",
                                  fix=f"{format_path(path[:i])} has "
                                      f"{len(node) if isinstance(node, list) else 0} items.")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(where="--set", message=f"--set {text!r}: {format_path(path[:i])} is not a mapping")
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or not -len(node) <= last < len(node):
            raise ConfigError(where="--set", message=f"--set {text!r}: {format_path(path)} does not exist")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise ConfigError(where="--set", message=f"--set {text!r}: {format_path(path[:-1])} is not a mapping")
        if isinstance(node.get(last), str) and isinstance(value, dict) and "type" not in value:
            value = {"type": node[last], **value}
        node[last] = value
    for known in [p for p in document.lines if p[:len(path)] == path]:
        del document.lines[known]      # the old value's lines no longer describe it
    document.lines[path] = "--set"
    return document


def resolve(path_or_document, overrides=(), errors=None):
    """Load (if given a path), merge bases, apply overrides, check sections, fill in defaults.

    With an ``errors`` list, problems that do not stop the rest from being checked are appended
    to it; otherwise they are raised together.
    """
    document = path_or_document if isinstance(path_or_document, Document) else load(path_or_document)
    if not isinstance(document.data, dict):
        raise ConfigError("a config must be a mapping of sections (data, model, loss, ...)",
                          where=document.file)
    document = compose(document)
    found = []
    for text in overrides:
        try:
            apply_override(document, text)
        except ConfigError as error:
            found.append(error)
    data = document.data
    for key in data:
        if key not in SECTIONS:
            found.append(ConfigError(
                f"unknown section {key!r}", where=document.where((key,)),
                expected=", ".join(k for k in SECTIONS if k != "base"),
                fix=suggest(key, list(SECTIONS))))
    for key in REQUIRED:
        if data.get(key) is None:
            found.append(ConfigError(f"the config has no {key!r} section",
                                     where=f"{key} ({document.location(())})",
                                     fix=f"add a `{key}:` section."))
    for key, default in SECTIONS.items():
        if key not in data and default is not None:
            data[key] = copy.deepcopy(default)
    if data.get("name") is None:
        data["name"] = Path(document.file).stem.replace("_", "-")
    if not isinstance(data["training"], dict):
        found.append(ConfigError("training must be a mapping", where=document.where(("training",)),
                                 expected="e.g. `training: {epochs: 10, batch_size: 32}`"))
        data["training"] = {}
    for key, default in TRAINING_DEFAULTS.items():
        data["training"].setdefault(key, default)
    if errors is None:
        join_errors(found)
    else:
        errors.extend(found)
    return document


def dump(data):
    """The config as YAML text, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
