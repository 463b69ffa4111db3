"""The command line: thin click commands over dltrain.api, one module per command group.

Each module below defines its commands and lists them in ``COMMANDS``; registering a new group is
adding its module to the import and to ``GROUPS`` (``python -m dltrain`` and the ``dltrain``
console script both run ``main``).
"""
from dltrain.cli import catalogue, data, inspection, plot, runs, sweep, training
from dltrain.cli.app import main

GROUPS = (training, inspection, catalogue, data, plot, sweep, runs)

for _group in GROUPS:
    for _command in _group.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
