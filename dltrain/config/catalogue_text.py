"""What ``dltrain list`` shows: each registered name, its aliases, signature and docstring."""
import inspect

from dltrain.config.signature import first_line, signature_text
from dltrain.errors import ConfigError
from dltrain.registry import KINDS, PLURALS, registry, suggest


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


def entries(kind):
    """(name, aliases, signature, first docstring line) for every class of a kind."""
    reg = registry(kind)
    rows = []
    for name in reg.names():
        cls = reg.classes[name]
        rows.append((name, ", ".join(cls.registered_aliases), signature_text(cls), first_line(cls)))
    return rows


def describe(kinds, name):
    """The full text of one registered class: kind, name, aliases, signature, docstring."""
    for kind in kinds:
        reg = registry(kind)
        if name in reg:
            cls = reg.get(name)
            aliases = f" (aliases: {', '.join(cls.registered_aliases)})" if cls.registered_aliases else ""
            doc = inspect.getdoc(cls) or "(no description)"
            return (f"{kind} {cls.registered_name}{aliases}\n"
                    f"  {{type: {cls.registered_name}, {signature_text(cls).replace('=', ': ')}}}\n\n{doc}")
    names = [n for k in kinds for n in registry(k).names()]
    raise ConfigError(f"no {' or '.join(kinds) if len(kinds) < 3 else 'entry'} is named {name!r}",
                      where="dltrain list --details", fix=suggest(name, names, "`dltrain list` shows them all."))
