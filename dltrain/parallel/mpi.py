"""The MPI communicator: the communicator's meeting points over ``MPI_COMM_WORLD`` (mpi4py).

mpi4py is imported only here, and only when the process runs under an MPI launcher (``world``),
so dltrain without the ``mpi`` extra never needs it. Failure policy: a rank that raises calls
``abort(code)`` (MPI_Abort), which ends every rank of the job at once with that exit code, so
a data error on rank 1 ends the job with exit 3 instead of leaving rank 0 waiting in an
allreduce forever.
"""
import os
import sys

from dltrain.errors import ConfigError
from dltrain.parallel.communicator import Communicator, SingleProcess

INSTALL = "pip install 'dltrain[mpi]'"

# the launchers' own variables: MPICH/Hydra and Intel MPI, Open MPI, PMIx, MVAPICH (not Slurm's srun)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_size():
    """The world size an MPI launcher announced in the environment (1 when there is none)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


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

    def allreduce_sum(self, buffer):
        self.comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)

    def allgather(self, value):
        return self.comm.allgather(value)

    def any(self, flag):
        return bool(self.comm.allreduce(bool(flag), op=self._MPI.LOR))

    def broadcast(self, arrays):
        for key in sorted(arrays):          # the same order on every rank
            self.comm.Bcast(arrays[key], root=0)

    def abort(self, code):
        """End every rank of the job now with exit ``code``."""
        self.comm.Abort(code)


def world():
    """The communicator of this process: MPI under an MPI launcher of 2+ ranks, else one process."""
    if launched_size() > 1:
        return MPICommunicator()
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
