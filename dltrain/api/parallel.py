"""Data-parallel jobs (dltrain/parallel/): whether this process is one rank of a launched job,
its communicator, starting local workers, and ending every rank together."""


def launched():
    """Whether this process is one rank of a job an MPI launcher started with 2+ ranks."""
    from dltrain.parallel.mpi import launched_size

    return launched_size() > 1


def world():
    """This process's communicator: MPI's world under a launcher, else one process."""
    from dltrain.parallel.mpi import world as mpi_world

    return mpi_world()


def launch_workers(workers, fit_params, debug=False):
    """Run ``dltrain fit`` with ``fit_params`` (a fit command's parsed options) on ``workers``
    local ranks; the job's exit code."""
    from dltrain.device import refuse_with_workers
    from dltrain.parallel import launch

    refuse_with_workers(fit_params.get("device"), workers)      # before any rank starts
    return launch.launch(workers, launch.fit_arguments(fit_params, debug=debug))


def job_rank():
    """(rank, size) of this process in a data-parallel job that has started, else (0, 1)."""
    from dltrain.parallel.mpi import rank_of_job

    return rank_of_job()


def end_job(code):
    """On one rank of several: end every rank now with exit ``code``; nothing on one process."""
    from dltrain.parallel.mpi import abort_job

    abort_job(code)
