"""The array module and the dtype policy.

Layers take their array module from their input (``xp = array_module(x)``) so the same code can
run on cupy arrays; parameters are created on the host with numpy.
"""
import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def array_module(x):
    """numpy, or cupy when ``x`` is a cupy array."""
    module = type(x).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy
    return np


def dtype_of(precision):
    """The numpy dtype for a ``precision`` name (float32 or float64)."""
    return np.dtype(DTYPES[precision])
