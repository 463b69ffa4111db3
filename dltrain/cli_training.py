"""Commands: plot (learning curves). Attached to the main group when cli.py is imported."""
from dltrain.cli import CONTEXT, handle_errors, main, set_option  # noqa: F401
