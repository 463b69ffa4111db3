"""Layers, one module per family; importing the package registers every layer."""
from dltrain.layers import core, merge  # noqa: F401
