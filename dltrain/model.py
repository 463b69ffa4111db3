"""The model: a graph of layers built from specs, with shapes inferred at build time.

Layers run in the order given; a layer without ``inputs`` takes the previous layer's output, so a
sequential model is the simple case of a graph. ``{type: dense, units: 64, activation: relu}``
becomes two nodes, the dense layer and an activation layer; the user's name refers to the
activation's output, as in Keras. Backward runs the nodes in reverse, summing the gradients of
outputs that feed several layers.
"""
import numpy as np

from dltrain import check
from dltrain.backend import like, on_host
from dltrain.errors import ConfigError
from dltrain.layers.core import ActivationLayer
from dltrain.registry import build, registry, split_spec, suggest

#: keys of a layer spec that the model reads; the rest are the layer's constructor arguments
NODE_KEYS = ("name", "inputs", "activation", "kernel_regularizer", "bias_regularizer")
INPUT = "input"
#: pair a convolution with the tiled max pooling that alone reads it (Conv2D.emit_pool_blocks);
#: tests turn it off to compare with the plain layout
FUSE_POOL_BLOCKS = True
#: let such a pooling also apply the ReLU that alone reads it (MaxPooling.absorb_relu)
ABSORB_RELU = True


class Node:
    def __init__(self, name, layer, inputs, where):
        self.name = name
        self.layer = layer
        self.inputs = inputs
        self.where = where
        self.output_shape = None


def _no_location(path):
    from dltrain.config.loader import format_path

    return format_path(path)


class Model:
    """A directed acyclic graph of layers from one input to one output."""

    def __init__(self, nodes, input_shape, output, dtype=np.float32):
        self.nodes = nodes
        self.input_shape = tuple(input_shape)
        self.output = output
        self.dtype = np.dtype(dtype)
        self.built = False

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config, where=_no_location, dtype=np.float32):
        """Build the graph (no arrays yet) from the ``model:`` section of a config."""
        if not isinstance(config, dict):
            raise ConfigError("`model` must be a mapping with input_shape and layers",
                              where=where(("model",)))
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
        nodes, aliases, counts = [], {}, {}
        previous = INPUT
        for i, spec in enumerate(specs):
            path = ("model", "layers", i)
            node_nodes = _nodes_of(spec, path, where, counts, previous, aliases)
            nodes.extend(node_nodes)
            previous = node_nodes[-1].name
        for node in nodes:
            if not isinstance(node.layer, ActivationLayer) or node.name not in aliases.values():
                node.inputs = [aliases.get(name, name) for name in node.inputs]
        output = aliases.get(config.get("output", previous), config.get("output", previous))
        nodes = _topological(nodes, where)
        output = _pool_before_relu(nodes, output)
        model = cls(nodes, input_shape, output, dtype)
        for node in model.nodes:
            node.layer.dtype = model.dtype
        return model

    def build(self, rng, streams=None):
        """Create every parameter and infer every shape; a ShapeError names the first bad layer."""
        shapes = {INPUT: self.input_shape}
        for node in self.nodes:
            inputs = [shapes[name] for name in node.inputs]
            try:
                node.output_shape = tuple(node.layer.build(inputs if node.layer.multi_input else inputs[0], rng))
            except ConfigError as error:
                if error.where is None:
                    error.where = node.where
                raise
            shapes[node.name] = node.output_shape
            if getattr(node.layer, "random", False):
                node.layer.rng = streams.get(f"layer:{node.name}") if streams else np.random.default_rng(0)
        self.output_shape = shapes[self.output]
        self._compute_read_regions()
        self.built = True
        return self.output_shape

    def _compute_read_regions(self):
        """Tell a layer whose output is read by one layer alone which part that reader reads
        (a `valid` pooling of a convolution's odd-sized output), so it computes no more; or, for
        a tiled max pooling of a convolution, pair the two to pass the output in the pooling's
        blocks (Conv2D.emit_pool_blocks)."""
        readers, by_name = {}, {node.name: node for node in self.nodes}
        for node in self.nodes:
            for name in node.inputs:
                readers.setdefault(name, []).append(node)
        for node in self.nodes:
            source = by_name.get(node.inputs[0])
            if (source is None or readers[source.name] != [node] or source.name == self.output
                    or not hasattr(node.layer, "input_region") or not hasattr(source.layer, "compute_only")):
                continue
            blocks = getattr(node.layer, "blocks_for", lambda shape: None)(source.output_shape)
            if (blocks is not None and FUSE_POOL_BLOCKS and hasattr(source.layer, "emit_pool_blocks")
                    and source.layer.emit_pool_blocks(blocks)):
                node.layer.take_blocks()
                after = readers.get(node.name, [])
                if (len(after) == 1 and isinstance(after[0].layer, ActivationLayer)
                        and after[0].layer.function_name == "relu" and ABSORB_RELU):
                    node.layer.absorb_relu()              # the ReLU that alone reads the pooling
                    after[0].layer.absorbed = True
                continue
            region = node.layer.input_region(source.output_shape)
            if region is not None:
                source.layer.compute_only(region)

    # -- computation -------------------------------------------------------------------------

    @property
    def final_activation(self):
        """Name of the activation that ends the model (for a loss to fuse with), or None."""
        node = self.nodes[-1]
        if node.name == self.output and isinstance(node.layer, ActivationLayer):
            return node.layer.function_name
        return None

    def forward(self, x, training=False, logits=False):
        """The model's output for a batch; with ``logits``, the input of the final activation."""
        last = self.nodes[-1]
        outputs = {INPUT: x}
        for node, y in self.layer_outputs(x, training, stop_before=last if logits else None):
            outputs[node.name] = y
        return outputs[last.inputs[0] if logits else self.output]

    def layer_outputs(self, x, training=False, stop_before=None):
        """(node, output) for every node of a forward pass, in order (up to ``stop_before``)."""
        outputs, masks = {INPUT: x}, {INPUT: None}
        for node in self.nodes:
            if node is stop_before:
                return
            if node.layer.multi_input:
                xs = [outputs[name] for name in node.inputs]
                mask_in = [masks[name] for name in node.inputs]
            else:
                xs, mask_in = outputs[node.inputs[0]], masks[node.inputs[0]]
            node.layer.input_mask = mask_in
            outputs[node.name] = node.layer.forward(xs, training)
            masks[node.name] = node.layer.compute_mask(xs, mask_in)
            yield node, outputs[node.name]

    def backward(self, grad, logits=False, input_grad=True):
        """Backpropagate d(loss)/d(output) (or d/d(logits)); fill every layer's grads; return d/d(input).

        With ``input_grad=False`` (training) layers fed only by the input skip computing grad_x
        and None is returned.
        """
        nodes = self.nodes[:-1] if logits else self.nodes
        start = self.nodes[-1].inputs[0] if logits else self.output
        grads = {start: grad}
        for node in reversed(nodes):
            grad_y = grads.pop(node.name, None)
            if grad_y is None:
                continue
            if not input_grad and node.inputs == [INPUT]:
                node.layer.input_grad = False
                try:
                    node.layer.backward(grad_y)
                finally:
                    node.layer.input_grad = True
                continue
            grad_x = node.layer.backward(grad_y)
            if not node.layer.multi_input:
                grad_x = [grad_x]
            for name, g in zip(node.inputs, grad_x):
                grads[name] = g if name not in grads else grads[name] + g
        return grads.get(INPUT)

    def predict(self, x, batch_size=256):
        """Outputs for every sample of x, in inference mode, batch by batch."""
        outputs = [np.array(self.forward(x[i:i + batch_size].astype(self.dtype, copy=False)))
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, *self.output_shape), self.dtype)

    # -- parameters --------------------------------------------------------------------------

    def parameters(self):
        """(key, param, grad) for every trainable array, keyed 'layer_name/param_name'."""
        for node in self.nodes:
            for key, param in node.layer.params.items():
                yield f"{node.name}/{key}", param, node.layer.grads.get(key)

    def state_dict(self):
        """Every array that defines the model: parameters and non-trained state (moving stats)."""
        state = {}
        for node in self.nodes:
            for key, value in node.layer.params.items():
                state[f"{node.name}/{key}"] = value
            for key, value in node.layer.state.items():
                state[f"{node.name}/{key}"] = value
        return state

    def load_state_dict(self, state):
        for node in self.nodes:
            for store in (node.layer.params, node.layer.state):
                for key in store:
                    full = f"{node.name}/{key}"
                    if full not in state:
                        raise KeyError(full)
                    value = like(np.asarray(state[full]), store[key]) if on_host(state[full]) else state[full]
                    if value.shape != store[key].shape:
                        raise ValueError(f"{full} has shape {value.shape}, the model expects {store[key].shape}")
                    store[key][...] = value

    def count_params(self):
        return int(sum(p.size for _, p, _ in self.parameters()))


