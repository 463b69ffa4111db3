"""Commands: list (the registry) and schema (the config's JSON Schema)."""
import click

from dltrain.cli import render
from dltrain.cli.app import CONTEXT, handle_errors


@click.command("list", context_settings=CONTEXT)
@click.argument("kind", required=False)
@click.option("--details", "details", metavar="NAME", help="The whole docstring of one entry.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON on stdout: {kind: [entry, ...]}, or one entry with --details.")
@handle_errors
def list_command(kind, details, as_json):
    """The registry: every layer, loss, optimizer, metric, callback, ... with its arguments."""
    from dltrain import api

    if details:
        found = api.describe(details, kind)
        if as_json:
            click.echo(render.json_text(found))
        else:
            render.console().print(describe(found), markup=False)
        return
    catalogue = api.catalogue(kind)
    if as_json:
        click.echo(render.json_text({k: [e.to_dict() for e in entries] for k, entries in catalogue.items()}))
        return
    console = render.console()
    for k, entries in catalogue.items():
        table = render.table(k, ("name", render.NAME), ("aliases", render.NAME), "arguments", "description")
        for e in entries:
            table.add_row(e.name, ", ".join(e.aliases), e.signature, e.description)
        console.print(table)


def describe(found):
    """The full text of one catalogue entry: kind, name, aliases, signature, docstring."""
    aliases = f" (aliases: {', '.join(found.aliases)})" if found.aliases else ""
    return (f"{found.kind} {found.name}{aliases}\n"
            f"  {{type: {found.name}, {found.signature.replace('=', ': ')}}}\n\n"
            f"{found.doc or '(no description)'}")


@click.command(context_settings=CONTEXT)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file.")
@handle_errors
def schema(output):
    """JSON Schema of a config, generated from the registry (for editors' YAML completion)."""
    import json

    from dltrain import api

    text = json.dumps(api.schema(), indent=1)
    if output:
        from pathlib import Path

        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


COMMANDS = [list_command, schema]
