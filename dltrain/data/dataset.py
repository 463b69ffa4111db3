"""Splits and the preprocessing pipeline.

A ``Split`` is a view of a source's arrays through an index list (no copy, so memory-mapped
arrays stay on disk); batches are gathered and preprocessed one at a time.
"""
import numpy as np

from dltrain import check
from dltrain.data.arrays import chunk_rows, gather
from dltrain.errors import ConfigError, DataError
from dltrain.registry import build


class Split:
    def __init__(self, x, y, indices=None, name="train"):
        self.x, self.y, self.name = x, y, name
        self.indices = np.arange(len(x)) if indices is None else np.asarray(indices)

    def __len__(self):
        return len(self.indices)

    def take(self, positions):
        """Raw (x, y) of the samples at ``positions`` of this split."""
        rows = self.indices[positions]
        if isinstance(self.x, np.memmap):       # read from the file, not through the mapping
            return gather(self.x, rows), (None if self.y is None else gather(self.y, rows))
        return self.x[rows], (None if self.y is None else self.y[rows])

    def take_share(self, positions, comm):
        """Raw (x, y) of this process's share (``comm.share``) of the batch at ``positions``."""
        return self.take(positions[comm.share(len(positions))])

    def arrays(self):
        return self.take(np.arange(len(self)))


class Pipeline:
    """Preprocessing steps in order; ``fit`` learns each step on the output of the ones before."""

    def __init__(self, steps=()):
        self.steps = list(steps)

    @classmethod
    def from_config(cls, specs, where):
        if specs is None:
            return cls()
        if not isinstance(specs, list):
            raise ConfigError("data.preprocessing must be a list of steps",
                              where=where(("data", "preprocessing")))
        return cls([build("preprocessing", spec, where(("data", "preprocessing", i)))
                    for i, spec in enumerate(specs)])

    def fit(self, x):
        return self.fit_split(Split(x, None))

    def fit_split(self, split, rows=None):
        """Fit each step, in order, on chunks of the split passed through the steps before it;
        a memory-mapped split is read chunk by chunk, never whole."""
        rows = rows or chunk_rows(split.x)

        def chunks(before):
            for start in range(0, len(split), rows):
                x, _ = split.take(np.arange(start, min(start + rows, len(split))))
                for step in before:
                    x = step.transform(x)
                yield x

        for i, step in enumerate(self.steps):
            step.fit_chunks(lambda before=tuple(self.steps[:i]): chunks(before))
        return self

    @property
    def augments(self):
        """Whether a step is a random augmentation (applied to training batches only)."""
        return any(getattr(step, "augments", False) for step in self.steps)

    def transform(self, x, rng=None):
        """Apply every step; augmentation steps get ``rng`` in training (None: evaluate, predict)."""
        for step in self.steps:
            x = step.transform(x, rng) if getattr(step, "augments", False) else step.transform(x)
        return np.asarray(x, dtype=np.float32) if x.dtype != np.float32 and x.dtype.kind != "U" else x

    def state_dict(self):
        state = {}
        for i, step in enumerate(self.steps):
            for key, value in step.state_dict().items():
                if value is not None:
                    state[f"{i}/{key}"] = np.asarray(value)
        return state

    def load_state_dict(self, state):
        for i, step in enumerate(self.steps):
            prefix = f"{i}/"
            step.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def split_off(split, spec, name, rng, where):
    """(rest, held out) of a split by ``{split: fraction, stratify: bool}``."""
    fraction = spec.get("split")
    try:
        check.fraction("split", fraction)
    except ConfigError as error:
        error.where = where
        raise
    if fraction == 0:
        return split, None
    stratify = spec.get("stratify", False)
    positions = rng.permutation(len(split))
    if stratify and split.y is not None:
        labels = np.asarray(split.y)[split.indices[positions]]
        held = []
        for label in np.unique(labels):
            members = positions[labels == label]
            held.append(members[: int(round(len(members) * fraction))])
        held = np.sort(np.concatenate(held))
    else:
        held = np.sort(positions[: int(round(len(split) * fraction))])
    keep = np.setdiff1d(np.arange(len(split)), held)
    if len(held) == 0 or len(keep) == 0:
        raise DataError(f"a {name} split of {fraction} leaves {len(keep)} training and "
                        f"{len(held)} {name} samples of {len(split)}",
                        fix="use more data or another split fraction.")
    return (Split(split.x, split.y, split.indices[keep], split.name),
            Split(split.x, split.y, split.indices[held], name))
