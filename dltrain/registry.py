"""One registry per kind of component; ``@register("name")`` adds a class to its kind's registry.

A class's kind comes from its base class (``Layer.kind == "layer"``), so one decorator serves
layers, losses, optimizers and the rest. ``build(kind, spec, where)`` turns a config spec,
``{type: NAME, ...arguments}`` or a bare ``NAME``, into an instance.

This module imports nothing that registers: a registry holds what has been imported. A module
that builds a kind by name imports the module that registers that kind (``layers`` imports
``initializers`` and ``activations``); one that takes any kind imports ``dltrain.catalogue``.
"""
import difflib
import inspect

from dltrain.errors import ConfigError

KINDS = (
    "layer", "activation", "initializer", "regularizer", "loss", "optimizer", "schedule",
    "metric", "callback", "source", "preprocessing",
)
PLURALS = {kind: kind + "s" for kind in KINDS}
PLURALS.update({"activation": "activations", "preprocessing": "preprocessing", "loss": "losses"})


class Registry:
    """The registered classes of one kind, by name and alias."""

    def __init__(self, kind):
        self.kind = kind
        self.classes = {}
        self.aliases = {}

    def add(self, name, cls, aliases=()):
        for key in (name, *aliases):
            if key in self.classes or key in self.aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
        self.classes[name] = cls
        for alias in aliases:
            self.aliases[alias] = name
        cls.registered_name = name
        cls.registered_aliases = tuple(aliases)

    def names(self):
        return sorted(self.classes)

    def __contains__(self, name):
        return name in self.classes or name in self.aliases

    def get(self, name, where=None):
        """The class registered as ``name``; an error with the closest names otherwise."""
        if not self.classes:          # a bug, not a user's error: the registering module was not imported
            raise LookupError(f"no {self.kind} is registered yet: import the module that registers "
                              f"{PLURALS[self.kind]} (or dltrain.catalogue, for every kind) first")
        name = self.aliases.get(name, name)
        if name in self.classes:
            return self.classes[name]
        choices = self.names() + sorted(self.aliases)
        raise ConfigError(
            f"unknown {self.kind} type {name!r}",
            where=where,
            expected="one of " + ", ".join(self.names()),
            fix=suggest(name, choices, f"`dltrain list {PLURALS[self.kind]}` shows them all."),
        )


_REGISTRIES = {kind: Registry(kind) for kind in KINDS}


def registry(kind):
    return _REGISTRIES[kind]


def register(name, aliases=()):
    """Class decorator: add the class to the registry of its kind (``cls.kind``)."""

    def decorate(cls):
        _REGISTRIES[cls.kind].add(name, cls, aliases)
        return cls

    return decorate


def suggest(name, choices, tail=""):
    """'did you mean X?' for the closest of ``choices``, followed by ``tail``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (hint + tail).strip() or None


def parameters(cls):
    """The constructor's arguments: name -> inspect.Parameter (self and **kwargs left out)."""
    signature = inspect.signature(cls.__init__)
    return {
        name: p for name, p in list(signature.parameters.items())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def split_spec(spec, kind, where=None):
    """(type name, arguments) of a spec that is a bare name or a ``{type: NAME, ...}`` mapping."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        if "type" not in spec:
            raise ConfigError(
                f"{kind} spec has no 'type'", where=where,
                expected=f"a mapping with `type: NAME`, or a bare {kind} name",
                fix=f"add `type:` naming a {kind}; `dltrain list {PLURALS[kind]}` shows them.",
            )
        arguments = {k: v for k, v in spec.items() if k != "type"}
        return spec["type"], arguments
    raise ConfigError(
        f"a {kind} must be a name or a mapping with 'type', not {spec!r}", where=where,
        expected="`NAME` or `{type: NAME, ...}`",
    )


def check_arguments(cls, arguments, kind, where=None, ignore=()):
    """Raise a ConfigError for an argument the constructor does not take or one it lacks."""
    accepted = parameters(cls)
    for key in arguments:
        if key in ignore:
            continue
        if key not in accepted:
            raise ConfigError(
                f"unknown argument {key!r} for {kind} {cls.registered_name!r}",
                where=where,
                expected=", ".join(accepted) or "no arguments",
                fix=suggest(key, list(accepted), f"`dltrain list {PLURALS[kind]} --details "
                            f"{cls.registered_name}` describes each."),
            )
    for key, p in accepted.items():
        if p.default is p.empty and key not in arguments:
            raise ConfigError(
                f"{kind} {cls.registered_name!r} needs the argument {key!r}",
                where=where, expected=", ".join(accepted),
                fix=f"add `{key}: ...` to it.",
            )


def build(kind, spec, where=None, **extra):
    """An instance of the registered class a spec names, its arguments checked first."""
    name, arguments = split_spec(spec, kind, where)
    cls = registry(kind).get(name, where=where)
    check_arguments(cls, arguments, kind, where)
    try:
        return cls(**arguments, **extra)
    except ConfigError as error:
        if error.where is None:
            error.where = where
        raise


def get(kind, spec, where=None):
    """A registered instance from a spec, or the object itself when it is one already."""
    if isinstance(spec, (str, dict)):
        return build(kind, spec, where)
    return spec

