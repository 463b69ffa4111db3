"""The MPI communicator: the communicator's meeting points over ``MPI_COMM_WORLD`` (mpi4py).

mpi4py is imported only here, and only when the process runs under an MPI launcher (``world``),
so dltrain without the ``mpi`` extra never needs it. Failure policy: a rank that raises calls
``abort(code)`` (MPI_Abort), which ends every rank of the job at once with that exit code, so
a data error on rank 1 ends the job with exit 3 instead of leaving rank 0 waiting in an
allreduce forever.
"""
import os

from dltrain.errors import ConfigError
from dltrain.parallel.communicator import Communicator, SingleProcess

INSTALL = "pip install 'dltrain[mpi]'"

# the launchers' own variables: MPICH/Hydra and Intel MPI, Open MPI, PMIx, MVAPICH, Slurm
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
