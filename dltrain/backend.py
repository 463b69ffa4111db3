"""The array module and the dtype policy.

Layers take their array module from their input (``xp = array_module(x)``) so the same code runs
on cupy arrays; parameters are created on the host with numpy and moved once (dltrain/device.py).
Which device a run uses is chosen here: ``cpu``, ``cuda`` (cupy, which must import and see a GPU)
or ``auto`` (cuda when it can be had, else cpu).
"""
import numpy as np

from dltrain.errors import ConfigError

DTYPES = {"float32": np.float32, "float64": np.float64}
DEVICES = ("cpu", "cuda", "auto")
INSTALL = "pip install 'dltrain[cuda]'"

#: array types other than numpy's -> their array module (cupy's is added when first seen; the
#: test suite's strict fake device registers its own)
_MODULES = {}


def register_array_type(array_type, module):
    """Make ``array_module`` answer ``module`` for arrays of ``array_type``."""
    _MODULES[array_type] = module


def array_module(x):
    """numpy, or the module of a device array (cupy for a cupy array)."""
    kind = type(x)
    if kind is np.ndarray:
        return np
    module = _MODULES.get(kind)
    if module is not None:
        return module
    if kind.__module__.startswith("cupy"):
        import cupy

        register_array_type(kind, cupy)
        return cupy
    return np


def on_host(x):
    """True for numpy arrays and scalars (no move needed to read them)."""
    return array_module(x) is np


def to_host(x):
    """A numpy copy of a device array (an explicit device -> host move); numpy input as it is."""
    xp = array_module(x)
    return x if xp is np else xp.asnumpy(x)


def like(host, x):
    """``host`` (a numpy array) on the device where ``x`` lives: an explicit host -> device move."""
    xp = array_module(x)
    return host if xp is np else xp.asarray(host)


def synchronize(x):
    """Wait until the device that holds ``x`` has finished its queued work (for timing); nothing
    on the host."""
    xp = array_module(x[0] if isinstance(x, (list, tuple)) else x)
    if xp is not np and hasattr(xp, "cuda"):
        xp.cuda.get_current_stream().synchronize()


def dtype_of(precision):
    """The numpy dtype for a ``precision`` name (float32 or float64)."""
    return np.dtype(DTYPES[precision])


# -- choosing a device -------------------------------------------------------------------------

def find_cupy():
    """(the cupy module or None, why not as a sentence)."""
    try:
        import cupy
    except ImportError as error:
        return None, f"CuPy is not installed ({error})"
    except Exception as error:            # a broken install raises more than ImportError
        return None, f"CuPy could not be imported ({type(error).__name__}: {error})"
    try:
        available = bool(cupy.is_available())
    except Exception as error:            # e.g. CUDARuntimeError without a driver
        return None, f"CuPy sees no usable GPU ({type(error).__name__}: {error})"
    if not available:
        return None, "CuPy is installed but sees no usable GPU (cupy.is_available() is False)"
    return cupy, None


def resolve_device(device, where=None):
    """'cpu' or 'cuda' for a requested ``cpu``, ``cuda`` or ``auto``; ConfigError when cuda cannot be had."""
    if device is None:
        return "cpu"
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}", where=where, expected="cpu, cuda or auto")
    if device == "cpu":
        return "cpu"
    cupy, why = find_cupy()
    if cupy is None:
        if device == "auto":
            return "cpu"
        installed = not why.startswith("CuPy is not installed")
        fix = (f"check the NVIDIA driver (nvidia-smi) and that CuPy matches its CUDA version "
               f"({INSTALL} installs cupy-cuda12x), or use --device cpu" if installed else
               f"install the GPU extra: {INSTALL} (needs an NVIDIA GPU with CUDA 12 drivers), "
               "or use --device cpu")
        raise ConfigError(f"device 'cuda' was asked for, but {why}", where=where, fix=fix)
    return "cuda"


def device_module(device):
    """The array module for a resolved device name: numpy for cpu, cupy for cuda."""
    if device == "cpu":
        return np
    cupy, why = find_cupy()
    if cupy is None:
        raise ConfigError(f"device 'cuda' is not usable: {why}", fix=f"{INSTALL}, or use --device cpu")
    register_array_type(cupy.ndarray, cupy)
    return cupy
