"""Training over several processes: the communicator seam the training step calls.

``communicator.py`` holds the interface and ``SingleProcess`` (one process: every collective
does nothing); ``buffer.py`` the flat gradient buffer reduced with one allreduce per step;
``mpi.py`` the MPI communicator (mpi4py, imported only under an MPI launcher); ``launch.py``
``fit --workers N``; ``replicas.py`` what keeps the ranks' replicas equal; ``shards.py`` the
in-memory data spread over the ranks (1/N of the rows each, a batch gathered by one
all-to-all); ``threads.py`` a test-only group that runs several ranks as threads of one
process, so the seam is tested without MPI. ``recurrent_helper.py`` and ``shared_memory.py``
are the recurrent layers' helper process.

Nothing is imported here: each module is imported by name where it is used (the test-only
``threads`` never loads with the library).
"""
