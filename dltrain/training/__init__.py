"""The training loop, its callbacks, checkpoints and the run directory."""
from dltrain import metrics, schedules  # noqa: F401  (the trainer and callbacks build them by name)
from dltrain.training import callbacks  # noqa: F401
