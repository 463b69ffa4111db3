"""Graph passes: named speed rewrites of how a built model computes, never of what it computes.

Each pass reads the plan (the nodes in run order, see ``network.Model``) and rewrites it in place
where the layers involved opt in through the capabilities of ``layers.base.Layer`` (every default
opts out). The outputs and gradients stay the same: to the bit for pool_before_relu and
absorb_relu, to float32 rounding for pool_blocks and compute_read_region, whose products sum
the same terms in another order or without rows of zeros (tests/test_passes.py). The model's
output keeps its value (a pass may hand it to another node: pool_before_relu). The
passes run in the order of ``PASSES``, once, after the shapes are known; ``dltrain summary
--passes`` lists them and what each rewrote.
"""
from dataclasses import dataclass, field

from dltrain.model.graph import INPUT


@dataclass
class Rewrite:
    """What one pass did to one place of the graph."""

    pass_name: str
    nodes: tuple                 # the names of the nodes it rewrote
    note: str                    # in the user's words: "max_pooling2d_1 runs before ..."


@dataclass
class Plan:
    """The nodes in run order and the model's output, while the passes rewrite them."""

    nodes: list
    output: str
    rewrites: list = field(default_factory=list)
    blocked: set = field(default_factory=set)     # nodes that give their output in pooling blocks

    def readers(self, name):
        return [node for node in self.nodes if name in node.inputs]

    def source(self, node):
        """The one node that feeds ``node`` and feeds nothing else (not the input, not the
        model's output), or None."""
        if len(node.inputs) != 1 or node.inputs[0] == INPUT or node.inputs[0] == self.output:
            return None
        source = next(n for n in self.nodes if n.name == node.inputs[0])
        return source if self.readers(source.name) == [node] else None

    def rewire(self, old, new):
        """Nodes that read ``old`` read ``new`` instead."""
        for node in self.nodes:
            node.inputs = [new if name == old else name for name in node.inputs]

    def record(self, pass_name, nodes, note):
        self.rewrites.append(Rewrite(pass_name, tuple(n.name for n in nodes), note))


def pool_before_relu(plan):
    """Swap a ReLU and the pooling that alone reads it (Layer.is_relu, commutes_with_relu).

    max_pool(relu(x)) = relu(max_pool(x)) exactly, and so are the gradients, but pooling first
    leaves the ReLU a quarter of the values to touch (2x2 windows): 8 % of a convnet step.
    """
    nodes = plan.nodes
    for i in range(len(nodes) - 1):
        relu, pool = nodes[i], nodes[i + 1]
        if not (relu.layer.is_relu() and pool.layer.commutes_with_relu() and pool.inputs == [relu.name]
                and plan.readers(relu.name) == [pool] and relu.name != plan.output):
            continue
        plan.rewire(pool.name, relu.name)
        relu.inputs, pool.inputs = [pool.name], relu.inputs
        nodes[i], nodes[i + 1] = pool, relu
        if plan.output == pool.name:         # the same value: the ReLU now gives it
            plan.output = relu.name
        plan.record("pool_before_relu", (pool, relu), f"{pool.label} runs before {relu.label}")


def pool_blocks(plan):
    """Let a layer give its output in the blocks of the tiled pooling that alone reads it
    (Layer.blocks_for, emit_pool_blocks, take_blocks): the pooling then compares ph*pw
    contiguous blocks instead of strided pixels, and the pixels no window reads are never
    computed (Conv2D.emit_pool_blocks)."""
    for node in plan.nodes:
        source = plan.source(node)
        if source is None:
            continue
        blocks = node.layer.blocks_for(source.output_shape)
        if blocks is not None and source.layer.emit_pool_blocks(blocks):
            node.layer.take_blocks()
            plan.blocked.add(source.name)
            plan.record("pool_blocks", (source, node),
                        f"{source.label} gives {node.label} its {blocks[0]}x{blocks[1]} windows as blocks")


def absorb_relu(plan):
    """Let a layer also apply the ReLU that alone reads it (Layer.absorb_relu: a max pooling
    of blocks takes max(0, blocks) in the same pass) and drop that ReLU from the plan."""
    for node in list(plan.nodes):
        readers = plan.readers(node.name)
        if (len(readers) == 1 and readers[0].layer.is_relu() and readers[0].name != plan.output
                and node.layer.absorb_relu()):
            relu = readers[0]
            plan.nodes.remove(relu)
            plan.rewire(relu.name, node.name)
            plan.record("absorb_relu", (node, relu), f"{node.label} applies {relu.label}")


def compute_read_region(plan):
    """Tell a layer whose output one layer alone reads which part that reader reads
    (Layer.input_region, compute_only), so that it computes no more: a `valid` 2x2 pooling of a
    convolution's 11x11 output reads 10x10."""
    for node in plan.nodes:
        source = plan.source(node)
        if source is None or source.name in plan.blocked:
            continue
        region = node.layer.input_region(source.output_shape)
        if region is not None and source.layer.compute_only(region):
            plan.record("compute_read_region", (source, node),
                        f"{source.label} computes only the {region[0]}x{region[1]} that {node.label} reads")


#: every pass, in the order they run: (name, function); the description is the docstring
PASSES = (("pool_before_relu", pool_before_relu), ("pool_blocks", pool_blocks),
          ("absorb_relu", absorb_relu), ("compute_read_region", compute_read_region))


def names():
    return tuple(name for name, _ in PASSES)


def run(model, selected):
    """(nodes, output, [Rewrite]) of the passes named in ``selected`` over a model whose shapes
    are known; the layers involved are switched to their rewritten computation."""
    unknown = set(selected) - set(names())
    if unknown:
        raise ValueError(f"unknown graph pass {sorted(unknown)[0]!r}; the passes are {', '.join(names())}")
    plan = Plan(list(model.nodes), model.output)
    for name, function in PASSES:
        if name in selected:
            function(plan)
    return plan.nodes, plan.output, plan.rewrites


def describe(model):
    """Every pass as {name, description, enabled, rewrites: [note]} for a model whose shapes are
    known (``dltrain summary --passes``); plans the model if it was not yet."""
    rewrites = model.plan()
    return [{"name": name, "description": " ".join(function.__doc__.split()),
             "enabled": name in model.pass_names,
             "rewrites": [r.note for r in rewrites if r.pass_name == name]}
            for name, function in PASSES]
