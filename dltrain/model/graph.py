"""The graph as written: layer specs -> nodes, in the user's order, with the user's names.

A layer without ``inputs`` takes the previous layer's output, so a sequential model is the simple
case of a graph. ``{type: dense, units: 64, activation: relu}`` becomes two nodes, the dense
layer and an activation layer named ``<name>_relu``; the user's name refers to the activation's
output, as in Keras. Each spec also gives one ``Written`` entry, which is what ``summary`` and
error messages show: the layer as the user wrote it, whatever the passes later do to the nodes.
"""
from dataclasses import dataclass, field

from dltrain import check
from dltrain.errors import ConfigError
from dltrain.registry import build, registry, split_spec, suggest

#: keys of a layer spec that the model reads; the rest are the layer's constructor arguments
NODE_KEYS = ("name", "inputs", "activation", "kernel_regularizer", "bias_regularizer")
INPUT = "input"


class Node:
    """One layer of the graph: its name (the key of its parameters), the names it reads."""

    def __init__(self, name, layer, inputs, where, written=None):
        self.name = name
        self.layer = layer
        self.inputs = inputs
        self.where = where
        self.output_shape = None
        self.written = written           # the Written entry it comes from

    @property
    def label(self):
        """How messages name it: the layer as written ('conv2d_1', or "conv2d_1's relu")."""
        if self.written is None or self.written.nodes[0].name == self.name:
            return repr(self.name)
        return f"{self.written.name!r} (its {self.layer.function_name} activation)"

    def copy(self):
        node = Node(self.name, self.layer, list(self.inputs), self.where, self.written)
        node.output_shape = self.output_shape
        return node

    def __repr__(self):
        return f"<Node {self.name} <- {', '.join(self.inputs)}>"


@dataclass
class Written:
    """One entry of ``model.layers`` as the config wrote it."""

    index: int
    name: str                    # the user's name, or the default (conv2d_1, dense_2, ...)
    type: str                    # the registered type
    inputs: list                 # the names it reads, as written
    where: str
    nodes: list = field(default_factory=list)     # its layer node, then its activation's

    @property
    def layer(self):
        return self.nodes[0].layer

    @property
    def activation(self):
        """The activation shorthand's function name, or None."""
        return self.nodes[1].layer.function_name if len(self.nodes) > 1 else None

    @property
    def output_shape(self):
        return self.nodes[-1].output_shape


def _no_location(path):
    from dltrain.config.loader import format_path

    return format_path(path)


def parse(config, where=_no_location, layers=None):
    """(input_shape, [Written], [Node] in an order where inputs come first, output name) of the
    ``model:`` section of a config; every layer is constructed (or taken from ``layers``, one
    per spec), nothing is allocated."""
    if not isinstance(config, dict):
        raise ConfigError("`model` must be a mapping with input_shape and layers", where=where(("model",)))
    if "input_shape" not in config:
        raise ConfigError("the model has no input_shape", where=where(("model",)),
                          fix="add `input_shape: [features]` (e.g. [64]) under model.")
    try:
        input_shape = check.shape("input_shape", config["input_shape"])
    except ConfigError as error:
        error.where = where(("model", "input_shape"))
        raise
    specs = config.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ConfigError("the model has no layers", where=where(("model", "layers")),
                          fix="list the layers under model.layers, e.g. `- {type: dense, units: 10}`.")
    nodes, written, aliases, counts = [], [], {}, {}
    previous = INPUT
    for i, spec in enumerate(specs):
        path = ("model", "layers", i)
        entry_nodes = _nodes_of(spec, path, where, counts, previous, aliases,
                                None if layers is None else layers[i])
        entry = Written(i, entry_nodes[0].name, entry_nodes[0].layer.registered_name,
                        list(entry_nodes[0].inputs), where(path), entry_nodes)
        for node in entry_nodes:
            node.written = entry
        written.append(entry)
        nodes.extend(entry_nodes)
        previous = entry_nodes[-1].name
    entry_of = {node.name: node.written.name for node in nodes}
    for entry in written:                          # as written: the user's names
        entry.inputs = [entry_of.get(name, name) for name in entry.inputs]
    for node in nodes:
        if node.written.nodes[0] is node:          # an activation node reads its own layer
            node.inputs = [aliases.get(name, name) for name in node.inputs]
    output = config.get("output", previous)
    return tuple(input_shape), written, topological(nodes), aliases.get(output, output)


