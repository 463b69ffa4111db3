"""An ONNX graph under construction: unique tensor names, constants, nodes, and the file.

Tensors between layers keep dltrain's layout (channels last, batch first); the operators that
want channels first (Conv, pooling) are wrapped in Transpose nodes by their converters, which
onnxruntime's optimizer folds away between consecutive layers.

A graph is written at opset 17 (LayerNormalization's first) unless it needs a later one: the
string operators of a text model's input (StringSplit, StringConcat) are opset 20. ``reduce``
writes ReduceMean/ReduceMax for either (their axes became an input at opset 18).
"""
import numpy as np

from dltrain.export import protobuf

OPSET = 17           # LayerNormalization is in the default domain from opset 17
IR_VERSIONS = {17: 8, 20: 9}     # the IR version of each opset written (ONNX 1.12, 1.15)
ML_OPSET = 2         # ai.onnx.ml: LabelEncoder with string keys and int64 values


class Graph:
    def __init__(self, dtype=np.float32, opset=OPSET, parent=None):
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.nodes, self.initializers = [], []
        self.domains = set() if parent is None else parent.domains
        self._used = set() if parent is None else parent._used       # names unique across subgraphs

    @property
    def type_code(self):
        """The TensorProto data type of the graph's dtype (for Cast)."""
        return protobuf.DATA_TYPES[self.dtype]

    def name(self, hint):
        """A tensor or node name not used before, from ``hint`` ('/' kept, other odd characters out)."""
        base = "".join(c if c.isalnum() or c in "_/.-" else "_" for c in hint) or "t"
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def const(self, value, hint, dtype=None):
        """An initializer holding ``value`` (in the graph's dtype unless ``dtype``); its name."""
        array = np.asarray(value, dtype=dtype or (self.dtype if np.asarray(value).dtype.kind == "f"
                                                  else np.asarray(value).dtype))
        name = self.name(hint)
        self.initializers.append(protobuf.tensor(name, array))
        return name

    def ints(self, values, hint):
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type, inputs, hint, outputs=1, domain="", **attributes):
        """Add a node; return its output name (or the list of ``outputs`` names when > 1)."""
        names = [self.name(f"{hint}/{op_type}" + (f":{i}" if outputs > 1 else "")) for i in range(outputs)]
        if domain:
            self.domains.add(domain)
        self.nodes.append(protobuf.node(op_type, inputs, names, self.name(f"{hint}/{op_type}_node"),
                                        domain=domain, **attributes))
        return names[0] if outputs == 1 else names

    def identity(self, x, name):
        """``x`` under the exact name ``name`` (the graph's output)."""
        self._used.add(name)
        self.nodes.append(protobuf.node("Identity", [x], [name], self.name(f"{name}/Identity_node")))
        return name

    # -- small compositions every converter uses -------------------------------------------------

    def channels_first(self, x, rank, hint):
        """(B, *spatial, C) -> (B, C, *spatial)."""
        return self.op("Transpose", [x], hint, perm=[0, rank + 1, *range(1, rank + 1)])

    def channels_last(self, x, rank, hint):
        """(B, C, *spatial) -> (B, *spatial, C)."""
        return self.op("Transpose", [x], hint, perm=[0, *range(2, rank + 2), 1])

    def mul(self, x, value, hint):
        return self.op("Mul", [x, self.const(value, f"{hint}/factor")], hint)

    def add(self, x, value, hint):
        return self.op("Add", [x, self.const(value, f"{hint}/term")], hint)

    def reduce(self, op_type, x, axes, hint, keepdims):
        """ReduceMean or ReduceMax over ``axes``: an attribute before opset 18, an input from it."""
        if self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes, f"{hint}/axes")], hint, keepdims=keepdims)
        return self.op(op_type, [x], hint, axes=list(axes), keepdims=keepdims)

    # -- the file --------------------------------------------------------------------------------

    def body(self, name, inputs, outputs):
        """This graph as a GraphProto for a node attribute (a Loop's body)."""
        return protobuf.Subgraph(protobuf.graph(name, self.nodes, self.initializers,
                                                [protobuf.value_info(*i) for i in inputs],
                                                [protobuf.value_info(*o) for o in outputs]))

    def serialize(self, name, inputs, outputs, metadata, producer_version):
        """The ModelProto bytes; ``inputs`` and ``outputs`` are (name, dtype, shape) triples."""
        body = protobuf.graph(name, self.nodes, self.initializers,
                              [protobuf.value_info(*i) for i in inputs],
                              [protobuf.value_info(*o) for o in outputs])
        opsets = {"": self.opset, **{domain: ML_OPSET for domain in sorted(self.domains)}}
        return protobuf.model(body, opsets, IR_VERSIONS[self.opset], "dltrain", producer_version, metadata)


def registrar(table):
    """The decorator ``@converts("name", ...)`` that files a converter in ``table`` under each name."""
    def converts(*names):
        def decorate(function):
            for name in names:
                table[name] = function
            return function
        return decorate
    return converts
