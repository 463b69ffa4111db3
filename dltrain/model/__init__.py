"""The model package: the graph as written (graph.py), the model that infers shapes, builds and
runs it (network.py), and the named speed rewrites of how it runs (passes.py)."""
from dltrain.model.graph import INPUT, NODE_KEYS, Node, Written, _nodes_of, parse, topological  # noqa: F401
from dltrain.model.network import Model  # noqa: F401
