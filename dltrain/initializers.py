"""Weight initializers: ``initializer(shape, rng, dtype) -> array``.

Fans follow Keras: for a kernel of shape (..., fan_in, fan_out) the leading axes are the receptive
field, which multiplies both fans.
"""
import numpy as np

from dltrain import check
from dltrain.registry import register


def fans(shape):
    """(fan_in, fan_out) of a weight shape."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def truncated_normal(rng, shape, stddev):
    """Normal samples with |z| < 2, as Keras's variance-scaling initializers draw them."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) >= 2
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) >= 2
    # 0.8796... is the standard deviation of a standard normal truncated to (-2, 2)
    return z * (stddev / 0.87962566103423978)


class Initializer:
    kind = "initializer"

    def __call__(self, shape, rng, dtype=np.float32):
        # contiguous: a transposed view (orthogonal) would make in-place updates touch a copy
        return np.ascontiguousarray(self.sample(tuple(shape), rng), dtype=dtype)


class VarianceScaling(Initializer):
    """Samples with variance scale / fan, from a truncated normal or a uniform distribution."""

    scale, mode, distribution = 1.0, "fan_in", "uniform"

    def sample(self, shape, rng):
        fan_in, fan_out = fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "normal":
            return truncated_normal(rng, shape, np.sqrt(variance))
        limit = np.sqrt(3 * variance)
        return rng.uniform(-limit, limit, shape)


def _variance_scaling(name, scale, mode, distribution, doc):
    cls = type(name, (VarianceScaling,), {
        "scale": scale, "mode": mode, "distribution": distribution, "__doc__": doc})
    return register(name)(cls)


_variance_scaling("glorot_uniform", 1.0, "fan_avg", "uniform",
                  "Uniform in ±sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010).")
_variance_scaling("glorot_normal", 1.0, "fan_avg", "normal",
                  "Truncated normal with stddev sqrt(2 / (fan_in + fan_out)).")
_variance_scaling("he_uniform", 2.0, "fan_in", "uniform",
                  "Uniform in ±sqrt(6 / fan_in) (He et al. 2015), for ReLU networks.")
_variance_scaling("he_normal", 2.0, "fan_in", "normal",
                  "Truncated normal with stddev sqrt(2 / fan_in), for ReLU networks.")
_variance_scaling("lecun_uniform", 1.0, "fan_in", "uniform",
                  "Uniform in ±sqrt(3 / fan_in) (LeCun 1998), for SELU networks.")
_variance_scaling("lecun_normal", 1.0, "fan_in", "normal",
                  "Truncated normal with stddev sqrt(1 / fan_in), for SELU networks.")


@register("orthogonal")
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal sample, times gain.

    Args:
        gain: multiplier of the orthogonal matrix.
    """

    def __init__(self, gain=1.0):
        self.gain = check.number("gain", gain)

    def sample(self, shape, rng):
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        cols = shape[-1]
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))           # a uniform distribution over orthogonal matrices
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


@register("zeros")
class Zeros(Initializer):
    """All zeros."""

    def sample(self, shape, rng):
        return np.zeros(shape)


@register("ones")
class Ones(Initializer):
    """All ones."""

    def sample(self, shape, rng):
        return np.ones(shape)


@register("constant")
class Constant(Initializer):
    """Every element equal to value.

    Args:
        value: the constant.
    """

    def __init__(self, value=0.0):
        self.value = check.number("value", value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)


@register("random_normal")
class RandomNormal(Initializer):
    """Normal samples.

    Args:
        mean: mean of the distribution.
        stddev: standard deviation, > 0.
    """

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = check.number("mean", mean)
        self.stddev = check.positive("stddev", stddev)

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)


@register("random_uniform")
class RandomUniform(Initializer):
    """Uniform samples in [minval, maxval).

    Args:
        minval: lower bound.
        maxval: upper bound, > minval.
    """

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval = check.number("minval", minval)
        self.maxval = check.number("maxval", maxval)
        if self.maxval <= self.minval:
            check._fail("maxval", maxval, f"a number greater than minval={minval}")

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)
