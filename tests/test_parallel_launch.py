"""The launching side of `fit --workers N`, without starting ranks: the environment each rank
gets, the config checked once before mpiexec starts, and which GPU a rank takes."""
from dltrain.parallel import launch


def test_ranks_get_the_mpi_runtime_memory_settings_unless_the_user_set_them():
    env = launch.rank_environment(2, {"PATH": "/bin"})
    for name, value in launch.MEMORY_SETTINGS.items():
        assert env[name] == value
    assert int(env["OPENBLAS_NUM_THREADS"]) >= 1
    mine = launch.rank_environment(2, {"UCX_MM_FIFO_SIZE": "256", "OMP_NUM_THREADS": "3"})
    assert mine["UCX_MM_FIFO_SIZE"] == "256"              # the user's value wins
    assert mine["OMP_NUM_THREADS"] == "3" and "OPENBLAS_NUM_THREADS" not in mine


def test_the_library_never_loads_the_test_only_thread_ranks():
    import subprocess
    import sys

    code = ("import sys, dltrain.api, dltrain.layers, dltrain.training.trainer, dltrain.parallel; "
            "print('dltrain.parallel.threads' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_srun_tasks_without_a_pmi_are_refused_with_the_srun_flag_to_use():
    import pytest

    from dltrain.errors import ConfigError
    from dltrain.parallel import mpi

    step = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "1", "SLURM_NTASKS": "4"}
    for extra, plugin in (({}, "'none'"), ({"PMIX_RANK": "1", "PMIX_NAMESPACE": "slurm.pmix.7.0"}, "'pmix'")):
        with pytest.raises(ConfigError, match=plugin) as caught:
            mpi.refuse_srun_without_pmi({**step, **extra})
        assert caught.value.exit_code == 2 and "srun --mpi=pmi2" in caught.value.fix
    mpi.refuse_srun_without_pmi({**step, "PMI_SIZE": "4", "PMI_RANK": "1", "PMI_FD": "5"})   # --mpi=pmi2
    assert mpi.launched_size({**step, "PMI_SIZE": "4"}) == 4
    mpi.refuse_srun_without_pmi({"SLURM_NTASKS": "4", "SLURM_PROCID": "0"})   # a batch script: one process
    mpi.refuse_srun_without_pmi({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"})


def _no_rank_may_start(monkeypatch):
    import pytest

    monkeypatch.setattr(launch, "launch", lambda *args: pytest.fail("mpiexec was started"))


def test_a_config_error_under_workers_is_found_once_before_any_rank_starts(cli, tmp_path, monkeypatch):
    import yaml
    from conftest import CONFIGS

    _no_rank_may_start(monkeypatch)
    config = yaml.safe_load((CONFIGS / "digits_mlp.yaml").read_text())
    config["optimizer"] = {"type": "adamm"}
    config["data"]["train"]["path"] = str((CONFIGS / config["data"]["train"]["path"]).resolve())
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    result = cli("fit", tmp_path / "bad.yaml", "--workers", "2", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert result.output.count("adamm") == 1 and "Traceback" not in result.output
    result = cli("fit", CONFIGS / "digits_mlp.yaml", "--set", "data.train.path=nowhere.npz", "--workers", "2",
                 "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and result.output.count("nowhere.npz") >= 1, result.output
    result = cli("fit", "--resume", tmp_path / "not-a-run", "--workers", "2")
    assert result.exit_code == 2 and "does not exist" in result.output, result.output
