"""The recurrent helper process itself, and the wire both sides speak.

A packet is an 8-byte little-endian length and a pickled tuple, with file descriptors (a memfd
arena) passed alongside over the Unix socket. Requests name the loop functions themselves
(pickled by reference, e.g. ``dltrain.layers.recurrent_cells.lstm_forward``), so this module
knows no layer: it maps arenas, runs the loops it is sent on views of them, keeps each forward
loop's cache until its backward, and answers "ok" or the traceback of its error.
"""
import mmap
import os
import pickle
import signal
import socket
import struct
import traceback

import numpy as np

HEADER = struct.Struct("<Q")


def packet(message):
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def receive(sock):
    """(message, file descriptors) of the next packet; EOFError at the end of the stream."""
    header, fds, _, _ = socket.recv_fds(sock, HEADER.size, 4)
    while len(header) < HEADER.size:
        more = sock.recv(HEADER.size - len(header))
        if not more:
            raise EOFError("the other side closed the connection")
        header += more
    (length,) = HEADER.unpack(header)
    data = bytearray()
    while len(data) < length:
        more = sock.recv(min(length - len(data), 1 << 20))
        if not more:
            raise EOFError("the other side closed the connection")
        data += more
    return pickle.loads(data), fds


def _view(arenas, description):
    if description is None:
        return None
    key, offset, shape, strides, dtype = description
    return np.ndarray(shape, dtype=np.dtype(dtype), buffer=arenas[key], offset=offset, strides=strides)


def _handle(message, fds, arenas, caches):
    kind = message[0]
    if kind == "hello":
        return None
    if kind == "count":                                  # for tests: what it holds
        return len(arenas), len(caches)
    if kind == "arena":
        _, key, size = message
        arenas[key] = mmap.mmap(fds[0], size)
        os.close(fds[0])
    elif kind == "release":
        for what, key in message[1]:
            (arenas if what == "arena" else caches).pop(key, None)
    elif kind == "forward":
        _, key, loop, weights, units, operand, mask, kernels = message
        caches[key] = loop(weights, _view(arenas, operand), units, _view(arenas, mask), **kernels)
    elif kind == "backward":
        _, key, loop, grad_h, grad_last, mask, out, kernels = message
        h, cache = caches.pop(key)
        loop(_view(arenas, grad_h), grad_last, h, cache, _view(arenas, mask), out=_view(arenas, out), **kernels)
    else:
        raise ValueError(f"unknown message {kind!r}")
    return None


def serve(fd):
    """The helper's loop: answer each message until the layer's process closes the socket."""
    from dltrain import allocator

    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is for the training process
    allocator.tune()                                     # as fit does: no page faults per batch
    sock = socket.socket(fileno=fd)
    arenas, caches = {}, {}
    while True:
        try:
            message, fds = receive(sock)
        except (EOFError, ConnectionError):
            return
        try:
            with np.errstate(over="ignore"):
                reply = ("ok", _handle(message, fds, arenas, caches))
        except Exception:                                # sent back and raised there
            reply = ("error", traceback.format_exc())
        sock.sendall(packet(reply))
