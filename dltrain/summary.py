"""The per-layer table of a model as the user wrote it: output shape, parameters, FLOPs, memory.

One row per entry of ``model.layers``, in the config's order and with the user's names: a layer
with the ``activation`` shorthand is one row, whatever nodes it became and however the graph
passes rewrote them (``passes`` lists those, for ``dltrain summary --passes``). Computed from a
validated config, whose model has its shapes inferred and holds no parameter arrays; nothing is
trained and no data is read.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain.errors import ConfigError


@dataclass
class Row:
    name: str
    type: str
    inputs: list
    output_shape: tuple
    params: int
    flops: int          # forward, per sample; a multiply-add counts as two
    activation: str = None   # the activation shorthand (or an activation layer's function)

    @property
    def kind(self):
        """The type as a table shows it: 'conv2d (relu)'."""
        return f"{self.type} ({self.activation})" if self.activation else self.type


@dataclass
class Summary:
    name: str
    input_shape: tuple
    rows: list = field(default_factory=list)
    batch_size: int = 32
    itemsize: int = 4
    optimizer: str = ""
    slots: int = 0      # optimizer arrays per parameter (momentum, moving averages, ...)
    activation_values: int = 0   # values per sample of every node's output (kept for backward)
    passes: list = None          # passes.describe(model), when asked for

    @property
    def params(self):
        return sum(r.params for r in self.rows)

    @property
    def flops(self):
        return sum(r.flops for r in self.rows)

    @property
    def memory(self):
        """Bytes of parameters, their gradients, optimizer state and activations (one batch)."""
        params = self.params * self.itemsize
        activations = self.activation_values * self.batch_size * self.itemsize
        return {"parameters": params, "gradients": params, "optimizer": params * self.slots,
                "activations": activations,
                "total": params * (2 + self.slots) + activations}


def summarize(checked, passes=False):
    """A Summary of a validated config (``dltrain.config.validate.Checked``); with ``passes``,
    also what each graph pass rewrote."""
    model = checked.model
    data = checked.document.data
    shapes = {"input": tuple(model.input_shape)}
    for node in model.graph:
        shapes[node.name] = tuple(node.output_shape)
    rows = [_row(entry, shapes) for entry in model.layers]
    optimizer = checked.optimizer
    described = None
    if passes:
        from dltrain.model import passes as graph_passes

        described = graph_passes.describe(model)
    return Summary(
        name=str(data.get("name")), input_shape=tuple(model.input_shape), rows=rows,
        batch_size=int(data["training"]["batch_size"]),        # resolved: the default is filled in
        itemsize=np.dtype(model.dtype).itemsize,
        optimizer=getattr(optimizer, "registered_name", ""),
        slots=len(getattr(optimizer, "slot_names", ())),
        activation_values=sum(int(np.prod(node.output_shape)) for node in model.graph),
        passes=described)


def _row(entry, shapes):
    """The row of one layer as written: its nodes' parameters and FLOPs together."""
    params = flops = 0
    for node in entry.nodes:
        layer = node.layer
        inputs = [shapes[name] for name in node.inputs]
        params += int(sum(np.size(p) for p in layer.params.values()))
        flops += int(layer.flops(inputs if layer.multi_input else inputs[0], tuple(node.output_shape)) or 0)
    activation = entry.activation
    if entry.type == "activation":
        activation = entry.layer.function_name
    return Row(entry.name, entry.type, list(entry.inputs), tuple(entry.output_shape), params, flops,
               activation)


def config_of(target):
    """The config path (or Document) behind CONFIG, a run directory or a checkpoint file."""
    path = Path(target)
    if path.is_dir():
        if (path / "config.yaml").is_file():
            return path / "config.yaml"
        raise ConfigError(f"{str(path)!r} is a folder without a config.yaml",
                          fix="give a config file or a run directory written by `dltrain fit`.")
    if path.suffix == ".npz" and path.is_file():
        from dltrain.config.loader import parse
        from dltrain.config.resolve import dump
        from dltrain.training import checkpoint

        _, meta = checkpoint.load(path)
        return parse(dump(meta["config"]), str(path))
    return path


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def human_count(n):
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
