"""Preprocessing steps, fitted on the training split only and saved with the model.

A step has ``fit(x)`` (learn statistics), ``transform(x)`` and ``state_dict()`` /
``load_state_dict()``, so ``evaluate`` and ``predict`` apply exactly what ``fit`` applied.
"""
import numpy as np

from dltrain import check
from dltrain.registry import register


class Preprocessing:
    kind = "preprocessing"

    def fit(self, x):
        pass

    def fit_chunks(self, chunks):
        """Learn from ``chunks()``, an iterator of arrays (the training split in pieces); steps
        whose statistics stream override this, the rest see the chunks joined."""
        if type(self).fit is not Preprocessing.fit:
            self.fit(np.concatenate(list(chunks())))

    def transform(self, x):
        raise NotImplementedError

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        for key, value in state.items():
            setattr(self, key, np.asarray(value))


@register("rescale")
class Rescale(Preprocessing):
    """x * scale + offset (e.g. scale 1/255 for 8-bit images).

    Args:
        scale: multiplier.
        offset: added after scaling.
    """

    def __init__(self, scale, offset=0.0):
        self.scale = check.number("scale", scale)
        self.offset = check.number("offset", offset)

    def transform(self, x):
        y = np.multiply(x, np.float32(self.scale), dtype=np.float32)
        if self.offset:
            y += np.float32(self.offset)
        return y


@register("standardize")
class Standardize(Preprocessing):
    """(x - mean) / std per feature, with mean and std from the training split.

    Args:
        epsilon: floor of the standard deviation (constant features are left centred).
    """

    def __init__(self, epsilon=1e-7):
        self.epsilon = check.positive("epsilon", epsilon)
        self.mean = self.std = None

    def fit(self, x):
        self.fit_chunks(lambda: iter([x]))

    def fit_chunks(self, chunks):
        # sums of (x - shift) in float64, shifted by the first chunk's mean against cancellation
        count, total, squares, shift = 0, 0.0, 0.0, None
        for x in chunks():
            x = np.asarray(x, dtype=np.float64)
            shift = x.mean(axis=0) if shift is None else shift
            d = x - shift
            squares = squares + np.einsum("i...,i...->...", d, d)    # no (rows, ...) temporary
            count, total = count + len(x), total + d.sum(axis=0)
        mean = total / count
        self.mean = (shift + mean).astype(np.float32)
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        self.std = np.maximum(std, self.epsilon).astype(np.float32)

    def transform(self, x):
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}


@register("min_max", aliases=("minmax",))
class MinMax(Preprocessing):
    """Scale each feature to ``feature_range`` by its training minimum and maximum.

    Args:
        feature_range: [low, high] of the output.
        per_feature: false scales by the minimum and maximum over all values instead.
    """

    def __init__(self, feature_range=(0.0, 1.0), per_feature=True):
        low, high = _pair("feature_range", feature_range)
        self.feature_range = (float(low), float(high))
        self.per_feature = check.boolean("per_feature", per_feature)
        self.data_min = self.data_max = None

    def fit_chunks(self, chunks):
        axis = 0 if self.per_feature else None
        lows, highs = zip(*[(np.min(x, axis=axis), np.max(x, axis=axis)) for x in chunks()])
        self.data_min = np.min(lows, axis=0).astype(np.float32)
        self.data_max = np.max(highs, axis=0).astype(np.float32)

    def transform(self, x):
        low, high = self.feature_range
        span = np.where(self.data_max > self.data_min, self.data_max - self.data_min, 1.0)
        scale = ((high - low) / span).astype(np.float32)
        return ((np.asarray(x, dtype=np.float32) - self.data_min) * scale + np.float32(low)) \
            .astype(np.float32, copy=False)

    def state_dict(self):
        return {"data_min": self.data_min, "data_max": self.data_max}


def _pair(name, value):
    from dltrain.errors import ConfigError

    if not isinstance(value, (list, tuple)) or len(value) != 2 \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) \
            or not value[0] < value[1]:
        raise ConfigError(f"{name}={value!r} must be two numbers [low, high] with low < high")
    return value


