"""safetensors files, written and read without the safetensors package.

The format (https://github.com/huggingface/safetensors): 8 bytes little-endian u64 N, then N
bytes of JSON ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
"__metadata__": {str: str}}`` (padded with spaces to a multiple of 8), then the raw
little-endian bytes of every tensor, offsets counted from the end of the header. Names are
dltrain's ``layer/parameter`` keys (``Model.state_dict``), moving statistics included.
"""
import json
import struct

import numpy as np

from dltrain.errors import CheckpointError

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}


def encode(arrays, metadata=None):
    """The bytes of a safetensors file holding ``arrays`` ({name: array}), tensors in name order."""
    header, chunks, offset = {}, [], 0
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(data, where="safetensors file"):
    """({name: array}, metadata) from the bytes of a safetensors file."""
    if len(data) < 8:
        raise CheckpointError(f"{where} is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise CheckpointError(f"{where}: its header claims {length} bytes, the file has {len(data) - 8}")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where}: the header is not JSON ({error})") from None
    metadata = header.pop("__metadata__", {}) or {}
    body, arrays = memoryview(data)[8 + length:], {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if info["dtype"] not in DTYPES or not 0 <= begin <= end <= len(body):
            raise CheckpointError(f"{where}: tensor {name!r} has dtype {info['dtype']} or offsets "
                                  f"{info['data_offsets']} that cannot be read")
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        array = np.frombuffer(body[begin:end], dtype=dtype)
        if array.size != int(np.prod(info["shape"])):
            raise CheckpointError(f"{where}: tensor {name!r} holds {array.size} values, not shape {info['shape']}")
        arrays[name] = array.reshape(info["shape"]).astype(dtype.newbyteorder("="))
    return arrays, metadata


def save(path, arrays, metadata=None):
    from dltrain.training.files import atomic_open

    with atomic_open(path, "wb") as f:
        f.write(encode(arrays, metadata))
    return path


def load(path):
    try:
        data = open(path, "rb").read()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror}") from None
    return decode(data, str(path))


def metadata_of(loaded):
    """What a reader needs beside the arrays: the format, the run, the class names."""
    names = loaded.class_names
    record = {"format": "dltrain", "run": str(loaded.run_dir), "input_shape": json.dumps(list(loaded.model.input_shape))}
    if names:
        record["class_names"] = json.dumps([str(n) for n in names])
    return record
