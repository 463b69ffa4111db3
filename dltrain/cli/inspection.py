"""Commands: check, summary, gradcheck and time (a config's model, inspected without training)."""
import click

from dltrain.cli import render
from dltrain.cli.app import CONTEXT, device_option, handle_errors, set_option

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object on stdout instead of the table.")


@click.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--quiet", is_flag=True, help="Print nothing on success (the exit code says it).")
@json_option
@handle_errors
def check(config, overrides, quiet, as_json):
    """Validate CONFIG and infer every shape; train nothing, read no data (exit 0 or 2).

    With --json, stdout holds {"valid": true, "model": ...} or {"valid": false, "errors": [...]}."""
    from dltrain import api
    from dltrain.errors import DltrainError

    try:
        summary = api.check(config, overrides)
    except DltrainError as error:
        if as_json:
            click.echo(render.json_text({"config": config, "valid": False, "errors": error_records(error)}))
        raise
    if as_json:
        click.echo(render.json_text({"config": config, "valid": True, "model": summary_record(summary)}))
    elif not quiet:
        console = render.console()
        print_summary(console, summary)
        console.print(f"[green]ok[/green]: {config} is valid")


def error_records(error):
    """One dict per problem of a DltrainError (a ConfigErrors holds several)."""
    return [{"kind": e.label, "message": e.message, "where": None if e.where is None else str(e.where),
             "expected": e.expected, "fix": e.fix} for e in getattr(error, "errors", [error])]


@click.command(context_settings=CONTEXT)
@click.argument("target", metavar="CONFIG|RUN", type=click.Path())
@set_option
@click.option("--passes", "passes", is_flag=True, help="Also list the graph passes and what each rewrote.")
@json_option
@handle_errors
def summary(target, overrides, passes, as_json):
    """Per-layer table of a config or a run: output shape, parameters, FLOPs, memory."""
    from dltrain import api

    result = api.summary(target, overrides, passes=passes)
    if as_json:
        click.echo(render.json_text(summary_record(result)))
        return
    console = render.console()
    print_summary(console, result)
    for graph_pass in result.passes or ():
        rewrites = graph_pass["rewrites"] or ["(nothing in this model)"]
        console.print(f"[bold]{graph_pass['name']}[/bold]: {graph_pass['description']}", highlight=False)
        for note in rewrites if graph_pass["enabled"] else ["(off)"]:
            console.print(f"  {note}", highlight=False)


def summary_record(summary):
    """A ``summary.Summary`` as JSON's types: the layers, their totals and the memory estimate."""
    return {"name": summary.name, "input_shape": list(summary.input_shape),
            "layers": [{"name": r.name, "type": r.type, "activation": r.activation, "inputs": list(r.inputs),
                        "output_shape": list(r.output_shape), "params": r.params, "flops": r.flops}
                       for r in summary.rows],
            "params": summary.params, "flops": summary.flops, "batch_size": summary.batch_size,
            "optimizer": summary.optimizer, "memory": summary.memory,
            **({"passes": summary.passes} if summary.passes is not None else {})}


def print_summary(console, summary):
    from dltrain.summary import human_bytes, human_count

    table = render.table(f"{summary.name}  input {summary.input_shape}", ("layer", render.NAME),
                         ("type", render.NAME), "inputs", "output shape", ("params", render.RIGHT),
                         ("FLOPs", render.RIGHT))
    for row in summary.rows:
        table.add_row(row.name, row.kind + (" (frozen)" if row.frozen else ""), ", ".join(row.inputs),
                      str(row.output_shape), f"{row.params:,}", human_count(row.flops))
    table.add_section()
    table.add_row("total", "", "", "", f"{summary.params:,}", human_count(summary.flops))
    console.print(table)
    console.print(f"parameters: {summary.trainable_params:,} trainable, {summary.frozen_params:,} frozen")
    memory = summary.memory
    console.print(
        f"memory at batch size {summary.batch_size}: parameters {human_bytes(memory['parameters'])}, "
        f"gradients {human_bytes(memory['gradients'])}, optimizer {summary.optimizer} "
        f"{human_bytes(memory['optimizer'])}, activations {human_bytes(memory['activations'])}; "
        f"total {human_bytes(memory['total'])}")


@click.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1),
              help="Samples in the random batch.")
@click.option("--elements", default=30, show_default=True, type=click.IntRange(min=1),
              help="Elements checked per parameter array (all, when it has fewer).")
@handle_errors
def gradcheck(config, overrides, batch_size, elements):
    """Compare every parameter's gradient with central differences, in float64 (exit 0 or 1)."""
    from dltrain import api

    checks = api.gradcheck(config, overrides, batch_size, elements)
    table = render.table(f"{config}: relative error of each gradient (float64)", ("layer", render.NAME),
                         ("type", render.NAME), "worst", "per parameter", "at kinks")
    worst = 0.0
    for item in checks:
        worst = max(worst, item.worst)
        mark = "green" if item.worst < 1e-6 else "red"
        table.add_row(item.name, item.type, f"[{mark}]{item.worst:.2e}[/{mark}]",
                      ", ".join(f"{k} {v:.1e}" for k, v in item.errors.items()),
                      str(item.skipped) if item.skipped else "")
    console = render.console()
    console.print(table)
    console.print(f"worst relative error: {worst:.2e} ({'ok' if worst < 1e-6 else 'above 1e-6'})")
    if worst >= 1e-6:
        raise SystemExit(1)


@click.command("time", context_settings=CONTEXT)
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per batch (default: the config's).")
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(min=1),
              help="Timed passes; the median is shown.")
@device_option
@handle_errors
def time_command(config, overrides, batch_size, iterations, device):
    """Forward and backward milliseconds per layer for one batch (reads no data)."""
    from dltrain import api

    timed = api.time_layers(config, overrides, batch_size, iterations, device=device)
    table = render.table(f"{config}: batch {timed.batch_size}, median of {timed.iterations} passes "
                         "(training mode)", ("layer", render.NAME), ("type", render.NAME), "output shape",
                         ("forward ms", render.RIGHT), ("backward ms", render.RIGHT), "graph passes")
    for row in timed.rows:
        passes = ", ".join(row.passes)
        if row.runs_in:                     # folded into another layer: its time is counted there
            table.add_row(row.name, row.type, str(row.output_shape), "-", "-", f"computed in {row.runs_in} ({passes})")
        else:
            table.add_row(row.name, row.type, str(row.output_shape), f"{row.forward_ms:.3f}",
                          f"{row.backward_ms:.3f}", passes)
    forward, backward = sum(r.forward_ms for r in timed.rows), sum(r.backward_ms for r in timed.rows)
    table.add_row("total", "", "", f"{forward:.3f}", f"{backward:.3f}", "", style="bold")
    render.console().print(table)
    if any(row.passes for row in timed.rows):
        render.console().print("graph passes rewrote how the marked layers compute "
                               "(`dltrain summary --passes` says what each did)")


COMMANDS = [check, summary, gradcheck, time_command]
