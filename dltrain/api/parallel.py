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
    local ranks; the job's exit code. Before any rank starts, the config is checked here as
    ``dltrain check`` checks it (reading no data) and on cuda the GPUs are counted (one per
    rank), so a mistake is one message with exit 2, not one per rank after the launch."""
    from dltrain.device import check_workers, choose
    from dltrain.parallel import launch

    checked = _checked_config(fit_params)
    document = checked.document if checked is not None else None
    device = choose(fit_params.get("device"), document.data.get("device") if document else None,
                    document.where(("device",)) if document else None)
    check_workers(device, workers)
    return launch.launch(workers, launch.fit_arguments(fit_params, debug=debug))


def _checked_config(fit_params):
    """The validated config a fit command names (CONFIG, or the run --resume names), checked
    for what this machine lacks as ``dltrain check`` does; None when there is none to check."""
    from dltrain.config.validate import validate
    from dltrain.feasibility import check_config
    from dltrain.training import resume as resuming

    config, resume = fit_params.get("config"), fit_params.get("resume")
    if config is None and resume and str(resume).endswith((".yaml", ".yml")):   # fit --resume CONFIG
        config = resume
    elif config is None and resume not in (None, "auto"):
        config = resuming.config_of(resume)
    if config is None:
        return None
    checked = validate(config, fit_params.get("overrides") or (), files=True)
    check_config(checked)
    return checked


def job_rank():
    """(rank, size) of this process in a data-parallel job that has started, else (0, 1)."""
    from dltrain.parallel.mpi import rank_of_job

    return rank_of_job()


def end_job(code):
    """On one rank of several: end every rank now with exit ``code``; nothing on one process."""
    from dltrain.parallel.mpi import abort_job

    abort_job(code)
