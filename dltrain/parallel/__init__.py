"""Training over several processes: the communicator seam the training step calls.

``communicator.py`` holds the interface and ``SingleProcess`` (one process: every collective
does nothing); ``buffer.py`` the flat gradient buffer reduced with one allreduce per step;
``threads.py`` a test-only group that runs several ranks as threads of one process, so the seam
is tested without MPI. ``recurrent_helper.py`` and ``shared_memory.py`` are the recurrent
layers' helper process.
"""
from dltrain.parallel import buffer, communicator, threads  # noqa: F401
