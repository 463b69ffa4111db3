"""Elementwise passes split over the batch across threads, for the cores BLAS does not use.

numpy runs a ufunc or a copy on one core, whatever the BLAS thread count; it releases the GIL
inside the loop, though, so the same pass over two halves of the batch runs on two cores from two
Python threads. ``over_batch`` does that for passes large enough to pay for the hand-over (about
20 microseconds): max pooling, im2col and col2im of a convnet's first layers.

Each part computes its own rows of the batch with the same operations as one pass over all of it,
so the result is bit-for-bit the same for any number of threads. Only elementwise work goes
here: a reduction over the batch would change its summation order, and a BLAS call would fight
BLAS's own threads.

The thread count is BLAS's (``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``, else the cores), so
one setting governs both; inside ``blas.single_thread()`` passes run in one piece.
"""
import concurrent.futures
import threading

from dltrain import blas

#: below this many elements in a pass, one thread is faster than handing half of it over
MIN_ELEMENTS = 1 << 16

_executor = None
_lock = threading.Lock()


def threads():
    """How many parts a large pass is split into: BLAS's thread count (1 when unknown)."""
    return blas.threads() or 1


def _pool(workers):
    global _executor
    with _lock:
        if _executor is None or _executor._max_workers < workers:
            _executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dltrain")
        return _executor


def over_batch(part, batch, elements):
    """Call ``part(rows)`` for slices ``rows`` that cover range(batch), on up to ``threads()``
    threads at once (this thread takes the first slice); return when all have finished.

    ``elements`` is the size of the pass (what decides whether splitting pays). ``part`` must
    write only the rows it is given. An exception in any part is raised here.
    """
    count = min(threads(), batch)
    if count < 2 or elements < MIN_ELEMENTS or threading.current_thread().name.startswith("dltrain"):
        part(slice(0, batch))
        return
    bounds = [batch * k // count for k in range(count + 1)]
    slices = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    futures = [_pool(count - 1).submit(part, rows) for rows in slices[1:]]
    try:
        part(slices[0])
    finally:
        for future in futures:
            future.result()