def _nodes_of(spec, path, where, counts, previous, aliases):
    """The node (or node and activation node) for one layer spec."""
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


def _pool_before_relu(nodes, output):
    """Swap a ReLU and the max pooling that alone reads it; return the model output's name.

    max_pool(relu(x)) = relu(max_pool(x)) exactly, and so are the gradients (where a window's
    maximum is positive it is the same first maximum; elsewhere both give zero), but pooling
    first leaves the ReLU a quarter of the values to touch (2x2 windows): 8 % of a convnet step.
    The nodes keep their names; the pooling's readers now read the ReLU.
    """
    readers = {}
    for node in nodes:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
    for i in range(len(nodes) - 1):
        relu, pool = nodes[i], nodes[i + 1]
        if not (isinstance(relu.layer, ActivationLayer) and relu.layer.function_name == "relu"
                and getattr(pool.layer, "commutes_with_relu", False) and pool.inputs == [relu.name]
                and readers.get(relu.name) == 1 and relu.name != output):
            continue
        for node in nodes[i + 2:]:
            node.inputs = [relu.name if name == pool.name else name for name in node.inputs]
        relu.inputs, pool.inputs = [pool.name], relu.inputs
        nodes[i], nodes[i + 1] = pool, relu
        output = relu.name if output == pool.name else output
    return output


def _topological(nodes, where):
    """The nodes in an order where every input comes first; unknown inputs and cycles are errors."""
    by_name = {}
    for node in nodes:
        if node.name in by_name:
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
            cycle = " -> ".join(trail[trail.index(node.name):] + [node.name])
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
