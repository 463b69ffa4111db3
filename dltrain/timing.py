"""Per-layer forward and backward times for one batch, as ``caffe time`` reports them.

The model runs in training mode on a random batch of its input shape; each node's forward and
backward are timed separately, over several iterations after a warm-up, and the median is kept.
What runs is the plan the graph passes made (model/passes.py); the rows are the model as the user
wrote it, in the user's order, each saying which passes rewrote it, and a node a pass folded into
another (a ReLU that a max pooling applies) says where its time is counted instead.
"""
import statistics
import time
from dataclasses import dataclass

import numpy as np

from dltrain import device as devices
from dltrain.backend import array_module, synchronize
from dltrain.model import INPUT


@dataclass
class LayerTime:
    name: str                    # as the user wrote it: 'conv2d_1', or 'conv2d_1 (relu)' for its activation
    type: str
    output_shape: tuple
    forward_ms: float
    backward_ms: float
    passes: tuple = ()           # the graph passes that rewrote this node, in the order they ran
    runs_in: str = None          # the layer that computes it, when a pass folded it into that one


def _label(node):
    """A node as the user wrote it: the layer's name, or 'NAME (relu)' for the node of an
    activation shorthand (graph.py names it NAME_relu)."""
    if node.written is None or node.written.nodes[0].name == node.name:
        return node.name
    return f"{node.written.name} ({node.layer.function_name})"


def _random_batch(model, batch_size, rng):
    shape = (batch_size, *model.input_shape)
    return rng.random(shape, dtype=np.float32).astype(model.dtype, copy=False)


def _one_pass(model, x, clock):
    """Forward and backward through every node, adding each one's seconds to ``clock``."""
    outputs, masks = {INPUT: x}, {INPUT: None}
    for node in model.nodes:
        layer = node.layer
        xs = [outputs[n] for n in node.inputs] if layer.multi_input else outputs[node.inputs[0]]
        mask = [masks[n] for n in node.inputs] if layer.multi_input else masks[node.inputs[0]]
        layer.input_mask = mask
        started = time.perf_counter()
        outputs[node.name] = layer.forward(xs, True)
        synchronize(outputs[node.name])                 # a device runs asynchronously
        clock[node.name][0].append(time.perf_counter() - started)
        masks[node.name] = layer.compute_mask(xs, mask)
    out = outputs[model.output]
    grads = {model.output: array_module(out).ones_like(out) / len(x)}
    for node in reversed(model.nodes):
        grad_y = grads.pop(node.name, None)
        if grad_y is None:
            continue
        node.layer.input_grad = node.inputs != [INPUT]      # as in training: no input gradient
        started = time.perf_counter()
        grad_x = node.layer.backward(grad_y)
        synchronize(grad_x if grad_x is not None else grad_y)
        clock[node.name][1].append(time.perf_counter() - started)
        node.layer.input_grad = True
        for name, g in zip(node.inputs, grad_x if node.layer.multi_input else [grad_x]):
            grads[name] = g if name not in grads else grads[name] + g


def time_layers(model, batch_size=64, iterations=10, warmup=2, seed=0, device="cpu"):
    """[LayerTime per node of the graph as written] for a built model: median milliseconds of
    forward and backward, on ``device`` (cpu or cuda; the model is moved there)."""
    xp = devices.device_module(device)
    devices.move_model(model, xp)
    x = xp.asarray(_random_batch(model, batch_size, np.random.default_rng(seed)))
    clock = {node.name: ([], []) for node in model.nodes}
    for _ in range(warmup):
        _one_pass(model, x, {name: ([], []) for name in clock})
    for _ in range(iterations):
        _one_pass(model, x, clock)

    def median_ms(values):
        return statistics.median(values) * 1000 if values else 0.0

    labels = {node.name: _label(node) for node in model.graph}
    rows = []
    for node in model.graph:                         # as written, whatever the plan's order
        rewrites = [r for r in model.rewrites if node.name in r.nodes]
        passes = tuple(dict.fromkeys(r.pass_name for r in rewrites))
        if node.name in clock:
            rows.append(LayerTime(labels[node.name], node.layer.registered_name, node.output_shape,
                                  median_ms(clock[node.name][0]), median_ms(clock[node.name][1]), passes))
        else:                                        # folded into another node by a pass
            into = next(name for r in rewrites for name in r.nodes if name != node.name)
            rows.append(LayerTime(labels[node.name], node.layer.registered_name, node.output_shape,
                                  0.0, 0.0, passes, runs_in=labels[into]))
    return rows
