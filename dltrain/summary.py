"""The per-layer table of a model: output shape, parameters, forward FLOPs, and memory.

Computed from a built model (shapes inferred, parameters allocated once at their real size) and
the configured optimizer and batch size; nothing is trained and no data is read.
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


@dataclass
class Summary:
    name: str
    input_shape: tuple
    rows: list = field(default_factory=list)
    batch_size: int = 32
    itemsize: int = 4
    optimizer: str = ""
    slots: int = 0      # optimizer arrays per parameter (momentum, moving averages, ...)

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
        activations = sum(int(np.prod(r.output_shape)) for r in self.rows) * self.batch_size * self.itemsize
        return {"parameters": params, "gradients": params, "optimizer": params * self.slots,
                "activations": activations,
                "total": params * (2 + self.slots) + activations}


def summarize(checked):
    """A Summary of a validated config (``dltrain.config.validate.Checked``)."""
    model = checked.model
    data = checked.document.data
    rows = []
    shapes = {"input": tuple(model.input_shape)}
    for node in model.nodes:
        layer = node.layer
        inputs = [shapes[name] for name in node.inputs]
        shape_in = inputs if layer.multi_input else inputs[0]
        shapes[node.name] = tuple(node.output_shape)
        kind = layer.registered_name
        if kind == "activation":
            kind = f"activation({layer.function_name})"
        rows.append(Row(node.name, kind, list(node.inputs), tuple(node.output_shape),
                        int(sum(np.size(p) for p in layer.params.values())),
                        int(layer.flops(shape_in, tuple(node.output_shape)) or 0)))
    optimizer = checked.optimizer
    return Summary(
        name=str(data.get("name")), input_shape=tuple(model.input_shape), rows=rows,
        batch_size=int((data.get("training") or {}).get("batch_size", 32)),
        itemsize=np.dtype(model.dtype).itemsize,
        optimizer=getattr(optimizer, "registered_name", ""),
        slots=len(getattr(optimizer, "slot_names", ())))


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
