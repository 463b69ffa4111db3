"""What ``dltrain list`` shows: each registered name, its aliases, arguments and docstring."""
import inspect
from dataclasses import dataclass

from dltrain.config.signature import first_line, signature_text
from dltrain.errors import ConfigError
from dltrain.registry import KINDS, PLURALS, parameters, registry, suggest

REQUIRED = "(required)"      # the default shown for an argument that has none


@dataclass
class Entry:
    """One registered class as ``dltrain list`` shows it."""
    kind: str
    name: str
    aliases: tuple
    arguments: dict          # argument name -> default, REQUIRED for an argument without one
    signature: str           # 'units, use_bias=True, ...'
    description: str         # the docstring's first line
    doc: str = ""            # the whole docstring

    def to_dict(self):
        return {"kind": self.kind, "name": self.name, "aliases": list(self.aliases),
                "arguments": {k: (None if v is REQUIRED else v) for k, v in self.arguments.items()},
                "required": [k for k, v in self.arguments.items() if v is REQUIRED],
                "description": self.description, "doc": self.doc}


def kinds_of(word):
    """The kinds a command-line word names: 'layers' or 'layer' -> ['layer']; None -> all."""
    if word is None:
        return list(KINDS)
    by_word = {**{k: k for k in KINDS}, **{p: k for k, p in PLURALS.items()}}
    if word not in by_word:
        raise ConfigError(f"unknown kind {word!r}", where="dltrain list KIND",
                          expected=", ".join(PLURALS[k] for k in KINDS),
                          fix=suggest(word, list(by_word)))
    return [by_word[word]]


def entry(kind, cls):
    arguments = {name: REQUIRED if p.default is p.empty else p.default
                 for name, p in parameters(cls).items()}
    return Entry(kind, cls.registered_name, tuple(cls.registered_aliases), arguments,
                 signature_text(cls), first_line(cls), inspect.getdoc(cls) or "")


def entries(kind):
    """[Entry] for every class of a kind, by name."""
    reg = registry(kind)
    return [entry(kind, reg.classes[name]) for name in reg.names()]


def find(kinds, name):
    """The Entry of the class registered as ``name`` (or an alias) in one of ``kinds``."""
    for kind in kinds:
        reg = registry(kind)
        if name in reg:
            return entry(kind, reg.get(name))
    names = [n for k in kinds for n in registry(k).names()]
    raise ConfigError(f"no {' or '.join(kinds) if len(kinds) < 3 else 'entry'} is named {name!r}",
                      where="dltrain list --details", fix=suggest(name, names, "`dltrain list` shows them all."))

