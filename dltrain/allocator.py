"""The C allocator's tuning for numpy's large temporary arrays (glibc only; harmless elsewhere).

Used by every process that trains or times a model: ``api.fit``, ``api.time_layers`` and the
recurrent helper process. It sits low in the import order so each of them can call it.
"""


def tune():
    """Keep large freed blocks in the heap: returning them to the system and faulting them back
    in every step costs up to half an epoch on dense networks."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)   # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
