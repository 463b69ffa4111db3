"""Imports every module that registers classes, so the registries hold the whole catalogue."""
from dltrain import activations, initializers, layers, losses, metrics, optimizers  # noqa: F401
