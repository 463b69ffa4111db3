"""Argument checks that constructors call; each raises a ConfigError quoting the bad value.

``registry.build`` adds the YAML location to the error, so constructors only say what is wrong.
"""
import numbers

from dltrain.errors import ConfigError, ShapeError


def _fail(name, value, expected):
    raise ConfigError(f"{name}={value!r} is out of range", expected=expected,
                      fix=f"set {name} to {expected}.")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name, value):
    if not _is_int(value) or value <= 0:
        _fail(name, value, "a positive integer")
    return int(value)


def non_negative_int(name, value):
    if not _is_int(value) or value < 0:
        _fail(name, value, "an integer >= 0")
    return int(value)


def number(name, value):
    if not _is_number(value):
        _fail(name, value, "a number")
    return float(value)


def positive(name, value):
    if not _is_number(value) or value <= 0:
        _fail(name, value, "a number > 0")
    return float(value)


def non_negative(name, value):
    if not _is_number(value) or value < 0:
        _fail(name, value, "a number >= 0")
    return float(value)


def fraction(name, value, closed=False):
    """A number in [0, 1) (or [0, 1] when ``closed``)."""
    ok = _is_number(value) and 0 <= value and (value <= 1 if closed else value < 1)
    if not ok:
        _fail(name, value, "a number in [0, 1]" if closed else "a number in [0, 1)")
    return float(value)


def one_of(name, value, choices):
    if value not in choices:
        _fail(name, value, "one of " + ", ".join(map(repr, choices)))
    return value


def boolean(name, value):
    if not isinstance(value, bool):
        _fail(name, value, "true or false")
    return value


def int_tuple(name, value, length):
    """An int or a list of ``length`` positive ints, returned as a tuple."""
    if _is_int(value):
        value = (value,) * length
    if (not isinstance(value, (list, tuple)) or len(value) != length
            or not all(_is_int(v) and v > 0 for v in value)):
        _fail(name, value, f"a positive integer or a list of {length}")
    return tuple(int(v) for v in value)


def shape(name, value):
    """A shape: a list of positive ints (a bare int is a 1-tuple)."""
    if _is_int(value):
        value = [value]
    if (not isinstance(value, (list, tuple))
            or not all(v is None or (_is_int(v) and v > 0) for v in value)):
        _fail(name, value, "a list of positive integers, e.g. [28, 28, 1]")
    return tuple(None if v is None else int(v) for v in value)


def rank(layer, input_shape, expected, hint=None):
    """The input shape, after checking it has ``expected`` dimensions (an int or a tuple of ints)."""
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if len(input_shape) not in allowed:
        words = {1: "a vector (features,)", 2: "a sequence (steps, features)",
                 3: "an image (height, width, channels)"}
        need = " or ".join(words.get(r, f"rank {r}") for r in allowed)
        raise ShapeError(
            f"layer '{layer.name}' ({layer.registered_name}) got input of shape "
            f"{tuple(input_shape)} but needs {need}",
            fix=hint,
        )
    return input_shape
