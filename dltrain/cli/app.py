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
            from dltrain.errors import DltrainError

            if isinstance(error, DltrainError) and not debug:
                stderr().print(error.render(), markup=False)
                sys.exit(error.exit_code)
            raise
        except KeyboardInterrupt:
            stderr().print("Interrupted.")
            sys.exit(130)

    return wrapper


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
