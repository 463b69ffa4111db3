"""Commands: plot (learning curves of runs)."""
import click

from dltrain.cli.app import CONTEXT, handle_errors


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Image to write (.png or .svg; default RUN/curves.png, or curves.png for several runs).")
@click.option("--terminal", is_flag=True, help="Draw in the terminal even when matplotlib is installed.")
@handle_errors
def plot(runs, output, terminal):
    """Learning curves of RUNS side by side: loss, each metric (train and validation), learning rate."""
    from dltrain import api

    path, text = api.plot(runs, output, terminal)
    if text is not None:
        click.echo(text)
        if not terminal:
            click.echo("\n(install matplotlib for an image: pip install 'dltrain[plot]')", err=True)
        return
    click.echo(f"wrote {path}")


COMMANDS = [plot]