def _nodes_of(spec, path, where, counts, previous, aliases, layer=None):
    """The node (or node and activation node) for one layer spec; ``layer``: the layer already
    constructed from it, if any."""
    type_name, arguments = split_spec(spec, "layer", where(path + ("type",)) if isinstance(spec, dict) else where(path))
    cls = registry("layer").get(type_name, where=where(path + ("type",)) if isinstance(spec, dict) else where(path))
    # `activation` is the activation layer's own argument, and the shorthand on any other layer
    layer_arguments = {k: v for k, v in arguments.items()
                       if k not in NODE_KEYS or (k == "activation" and cls.registered_name == "activation")}
    name = arguments.get("name")
    if name is None:
        counts[cls.registered_name] = counts.get(cls.registered_name, 0) + 1
        name = f"{cls.registered_name}_{counts[cls.registered_name]}"
    elif not isinstance(name, str) or name == INPUT:
        raise ConfigError(f"layer name {name!r} is not allowed", where=where(path + ("name",)),
                          fix=f"use a string other than {INPUT!r}.")
    inputs = arguments.get("inputs", [previous])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs) or not inputs:
        raise ConfigError(f"inputs of layer {name!r} must be a list of layer names, not {inputs!r}",
                          where=where(path + ("inputs",)))
    from dltrain import regularizers

    found = regularizers.from_spec(dict(arguments), where(path))
    spec_for_build = {"type": type_name, **layer_arguments}
    if layer is None:
        layer = build("layer", spec_for_build, where(path))
    layer.name = name
    layer.regularizers = found
    nodes = [Node(name, layer, list(inputs), where(path))]
    activation = arguments.get("activation")
    if activation is not None and cls.registered_name != "activation":
        act = build("layer", {"type": "activation", "activation": activation}, where(path + ("activation",)))
        act_name = f"{name}_{act.function_name}"
        act.name = act_name
        nodes.append(Node(act_name, act, [name], where(path + ("activation",))))
        aliases[name] = act_name
    return nodes


def topological(nodes):
    """The nodes in an order where every input comes first; unknown inputs and cycles are errors."""
    by_name = {}
    for node in nodes:
        if node.name in by_name:
            other = by_name[node.name]
            if other.written is not None and other.written.nodes[0] is not other:
                raise ConfigError(f"layer name {node.name!r} is the name of the {other.layer.function_name} "
                                  f"activation of layer {other.written.name!r}", where=node.where,
                                  fix="give this layer another name.")
            raise ConfigError(f"two layers are named {node.name!r}", where=node.where,
                              fix="give each layer a unique name.")
        by_name[node.name] = node
    for node in nodes:
        for name in node.inputs:
            if name != INPUT and name not in by_name:
                raise ConfigError(
                    f"layer {node.name!r} takes input from {name!r}, which is not a layer name",
                    where=node.where, expected="one of " + ", ".join([INPUT, *by_name]),
                    fix=suggest(name, [INPUT, *by_name], "check the names in `inputs`."))
    ordered, state = [], {}

    def visit(node, trail):
        if state.get(node.name) == "done":
            return
        if state.get(node.name) == "visiting":
            cycle = " -> ".join(_as_written(trail[trail.index(node.name):] + [node.name], by_name))
            raise ConfigError(f"the layers form a cycle: {cycle}", where=node.where,
                              fix="a layer's inputs must come from layers that do not depend on it.")
        state[node.name] = "visiting"
        for name in node.inputs:
            if name != INPUT:
                visit(by_name[name], trail + [node.name])
        state[node.name] = "done"
        ordered.append(node)

    for node in nodes:
        visit(node, [])
    return ordered


def _as_written(names, by_name):
    """Node names as the user wrote them: a layer and its activation are one name."""
    written = []
    for name in names:
        node = by_name[name]
        name = node.written.name if node.written is not None else name
        if not written or written[-1] != name:
            written.append(name)
    return written
