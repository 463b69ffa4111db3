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

SRUN = ("srun --mpi=pmi2 dltrain fit ... (Slurm's PMI-2, which MPICH's mpi4py speaks), or mpiexec -n N "
        "dltrain fit ... inside the allocation; --ntasks=1 for one process")


def launched_size(environ=None):
    """The world size an MPI launcher announced in the environment (1 when there is none)."""
    environ = os.environ if environ is None else environ
    for name in _SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


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


def mpi4py():
    """The mpi4py.MPI module, or a ConfigError that names the install command."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ConfigError(f"training on several processes needs mpi4py, which is not installed "
                          f"({error})", fix=f"{INSTALL}  (mpi4py and the MPICH wheel)") from None
    return MPI


class MPICommunicator(Communicator):
    """Every rank of ``MPI_COMM_WORLD``: one Allreduce per step on the flat gradient buffer."""

    def __init__(self, comm=None):
        MPI = mpi4py()
        self._MPI = MPI
        self.comm = comm or MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._local = None

    def allreduce_sum(self, buffer):
        through_host(buffer, lambda host: self.comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM))

    def allgather(self, value):
        return self.comm.allgather(value)

    def any(self, flag):
        return bool(self.comm.allreduce(bool(flag), op=self._MPI.LOR))

    def broadcast(self, arrays):
        for key in sorted(arrays):          # the same order on every rank
            through_host(arrays[key], lambda host: self.comm.Bcast(host, root=0))

    def exchange(self, send, send_counts, recv_counts):
        received = np.empty(sum(recv_counts), np.uint8)
        self.comm.Alltoallv([send, (send_counts, _offsets(send_counts)), self._MPI.BYTE],
                            [received, (recv_counts, _offsets(recv_counts)), self._MPI.BYTE])
        return received

    def local(self):
        """The ranks that share this machine's memory (MPI_COMM_TYPE_SHARED): whatever started
        the job (mpiexec, srun, a hostfile), rank r of it is the node-local rank."""
        if self._local is None:
            self._local = MPICommunicator(self.comm.Split_type(self._MPI.COMM_TYPE_SHARED))
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
    """(rank, size) of this process in an MPI job that has started, else (0, 1)."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized():
        return 0, 1
    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def abort_job(code):
    """On one rank of a job of several: end every rank now with exit ``code`` (MPI_Abort), so
    the others never wait for this one in a collective. Does nothing on one process."""
    if rank_of_job()[1] > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(code)
