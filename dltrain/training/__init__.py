"""The training loop, its callbacks, checkpoints and the run directory."""
from dltrain.training import callbacks  # noqa: F401
