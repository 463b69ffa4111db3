"""A JSON Schema (draft-07) of a config, generated from the registry: ``dltrain schema``.

Each ``{type: NAME, ...}`` spec becomes an object whose ``type`` is an enum of the registered
names and whose other keys are the constructor's arguments for that name (an ``if``/``then`` per
class), with types and defaults from the signature and enums found by asking the constructor
(a ``check.one_of`` names its choices when given a value it refuses). Editors with a YAML
language server complete and check configs from it.
"""
import ast

from dltrain.config.resolve import SECTIONS
from dltrain.config.signature import (BOOLEAN, INTEGER, LIST, MAPPING, NESTED, NUMBER, STRING,
                                      expected_type, first_line)
from dltrain.errors import ConfigError
from dltrain.registry import parameters, registry

SPEC_OBJECT = {"type": "object", "required": ["type"]}


def config_schema():
    from dltrain.config.validate import DATA_KEYS, HELD_OUT_KEYS, TRAINING_CHECKS
    from dltrain.config.resolve import TRAINING_DEFAULTS

    held_out = {"type": "object", "additionalProperties": False,
                "properties": {key: {} for key in HELD_OUT_KEYS}}
    held_out["properties"].update(split={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                                  stratify={"type": "boolean"})
    data = {"type": "object", "required": ["train"], "additionalProperties": False,
            "properties": {key: {} for key in DATA_KEYS}}
    data["properties"].update(
        train=spec_schema("source"),
        validation={"anyOf": [spec_schema("source"), held_out]},
        test={"anyOf": [spec_schema("source"), held_out]},
        preprocessing={"type": "array", "items": spec_schema("preprocessing")})
    node_keys = {"name": {"type": "string"}, "inputs": {"type": "array", "items": {"type": "string"}},
                 "activation": nested_schema("activation")}
    model = {"type": "object", "required": ["input_shape", "layers"], "additionalProperties": False,
             "properties": {
                 "input_shape": {"type": "array", "items": {"type": ["integer", "null"], "minimum": 1}},
                 "layers": {"type": "array", "minItems": 1, "items": spec_schema("layer", node_keys)},
                 "output": {"type": "string"}}}
    training = {"type": "object", "additionalProperties": False, "properties": {
        key: {} for key in {**TRAINING_DEFAULTS, **TRAINING_CHECKS}}}
    training["properties"].update(                  # the defaults: config/resolve.py's, the only copy
        epochs={"type": "integer", "minimum": 1, "default": TRAINING_DEFAULTS["epochs"]},
        batch_size={"type": "integer", "minimum": 1, "default": TRAINING_DEFAULTS["batch_size"]},
        shuffle={"type": "boolean", "default": TRAINING_DEFAULTS["shuffle"]})
    properties = {
        "name": {"type": "string"}, "seed": {"type": "integer", "minimum": 0, "default": SECTIONS["seed"]},
        "precision": {"enum": ["float32", "float64"], "default": SECTIONS["precision"]},
        "device": {"enum": ["cpu", "cuda", "auto"], "default": "cpu"},
        "base": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "data": data, "model": model, "loss": spec_schema("loss"),
        "optimizer": spec_schema("optimizer"),
        "metrics": {"type": "array", "items": spec_schema("metric", {"name": {"type": "string"}})},
        "training": training,
        "callbacks": {"type": "array", "items": spec_schema("callback")},
    }
    for key in SECTIONS:      # sections added to resolve.SECTIONS later are at least allowed
        properties.setdefault(key, {})
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "dltrain config",
            "type": "object", "additionalProperties": False, "properties": properties}


def spec_schema(kind, extra=None):
    """A bare registered name, or {type: NAME, ...that class's arguments}."""
    reg = registry(kind)
    names = reg.names() + sorted(reg.aliases)
    rules = []
    for name in reg.names():
        cls = reg.classes[name]
        properties = {"type": {"enum": [name, *cls.registered_aliases]}}
        required = ["type"]
        for argument, p in parameters(cls).items():
            properties[argument] = argument_schema(cls, argument, p)
            if p.default is p.empty:
                required.append(argument)
        properties.update(extra or {})
        rules.append({"if": {"properties": {"type": {"const": name}}},
                      "then": {"properties": properties, "required": required,
                               "additionalProperties": False, "description": first_line(cls)}})
        for alias in cls.registered_aliases:
            rules.append({"if": {"properties": {"type": {"const": alias}}}, "then": rules[-1]["then"]})
    return {"anyOf": [{"type": "string", "enum": names},
                      {"type": "object", "required": ["type"],
                       "properties": {"type": {"enum": names}}, "allOf": rules}]}


def nested_schema(kind):
    names = registry(kind).names() + sorted(registry(kind).aliases)
    return {"anyOf": [{"type": "string", "enum": names}, SPEC_OBJECT]}


def argument_schema(cls, argument, parameter):
    """The schema of one constructor argument: type, default, enum, description."""
    for ending, kind in NESTED:
        if argument.endswith(ending):
            schema = nested_schema(kind)
            break
    else:
        test = expected_type(cls, argument, parameter)
        schema = {BOOLEAN: {"type": "boolean"},
                  INTEGER: {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]},
                  NUMBER: {"anyOf": [{"type": "number"}, SPEC_OBJECT]},
                  STRING: {"anyOf": [{"type": "string"}, SPEC_OBJECT]},
                  LIST: {"type": ["array", "integer"]}, MAPPING: {"type": "object"}}.get(test, {})
        choices = _choices(cls, argument) if test is STRING else None
        if choices:
            schema = {"enum": choices}
    schema = dict(schema)
    if parameter.default is not parameter.empty and _is_json(parameter.default):
        schema["default"] = list(parameter.default) if isinstance(parameter.default, tuple) \
            else parameter.default
    return schema


def _is_json(value):
    return value is None or isinstance(value, (bool, int, float, str, list, tuple))


def _choices(cls, argument):
    """The values a constructor's one_of accepts, found by giving it one it refuses."""
    example = next(iter(getattr(cls, "examples", ()) or ()), ({}, None))[0]
    arguments = {**example, argument: "\x00not-a-choice"}
    try:
        cls(**arguments)
    except ConfigError as error:
        expected = str(error.expected or "")
        if expected.startswith("one of '"):
            try:
                return list(ast.literal_eval("[" + expected.removeprefix("one of ") + "]"))
            except (ValueError, SyntaxError):
                return None
    except Exception:      # a constructor that fails another way says nothing about choices
        return None
    return None
