"""The model: a graph of layers, its shapes inferred without arrays, then built and run.

``Model.from_config`` constructs every layer (no arrays). ``infer_shapes()`` gives every node its
output shape from ``Layer.build`` in shapes-only mode (``layers.base.SHAPES_ONLY``): nothing
proportional to the model's size is allocated, which is all ``check`` and ``summary`` need.
``build(rng)`` creates the parameters and then runs the graph passes (``passes.py``), which
decide how the nodes compute: ``nodes`` is that plan, ``graph`` the nodes as written and
``layers`` the user's layers (``graph.Written``). Backward runs the plan in reverse, summing the
gradients of outputs that feed several layers.
"""
import numpy as np

from dltrain.backend import like, on_host
from dltrain.errors import ConfigError
from dltrain.layers.base import SHAPES_ONLY
from dltrain.model import passes as graph_passes
from dltrain.model.graph import INPUT, _no_location, parse


class Model:
    """A directed acyclic graph of layers from one input to one output."""

    def __init__(self, graph, input_shape, output, dtype=np.float32, written=None, passes=None):
        self.graph = graph                   # the nodes as written, inputs first
        self.layers = written or []          # graph.Written, in the config's order
        self.input_shape = tuple(input_shape)
        self.output = output
        self.written_output = output         # the output of the graph as written (export reads it)
        self.dtype = np.dtype(dtype)
        self.pass_names = graph_passes.names() if passes is None else tuple(passes)
        self.nodes = [node.copy() for node in graph]      # the plan: the passes rewrite it
        self.rewrites = []                   # passes.Rewrite records, once planned
        self.planned = False
        self.built = False                   # every shape is known (infer_shapes or build)
        self.allocated = False               # the parameters are arrays (build)
        self.output_shape = None
        for node in graph:
            node.layer.dtype = self.dtype

    @classmethod
    def from_config(cls, config, where=_no_location, dtype=np.float32, layers=None, passes=None):
        """The graph (no arrays yet) from the ``model:`` section of a config. ``layers``: the
        layers already constructed from ``config["layers"]`` (by validation), one per spec, to
        use instead of constructing them again; ``passes`` names the graph passes that
        ``build`` runs (default: all of ``passes.PASSES``)."""
        input_shape, written, nodes, output = parse(config, where, layers)
        return cls(nodes, input_shape, output, dtype, written, passes)

    # -- shapes and parameters -----------------------------------------------------------------

    def infer_shapes(self):
        """Every node's output shape, allocating nothing: parameters become one-element
        placeholders of their shapes (count_params and summary read them). Returns the model's
        output shape; a ShapeError or ConfigError names the first bad layer, in written order."""
        return self._build_nodes(SHAPES_ONLY)

    def build(self, rng, streams=None):
        """Create every parameter, infer every shape, then plan the computation (the passes)."""
        self._build_nodes(rng)
        for node in self.graph:
            if getattr(node.layer, "random", False):
                node.layer.rng = streams.get(f"layer:{node.name}") if streams else np.random.default_rng(0)
        self.plan()
        self.allocated = True
        return self.output_shape

    def _build_nodes(self, rng):
        shapes = {INPUT: self.input_shape}
        for node in self.graph:
            inputs = [shapes[name] for name in node.inputs]
            try:
                node.output_shape = tuple(node.layer.build(inputs if node.layer.multi_input else inputs[0], rng))
            except ConfigError as error:
                if error.where is None:
                    error.where = node.where
                raise
            shapes[node.name] = node.output_shape
        for node in self.nodes:
            node.output_shape = shapes[node.name]
        self.output_shape = shapes[self.output]
        self.built = True
        return self.output_shape

    def plan(self):
        """Run the graph passes once (after the shapes are known); returns their Rewrites."""
        if not self.planned:
            self.nodes, self.output, self.rewrites = graph_passes.run(self, self.pass_names)
            self.planned = True
        return self.rewrites

    # -- computation -------------------------------------------------------------------------

    @property
    def final_activation(self):
        """Name of the activation that ends the model (for a loss to fuse with), or None."""
        node = self.nodes[-1]
        if node.name == self.output and node.layer.registered_name == "activation":
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
        for node in self.graph:
            for key, param in node.layer.params.items():
                yield f"{node.name}/{key}", param, node.layer.grads.get(key)

    def state_dict(self):
        """Every array that defines the model: parameters and non-trained state (moving stats)."""
        state = {}
        for node in self.graph:
            for key, value in node.layer.params.items():
                state[f"{node.name}/{key}"] = value
            for key, value in node.layer.state.items():
                state[f"{node.name}/{key}"] = value
        return state

    def load_state_dict(self, state):
        if not self.allocated:
            raise RuntimeError("load_state_dict needs the parameters: call build(rng) first "
                               "(infer_shapes alone holds placeholders)")
        for node in self.graph:
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