@register("clip")
class Clip(Preprocessing):
    """Limit values to [min, max] (either may be null for no bound).

    Args:
        min: the lowest value kept.
        max: the highest value kept.
    """

    def __init__(self, min=None, max=None):
        from dltrain.errors import ConfigError

        self.min = None if min is None else check.number("min", min)
        self.max = None if max is None else check.number("max", max)
        if self.min is None and self.max is None:
            raise ConfigError("clip needs min, max or both", fix="add `min: ...` or `max: ...`.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"clip min {self.min} is above max {self.max}")

    def transform(self, x):
        return np.clip(np.asarray(x, dtype=np.float32), self.min, self.max)


@register("log")
class Log(Preprocessing):
    """log(x + offset), for heavy-tailed counts and amounts; x + offset must stay positive.

    Args:
        offset: added before the logarithm (1 gives log1p, which keeps zeros at zero).
    """

    def __init__(self, offset=1.0):
        self.offset = check.number("offset", offset)

    def transform(self, x):
        x = np.asarray(x, dtype=np.float32) + np.float32(self.offset)
        if not (x > 0).all():
            from dltrain.errors import DataError

            raise DataError(f"log: a value is {float(x[~(x > 0)].min() - self.offset):g}, so "
                            f"x + offset ({self.offset:g}) is not positive",
                            fix="raise `offset`, or clip the data first (`{type: clip, min: 0}`).")
        return np.log(x)


@register("one_hot")
class OneHot(Preprocessing):
    """Replace integer-coded feature columns by one-hot blocks of the values seen in training.

    Args:
        columns: the feature positions to encode (0-based); null for every feature.
        unknown: what a value unseen in training becomes: error, or zeros (an all-zero block).

    Shapes: (batch, features) -> (batch, features - len(columns) + total categories)
    """

    changes_shape = True

    def __init__(self, columns=None, unknown="error"):
        self.columns = None if columns is None else [check.non_negative_int("columns", c) for c in columns]
        self.unknown = check.one_of("unknown", unknown, ("error", "zeros"))
        self.categories = None

    def _columns(self, x):
        return list(range(x.shape[1])) if self.columns is None else self.columns

    def fit_chunks(self, chunks):
        seen = None
        for x in chunks():
            x = np.asarray(x)
            if x.ndim != 2 or max(self._columns(x), default=-1) >= x.shape[1]:
                from dltrain.errors import DataError

                raise DataError(f"one_hot needs (samples, features) inputs with the columns "
                                f"{self._columns(x)}; the data has shape {x.shape[1:]} per sample")
            found = [np.unique(x[:, c]) for c in self._columns(x)]
            seen = found if seen is None else [np.union1d(a, b) for a, b in zip(seen, found)]
        self.categories = [s.astype(np.float32) for s in seen]
        self.columns = self._columns(x)

    def transform(self, x):                                       # (batch, features)
        x = np.asarray(x, dtype=np.float32)
        blocks, encoded = [], dict(zip(self.columns, self.categories))
        for c in range(x.shape[1]):
            if c not in encoded:
                blocks.append(x[:, c:c + 1])
                continue
            cats = encoded[c]
            codes = np.minimum(np.searchsorted(cats, x[:, c]), len(cats) - 1)
            known = cats[codes] == x[:, c]                          # (batch,)
            if self.unknown == "error" and not known.all():
                from dltrain.errors import DataError

                raise DataError(f"one_hot: feature {c} has the value {x[~known, c][0]:g}, unseen "
                                "in training", expected=", ".join(f"{v:g}" for v in cats[:20]),
                                fix="set `unknown: zeros` on the step, or retrain with that value.")
            blocks.append(((codes[:, None] == np.arange(len(cats))) & known[:, None])
                          .astype(np.float32))                     # (batch, categories)
        return np.concatenate(blocks, axis=1)

    def state_dict(self):
        if self.categories is None:
            return {}
        return {"columns": np.asarray(self.columns, dtype=np.int64),
                **{f"categories_{i}": c for i, c in enumerate(self.categories)}}

    def load_state_dict(self, state):
        if "columns" in state:
            self.columns = [int(c) for c in state["columns"]]
            self.categories = [np.asarray(state[f"categories_{i}"], dtype=np.float32)
                               for i in range(len(self.columns))]
