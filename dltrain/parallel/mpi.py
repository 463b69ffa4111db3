"""The MPI communicator: the communicator's meeting points over ``MPI_COMM_WORLD`` (mpi4py).

mpi4py is imported only here, and only when the process runs under an MPI launcher (``world``),
so dltrain without the ``mpi`` extra never needs it. Failure policy: a rank that raises calls
``abort(code)`` (MPI_Abort), which ends every rank of the job at once with that exit code, so
a data error on rank 1 ends the job with exit 3 instead of leaving rank 0 waiting in an
allreduce forever.
"""
import os
import sys

import numpy as np

from dltrain.errors import ConfigError
from dltrain.parallel.communicator import Communicator, SingleProcess, through_host

INSTALL = "pip install 'dltrain[mpi]'"

# the launchers' own variables: MPICH/Hydra and Intel MPI, Open MPI, PMIx, MVAPICH; Slurm's srun
# sets PMI_SIZE too with --mpi=pmi2 (its PMI-2 plugin also serves MPICH's PMI-1 client)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")

SRUN = ("srun --mpi=pmi2 dltrain fit ... (Slurm's PMI-2, which MPICH's mpi4py speaks), or mpiexec -n N "
        "dltrain fit ... inside the allocation; --ntasks=1 for one process")


def launched_size(environ=None):
    """The world size an MPI launcher announced in the environment (1 when there is none)."""
    size = _announced(_SIZE_VARIABLES, environ)
    return 1 if size is None else size


def launched_rank(environ=None):
    """This process's rank as the MPI launcher announced it in the environment, or None."""
    return _announced(_RANK_VARIABLES, environ)


def _announced(names, environ=None):
    """The first of the launchers' variables ``names`` set to a number, as an int, or None."""
    environ = os.environ if environ is None else environ
    for name in names:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def refuse_srun_without_pmi(environ=None):
    """A ConfigError when Slurm's srun started this process as one task of several but gave it
    no PMI the MPI library can join (``srun`` with --mpi=none or pmix): each task would train
    alone, every one of them into the same run directory."""
    environ = os.environ if environ is None else environ
    tasks = environ.get("SLURM_STEP_NUM_TASKS", "")
    if tasks.isdigit() and int(tasks) > 1 and "SLURM_PROCID" in environ and launched_size(environ) == 1:
        plugin = "pmix" if "PMIX_RANK" in environ else "none"
        raise ConfigError(f"srun started {tasks} tasks without a process manager interface MPICH can "
                          f"use (the {plugin!r} MPI plugin), so each task would train alone",
                          fix=SRUN)


_DEFERRED = []      # the communicators created before MPI started (rank_of_job, abort_job)


def _importable():
    """A ConfigError naming the install command unless mpi4py can be imported (not importing it:
    that would start MPI)."""
    import importlib.util

    if importlib.util.find_spec("mpi4py") is None:
        raise ConfigError("training on several processes needs mpi4py, which is not installed",
                          fix=f"{INSTALL}  (mpi4py and the MPICH wheel)")


def mpi4py():
    """The mpi4py.MPI module, or a ConfigError that names the install command."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ConfigError(f"training on several processes needs mpi4py, which is not installed "
                          f"({error})", fix=f"{INSTALL}  (mpi4py and the MPICH wheel)") from None
    return MPI


class MPICommunicator(Communicator):
    """Every rank of ``MPI_COMM_WORLD``: one Allreduce per step on the flat gradient buffer.

    When the launcher announced this process's rank and the world's size (``launched_rank``,
    ``launched_size``), MPI itself starts at the first collective, not here: a fit loads its data
    and spreads it over the ranks (parallel/shards.py) before the MPI runtime takes its own
    memory (~12 MiB a process), so a rank's peak is not the loading peak plus the runtime."""

    def __init__(self, comm=None):
        self._comm, self._local = comm, None
        rank, size = launched_rank(), launched_size()
        if comm is None and rank is not None and size > 1:
            _importable()
            self.rank, self.size = rank, size
            _DEFERRED.append(self)            # this process is a rank of a job, MPI not started yet
        else:
            self._start()

    def _start(self):
        self._MPI = mpi4py()
        self._comm = self._comm or self._MPI.COMM_WORLD
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()

    @property
    def comm(self):
        """The mpi4py communicator; MPI starts on first use (MPI_Init, once every rank is here)."""
        if self._comm is None:
            self._start()
        return self._comm

    @property
    def MPI(self):
        """The mpi4py.MPI module (MPI started first if it has not)."""
        if self._comm is None:
            self._start()
        return self._MPI

    def allreduce_sum(self, buffer):
        through_host(buffer, lambda host: self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM))

    def allgather(self, value):
        return self.comm.allgather(value)

    def any(self, flag):
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def broadcast(self, arrays):
        for key in sorted(arrays):          # the same order on every rank
            through_host(arrays[key], lambda host: self.comm.Bcast(host, root=0))

    def exchange(self, send, send_counts, recv_counts):
        received = np.empty(sum(recv_counts), np.uint8)
        self.comm.Alltoallv([send, (send_counts, _offsets(send_counts)), self.MPI.BYTE],
                            [received, (recv_counts, _offsets(recv_counts)), self.MPI.BYTE])
        return received

    def local(self):
        """The ranks that share this machine's memory (MPI_COMM_TYPE_SHARED): whatever started
        the job (mpiexec, srun, a hostfile), rank r of it is the node-local rank."""
        if self._local is None:
            self._local = MPICommunicator(self.comm.Split_type(self.MPI.COMM_TYPE_SHARED))
        return self._local

    def abort(self, code):
        """End every rank of the job now with exit ``code``."""
        self.comm.Abort(code)


def _offsets(counts):
    return np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64).tolist()


def world():
    """The communicator of this process: MPI under an MPI launcher of 2+ ranks, else one process
    (refused when srun started several tasks with no PMI: ``refuse_srun_without_pmi``)."""
    if launched_size() > 1:
        return MPICommunicator()
    refuse_srun_without_pmi()
    return SingleProcess()


def rank_of_job():
    """(rank, size) of this process in an MPI job (started, or one whose communicator exists and
    will start MPI at its first collective), else (0, 1): a command that never joins the job
    (``evaluate`` under mpiexec) is a process of its own."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    if MPI is None and _DEFERRED:
        return _DEFERRED[0].rank, _DEFERRED[0].size
    return 0, 1


def abort_job(code):
    """On one rank of a job of several: end every rank now with exit ``code`` (MPI_Abort), so
    the others never wait for this one in a collective. Does nothing on one process. A rank that
    fails before MPI has started (loading its data) starts it first: MPI_Init returns once every
    rank has reached it, so the job ends when the slowest rank has loaded its data."""
    if rank_of_job()[1] > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            from mpi4py import MPI
        except ImportError:
            return
        MPI.COMM_WORLD.Abort(code)
