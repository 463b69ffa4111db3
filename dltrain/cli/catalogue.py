"""Commands: list (the registry) and schema (the config's JSON Schema)."""
import click

from dltrain.cli.app import CONTEXT, handle_errors


def _console():
    from rich.console import Console

    return Console(highlight=False)


@click.command("list", context_settings=CONTEXT)
@click.argument("kind", required=False)
@click.option("--details", "details", metavar="NAME", help="The whole docstring of one entry.")
@handle_errors
def list_command(kind, details):
    """The registry: every layer, loss, optimizer, metric, callback, ... with its arguments."""
    from dltrain.config.catalogue_text import describe, entries, kinds_of

    console = _console()
    chosen = kinds_of(kind)
    if details:
        console.print(describe(chosen, details), markup=False)
        return
    from rich.table import Table

    for k in chosen:
        table = Table(title=k, title_justify="left")
        for column in ("name", "aliases", "arguments", "description"):
            table.add_column(column)
        for name, aliases, signature, line in entries(k):
            table.add_row(name, aliases, signature, line)
        console.print(table)


@click.command(context_settings=CONTEXT)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file.")
@handle_errors
def schema(output):
    """JSON Schema of a config, generated from the registry (for editors' YAML completion)."""
    import json

    from dltrain.config.schema import config_schema

    text = json.dumps(config_schema(), indent=1)
    if output:
        from pathlib import Path

        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


COMMANDS = [list_command, schema]
