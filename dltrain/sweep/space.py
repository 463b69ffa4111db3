"""The search space: one distribution per `--set` path, sampled with one seeded generator.

```yaml
parameters:
  optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
  model.layers[1].units: {choice: [32, 64, 128]}
  model.layers[2].rate: {uniform: [0.0, 0.5]}
  training.batch_size: {grid: [16, 32]}
  model.layers[1].units: {int_uniform: [16, 256]}
  optimizer.momentum: {quantized: [0.5, 0.95, 0.05]}   # uniform, rounded to a multiple of 0.05
```

A trial's id is a hash of its parameter values, so the same values are the same trial: a
sweep never runs them twice.
"""
import hashlib
import itertools
import json
import math

from dltrain.errors import ConfigError

KINDS = ("choice", "grid", "uniform", "log_uniform", "int_uniform", "quantized")
EXPECTED = {
    "choice": "{choice: [value, value, ...]} (one or more values)",
    "grid": "{grid: [value, value, ...]} (one or more values)",
    "uniform": "{uniform: [low, high]} with low < high",
    "log_uniform": "{log_uniform: [low, high]} with 0 < low < high",
    "int_uniform": "{int_uniform: [low, high]}, integers, low <= high",
    "quantized": "{quantized: [low, high, step]} with low < high and step > 0",
}


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


class Distribution:
    """One parameter's values: ``kind`` (a name from KINDS) and its ``args`` as written."""

    def __init__(self, path, kind, args):
        self.path, self.kind, self.args = path, kind, list(args)

    @property
    def finite(self):
        """True when the values can be listed (choice, grid, int_uniform)."""
        return self.kind in ("choice", "grid", "int_uniform")

    @property
    def log(self):
        return self.kind == "log_uniform"

    def values(self):
        """Every value, for grid search (finite kinds only)."""
        if self.kind == "int_uniform":
            return list(range(self.args[0], self.args[1] + 1))
        return list(self.args)

    def extremes(self):
        """The values a config check tries: every listed value, or both ends of a range."""
        return self.values() if self.kind in ("choice", "grid") else [self.args[0], self.args[1]]

    def sample(self, rng):
        """One value drawn with ``rng`` (a numpy Generator); plain Python types."""
        if self.kind in ("choice", "grid"):
            return self.args[int(rng.integers(len(self.args)))]
        low, high = self.args[0], self.args[1]
        if self.kind == "int_uniform":
            return int(rng.integers(low, high + 1))
        if self.kind == "uniform":
            return float(rng.uniform(low, high))
        if self.kind == "log_uniform":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return self.quantize(float(rng.uniform(low, high)))

    def quantize(self, value):
        low, high, step = self.args
        steps = math.floor((high - low) / step + 1e-9)
        value = low + min(steps, max(0, round((value - low) / step))) * step
        if all(_integer(a) for a in self.args):
            return int(value)
        decimals = max(0, -math.floor(math.log10(step)) + 6)
        return round(value, decimals)

    def spec(self):
        return {self.kind: self.args}


def check(path, spec, where):
    """The Distribution one entry of ``parameters`` describes; a ConfigError located at ``where``."""
    from dltrain.registry import suggest

    every = "; ".join(EXPECTED.values())
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"parameter {path!r}: {spec!r} is not a distribution", where=where,
                          expected=every, fix="write one distribution, e.g. {uniform: [0.0, 0.5]}.")
    (kind, args), = spec.items()
    if kind not in KINDS:
        raise ConfigError(f"parameter {path!r}: unknown distribution {kind!r}", where=where,
                          expected=", ".join(KINDS), fix=suggest(kind, KINDS))
    problem = _problem(kind, args) if isinstance(args, list) else f"{kind} takes a list, not {args!r}"
    if problem:
        raise ConfigError(f"parameter {path!r}: {problem}", where=where, expected=EXPECTED[kind])
    return Distribution(path, kind, args)


def _problem(kind, args):
    if kind in ("choice", "grid"):
        return None if args else f"{kind} needs at least one value"
    count = 3 if kind == "quantized" else 2
    if len(args) != count or not all(_number(a) for a in args):
        return f"{kind} needs {count} numbers, not {args!r}"
    low, high = args[0], args[1]
    if kind == "int_uniform":
        if not (_integer(low) and _integer(high)):
            return f"int_uniform bounds must be integers, not {args!r}"
        return None if low <= high else f"low {low!r} is above high {high!r}"
    if not low < high:
        return f"low {low!r} must be below high {high!r}"
    if kind == "log_uniform" and low <= 0:
        return f"log_uniform needs a positive low bound, not {low!r}"
    if kind == "quantized" and args[2] <= 0:
        return f"the step must be positive, not {args[2]!r}"
    return None


class Space:
    """The distributions in the order written."""

    def __init__(self, distributions):
        self.distributions = list(distributions)

    @property
    def paths(self):
        return [d.path for d in self.distributions]

    def grid(self):
        """Every combination of the listed values, the first parameter varying slowest."""
        values = [d.values() for d in self.distributions]
        return [dict(zip(self.paths, combo)) for combo in itertools.product(*values)]

    def grid_size(self):
        return math.prod(len(d.values()) for d in self.distributions)

    def sample(self, rng):
        return {d.path: d.sample(rng) for d in self.distributions}

    def samples(self, count, seed):
        """``count`` distinct parameter sets drawn in order from ``seed`` (fewer when the space
        has fewer distinct values): the same list on every run, whatever the parallelism."""
        import numpy as np

        rng = np.random.default_rng(seed)
        found, seen = [], set()
        for _ in range(max(100, 100 * count)):
            if len(found) == count:
                break
            params = self.sample(rng)
            if trial_id(params) not in seen:
                seen.add(trial_id(params))
                found.append(params)
        return found

    def spec(self):
        return {d.path: d.spec() for d in self.distributions}


def trial_id(params):
    """8 hex digits of the SHA-256 of the parameter values (keys sorted, JSON)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def override(path, value):
    """The `--set` text for one parameter value (JSON is YAML, and keeps a float exact)."""
    return f"{path}={json.dumps(value)}"


def parse_path(path):
    """The key path of a parameter's name, or a ConfigError saying why it is not one."""
    from dltrain.config.resolve import parse_override

    if not isinstance(path, str):
        raise ConfigError(f"parameter name {path!r} is not a --set path")
    return parse_override(f"{path}=0")[0]
