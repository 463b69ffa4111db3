"""Imports every module that registers classes, so the registries hold the whole catalogue."""
from dltrain import activations, initializers, layers, losses, metrics, optimizers  # noqa: F401
from dltrain import regularizers, schedules  # noqa: F401,E402
from dltrain.training import callbacks  # noqa: F401,E402
from dltrain import data  # noqa: F401,E402  (sources, preprocessing)
