"""The C heap's tuning for training: large freed blocks stay in the process."""


def tune():
    """Keep large freed blocks in the heap: returning them to the system and faulting them back
    in every step costs up to half an epoch on dense networks (glibc only; harmless elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)   # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
