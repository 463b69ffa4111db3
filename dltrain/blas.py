"""The thread count of numpy's OpenBLAS, for code that runs many small products in a loop.

numpy has no API for it, but the OpenBLAS it loads exports a set/get-num-threads pair (numpy 2.x
wheels: ``scipy_openblas_set_num_threads64_``; older builds: ``openblas_set_num_threads``). The
library is found among the shared objects this process has loaded (/proc/self/maps, as
threadpoolctl does, without the dependency). Where none is found, ``single_thread`` does nothing.
"""
import contextlib
import ctypes
import functools

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


@functools.lru_cache(maxsize=1)
def _library():
    """The loaded OpenBLAS (ctypes), or None."""
    import numpy  # noqa: F401  (loads its BLAS)

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(library, f"{p}_set_num_threads{x}") for p in _PREFIXES for x in _SUFFIXES):
            return library
    return None


@functools.lru_cache(maxsize=1)
def _functions():
    """(set_num_threads, get_num_threads) of the loaded OpenBLAS, or None."""
    library = _library()
    if library is None:
        return None
    for prefix in _PREFIXES:
        for suffix in _SUFFIXES:
            setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def stop_workers():
    """Make OpenBLAS's worker threads exit now rather than spin on their cores for ~0.1 s after
    the last product (2**28 cycles), so another process can have those cores; the next
    multi-threaded product starts them again (about 0.1 ms). Call it inside ``single_thread``
    (measured: called just before it, one half of the LSTM benchmark's backward loops ran at
    about half speed)."""
    library = _library()
    shutdown = None if library is None else getattr(library, "blas_thread_shutdown_", None)
    if shutdown is not None:
        shutdown()


def threads():
    """OpenBLAS's current thread count, or None when it cannot be read."""
    functions = _functions()
    return None if functions is None else functions[1]()


@contextlib.contextmanager
def single_thread():
    """Run the block with one BLAS thread (small products pay more in threading than they gain)."""
    functions = _functions()
    before = None if functions is None else functions[1]()
    if before is None or before == 1:
        yield
        return
    functions[0](1)
    try:
        yield
    finally:
        functions[0](before)
