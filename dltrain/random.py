"""All randomness of a run: one seed, split into named, independent streams.

``Streams(seed).get("shuffle")`` is a ``numpy.random.Generator`` whose sequence depends only on the
seed and the name, so adding a stream never shifts another. ``state()`` / ``load_state()`` capture
and restore every stream exactly (for resume).
"""
import zlib

import numpy as np


class Streams:
    def __init__(self, seed):
        self.seed = int(seed)
        self.generators = {}

    def get(self, name):
        if name not in self.generators:
            sequence = np.random.SeedSequence([self.seed, zlib.crc32(name.encode())])
            self.generators[name] = np.random.Generator(np.random.PCG64(sequence))
        return self.generators[name]

    def for_epoch(self, name, epoch):
        """A generator fixed by (seed, name, epoch): the same batches for an epoch, resumed or not."""
        sequence = np.random.SeedSequence([self.seed, zlib.crc32(name.encode()), epoch])
        return np.random.Generator(np.random.PCG64(sequence))

    def state(self):
        return {name: g.bit_generator.state for name, g in self.generators.items()}

    def load_state(self, state):
        for name, value in state.items():
            self.get(name).bit_generator.state = value
