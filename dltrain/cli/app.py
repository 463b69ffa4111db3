"""The `dltrain` click group and what every command shares: context settings, `--set`, and the
mapping of errors to the contract's exit codes.

Heavy imports (numpy, rich, the catalogue) happen inside the commands, so `dltrain --help`
answers at once. Errors a user can cause print a message and exit with the contract's code; only
a bug (or --debug) shows a traceback.
"""
import functools
import sys

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def stderr():
    from rich.console import Console

    # soft_wrap: messages are not broken at 80 columns when stderr is a pipe or a log file
    return Console(stderr=True, highlight=False, soft_wrap=True)


def handle_errors(command):
    """Map DltrainError to its exit code and message; KeyboardInterrupt to 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return command(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except Exception as error:
            from dltrain.api import end_job, job_rank
            from dltrain.errors import DltrainError, Interrupted

            rank, size = job_rank()
            if isinstance(error, Interrupted) and rank > 0:
                sys.exit(error.exit_code)          # every rank stops together; rank 0 says why
            if isinstance(error, DltrainError) and not debug:
                stderr().print((f"rank {rank}: " if size > 1 else "") + error.render(), markup=False)
                end_job(error.exit_code)         # under data parallelism: end every rank now
                sys.exit(error.exit_code)
            if size > 1:                           # a bug on one rank: its traceback, then end the job
                import traceback

                traceback.print_exc()
                end_job(error.exit_code if isinstance(error, DltrainError) else 1)
            raise
        except KeyboardInterrupt:
            stderr().print("Interrupted.")
            sys.exit(130)

    return wrapper


def device_option(command):
    return click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]),
                        help="Where to compute (default: the config's `device:`, else cpu); cuda needs "
                             "pip install 'dltrain[cuda]' and an NVIDIA GPU.")(command)


def set_option(command):
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help="Override a config value, e.g. model.layers[1].units=128 (repeatable).")(command)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="dltrain")
@click.option("--debug", is_flag=True, help="Show a traceback for every error.")
def main(debug):
    """Train neural networks written in numpy from YAML config files.

    \b
    dltrain fit configs/digits_mlp.yaml        train; writes runs/NAME/
    dltrain evaluate runs/digits-mlp --json    score on the test split
    dltrain predict runs/digits-mlp x.csv      apply to new data
    """
