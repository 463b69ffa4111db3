"""The protobuf wire format of the ONNX messages dltrain writes, encoded by hand.

An ONNX file is one serialized ``ModelProto`` (onnx/onnx.proto3). Protobuf is a sequence of
fields, each a key ``(field_number << 3) | wire_type`` followed by a varint (wire type 0), a
length-prefixed byte string or sub-message (2), or a little-endian 32-bit float (5). Repeated
integers are written packed (one length-prefixed run of varints), as proto3 does by default.
Only the messages and fields below are written; their numbers are those of onnx.proto3.
"""
import struct

import numpy as np

#: TensorProto.DataType of the numpy dtypes an exported graph uses
DATA_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3,
              np.dtype(np.int32): 6, np.dtype(np.int64): 7, np.dtype(np.bool_): 9,
              np.dtype(np.float64): 11, np.dtype(object): 8}

# AttributeProto.AttributeType
FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS = 1, 2, 3, 4, 5, 6, 7, 8


class Subgraph(bytes):
    """The bytes of a GraphProto, to pass as a node attribute (Loop's ``body``)."""


def varint(value):
    """The base-128 varint of a non-negative integer (negative int64s as their two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field, wire_type):
    return varint((field << 3) | wire_type)


def int_field(field, value):
    return key(field, 0) + varint(int(value))


def bytes_field(field, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return key(field, 2) + varint(len(data)) + data


def float_field(field, value):
    return key(field, 5) + struct.pack("<f", float(value))


def packed_ints(field, values):
    return bytes_field(field, b"".join(varint(int(v)) for v in values))


def packed_floats(field, values):
    return bytes_field(field, struct.pack(f"<{len(values)}f", *map(float, values)))


# -- messages --------------------------------------------------------------------------------

def tensor(name, array):
    """TensorProto: dims 1, data_type 2, string_data 6 (strings, UTF-8), name 8, raw_data 9
    (little-endian bytes of numbers)."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "U":
        return (packed_ints(1, array.shape) + int_field(2, DATA_TYPES[np.dtype(object)])
                + b"".join(bytes_field(6, str(v)) for v in array.ravel()) + bytes_field(8, name))
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return (packed_ints(1, array.shape) + int_field(2, DATA_TYPES[array.dtype])
            + bytes_field(8, name) + bytes_field(9, np.ascontiguousarray(little).tobytes()))


def attribute(name, value):
    """AttributeProto: name 1, f 2, i 3, s 4, t 5, g 6, floats 7, ints 8, strings 9, type 20.

    ``value`` is an int, a float, a str, a numpy array (a tensor), a ``Subgraph``, or a list of
    ints, floats or strs."""
    out = bytes_field(1, name)
    if isinstance(value, Subgraph):
        return out + bytes_field(6, bytes(value)) + int_field(20, GRAPH)
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return out + int_field(3, value) + int_field(20, INT)
    if isinstance(value, (float, np.floating)):
        return out + float_field(2, value) + int_field(20, FLOAT)
    if isinstance(value, str):
        return out + bytes_field(4, value) + int_field(20, STRING)
    if isinstance(value, np.ndarray):
        return out + bytes_field(5, tensor("", value)) + int_field(20, TENSOR)
    values = list(value)
    if values and all(isinstance(v, str) for v in values):
        return out + b"".join(bytes_field(9, v) for v in values) + int_field(20, STRINGS)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return out + packed_ints(8, values) + int_field(20, INTS)
    return out + packed_floats(7, values) + int_field(20, FLOATS)


def node(op_type, inputs, outputs, name, domain="", **attributes):
    """NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7."""
    out = b"".join(bytes_field(1, i) for i in inputs) + b"".join(bytes_field(2, o) for o in outputs)
    out += bytes_field(3, name) + bytes_field(4, op_type)
    if domain:
        out += bytes_field(7, domain)
    for attr_name in sorted(attributes):
        if attributes[attr_name] is not None:
            out += bytes_field(5, attribute(attr_name, attributes[attr_name]))
    return out


def value_info(name, dtype, shape):
    """ValueInfoProto (name 1, type 2) of a tensor; a None or str dimension is symbolic."""
    dims = b""
    for d in shape:
        dim = bytes_field(2, d or "batch") if d is None or isinstance(d, str) else int_field(1, d)
        dims += bytes_field(1, dim)                                  # TensorShapeProto.dim
    tensor_type = int_field(1, DATA_TYPES[np.dtype(dtype)]) + bytes_field(2, dims)
    return bytes_field(1, name) + bytes_field(2, bytes_field(1, tensor_type))


def graph(name, nodes, initializers, inputs, outputs):
    """GraphProto: node 1, name 2, initializer 5, input 11, output 12."""
    return (b"".join(bytes_field(1, n) for n in nodes) + bytes_field(2, name)
            + b"".join(bytes_field(5, t) for t in initializers)
            + b"".join(bytes_field(11, i) for i in inputs) + b"".join(bytes_field(12, o) for o in outputs))


def model(graph_bytes, opsets, ir_version, producer, version, metadata, doc=""):
    """ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6, graph 7,
    opset_import 8 (OperatorSetIdProto: domain 1, version 2), metadata_props 14 (key 1, value 2).
    ``opsets`` maps each domain ("" is the default one) to its version."""
    out = int_field(1, ir_version) + bytes_field(2, producer) + bytes_field(3, version)
    if doc:
        out += bytes_field(6, doc)
    out += bytes_field(7, graph_bytes)
    for domain, opset in opsets.items():
        out += bytes_field(8, bytes_field(1, domain) + int_field(2, opset))
    for k, v in metadata.items():
        out += bytes_field(14, bytes_field(1, k) + bytes_field(2, v))
    return out
