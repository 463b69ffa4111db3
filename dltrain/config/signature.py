"""One ``{type: ...}`` spec checked against its class's constructor signature, every problem found.

The signature is the schema: unknown arguments (with the closest name), missing required ones,
and values of the wrong type are found without running the constructor; the type comes from the
annotation when there is one, else from the default's type (an int default takes an int or a list
of ints, a float default a number or a spec, a str default a name or a spec). Range checks are
the constructor's own (``check.*``); its ConfigError is moved to the argument it is about.
"""
import inspect
import numbers
import typing

from dltrain import catalogue  # noqa: F401  (a spec may be of any kind)
from dltrain.errors import ConfigError
from dltrain.registry import PLURALS, parameters, registry, split_spec, suggest


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_spec(v):
    return isinstance(v, str) or (isinstance(v, dict) and "type" in v)


# (test, words) per kind of value
BOOLEAN = (lambda v: isinstance(v, bool), "true or false")
INTEGER = (lambda v: _is_int(v) or (isinstance(v, (list, tuple)) and all(_is_int(i) for i in v)),
           "an integer")
NUMBER = (lambda v: _is_number(v) or _is_spec(v), "a number")
STRING = (lambda v: _is_spec(v), "a name (or a {type: ...} spec)")
LIST = (lambda v: isinstance(v, (list, tuple)) or _is_int(v), "a list")
MAPPING = (lambda v: isinstance(v, dict), "a mapping")


def _from_annotation(annotation):
    """(test, words) from a type annotation; None when it says nothing checkable."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return (lambda v: v in choices), "one of " + ", ".join(map(repr, choices))
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        options = [_from_annotation(a) for a in typing.get_args(annotation) if a is not type(None)]
        if None in options or not options:
            return None
        none_ok = type(None) in typing.get_args(annotation)
        return ((lambda v: (none_ok and v is None) or any(t(v) for t, _ in options)),
                " or ".join(w for _, w in options) + (" or null" if none_ok else ""))
    kind = origin or annotation
    table = {bool: BOOLEAN, int: INTEGER, float: NUMBER, str: STRING, list: LIST, tuple: LIST,
             dict: MAPPING}
    return table.get(kind)


def expected_type(cls, name, parameter):
    """(test, words) for one constructor argument, or None when nothing is known."""
    annotation = parameter.annotation
    if annotation is not parameter.empty:
        if isinstance(annotation, str):
            try:
                annotation = typing.get_type_hints(cls.__init__).get(name, annotation)
            except Exception:        # an annotation that does not resolve says nothing checkable
                return None
        return _from_annotation(annotation)
    default = parameter.default
    if default is parameter.empty or default is None:
        return None
    for kind, test in ((bool, BOOLEAN), (numbers.Integral, INTEGER), (numbers.Real, NUMBER),
                       (str, STRING), ((list, tuple), LIST), (dict, MAPPING)):
        if isinstance(default, kind):
            return test
    return None


def type_name(value):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def check_spec(kind, spec, path, where, ignore=()):
    """(class or None, arguments, [ConfigError]) for one spec; nothing is constructed."""
    spec_where = where(path)
    try:
        name, arguments = split_spec(spec, kind, spec_where)
        if not isinstance(name, str):
            raise ConfigError(f"a {kind} type must be a name, not {name!r}", where=where(path + ("type",)),
                              fix=f"`dltrain list {PLURALS[kind]}` shows the names.")
        cls = registry(kind).get(name, where(path + ("type",)) if isinstance(spec, dict) else spec_where)
    except ConfigError as error:
        return None, {}, [error]
    accepted = parameters(cls)
    errors = []
    for key, value in arguments.items():
        if key in ignore:
            continue
        if key not in accepted:
            errors.append(ConfigError(
                f"unknown argument {key!r} for {kind} {cls.registered_name!r}",
                where=where(path + (key,)), expected=", ".join(accepted) or "no arguments",
                fix=suggest(key, list(accepted), f"`dltrain list {PLURALS[kind]} --details "
                            f"{cls.registered_name}` describes each.")))
            continue
        test = expected_type(cls, key, accepted[key])
        if test is not None and value is not None and not test[0](value):
            errors.append(ConfigError(
                f"{key}={value!r} has the wrong type ({type_name(value)}) for {kind} "
                f"{cls.registered_name!r}", where=where(path + (key,)), expected=test[1],
                fix=f"write {key} as {test[1]}."))
        elif isinstance(value, (str, dict)):
            errors.extend(_nested_errors(key, value, path + (key,), where))
    meant = {suggest(k, list(accepted)) for k in arguments if k not in accepted and k not in ignore}
    for key, p in accepted.items():
        if p.default is p.empty and key not in arguments and not any(m and f"{key!r}" in m for m in meant):
            errors.append(ConfigError(
                f"{kind} {cls.registered_name!r} needs the argument {key!r}", where=spec_where,
                expected=", ".join(accepted), fix=f"add `{key}: ...` to it."))
    arguments = {k: v for k, v in arguments.items() if k not in ignore}
    return cls, arguments, errors


#: arguments whose value is itself a registered spec, by how their name ends
NESTED = (("activation", "activation"), ("_initializer", "initializer"),
          ("_regularizer", "regularizer"))


def _nested_errors(key, value, path, where):
    """Errors of a spec given as an argument (kernel_initializer, activation, ...), at its path."""
    kind = next((k for ending, k in NESTED if key.endswith(ending)), None)
    if kind is None:
        return []
    cls, arguments, errors = check_spec(kind, value, path, where)
    if cls is not None and not errors:
        error = construct(cls, arguments, kind, path, where)[1]
        errors = [error] if error is not None else []
    return errors


def construct(cls, arguments, kind, path, where):
    """(instance, None) or (None, ConfigError located at the argument it is about)."""
    try:
        return cls(**arguments), None
    except ConfigError as error:
        key = _argument_of(error, arguments)
        if error.where is None:
            error.where = where(path + (key,) if key else path)
        if key and error.message.endswith("is out of range") and not _is_number(arguments[key]) \
                and any(w in str(error.expected) for w in ("integer", "number")):
            error.message = f"{key}={arguments[key]!r} has the wrong type ({type_name(arguments[key])})"
        return None, error
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        # a value of a shape the constructor did not expect; say so rather than crash
        return None, ConfigError(
            f"{kind} {cls.registered_name!r} cannot take these arguments: {error}", where=where(path),
            fix=f"`dltrain list {PLURALS[kind]} --details {cls.registered_name}` describes them.")


def _argument_of(error, arguments):
    """The argument a constructor's error is about: named as `key=`, or its value quoted."""
    message = error.message
    for key in arguments:
        if message.startswith(f"{key}=") or f"{key!r}" in message:
            return key
    for key, value in arguments.items():
        name = value.get("type") if isinstance(value, dict) else value
        if isinstance(name, str) and repr(name) in message:
            return key
    return None


def signature_text(cls):
    """'units, use_bias=True, ...' from the constructor."""
    parts = []
    for name, p in parameters(cls).items():
        parts.append(name if p.default is p.empty else f"{name}={p.default!r}")
    return ", ".join(parts)


def first_line(cls):
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""
