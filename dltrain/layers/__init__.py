"""Layers, one module per family; importing the package registers every layer."""
from dltrain.layers import core, merge  # noqa: F401
from dltrain.layers import conv, depthwise  # noqa: F401  (convnets)
