"""`dltrain export` (ONNX, safetensors) and `dltrain ensemble`."""
import click

from dltrain.cli.app import CONTEXT, handle_errors


@click.command(context_settings=CONTEXT)
@click.argument("run", type=click.Path())
@click.option("--format", "format_", type=click.Choice(["onnx", "safetensors"]), default="onnx", show_default=True,
              help="onnx: the model with its preprocessing, for onnxruntime; safetensors: the weights.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The file to write (default RUN/model.FORMAT).")
@click.option("--checkpoint", default="best", show_default=True, help="best, last or a checkpoint file.")
@handle_errors
def export(run, format_, output, checkpoint):
    """Write a trained RUN as an ONNX model or a safetensors file of its weights."""
    from dltrain import api

    path = api.export(run, format_, output, checkpoint)
    click.echo(f"wrote {path}")


COMMANDS = [export]
