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
