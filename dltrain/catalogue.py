"""Imports every module that registers classes, so the registries hold the whole catalogue.

Imported by what takes a spec of any kind (config checking, the schema, ``dltrain list``, api).
"""
from dltrain import activations, initializers, layers, losses, metrics, optimizers  # noqa: F401
from dltrain import regularizers, schedules  # noqa: F401,E402
from dltrain.training import callbacks  # noqa: F401,E402
from dltrain import data  # noqa: F401,E402  (sources, preprocessing)
