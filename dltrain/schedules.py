"""Learning-rate schedules: the rate as a pure function of the optimizer's step count.

Written as ``optimizer: {type: adam, learning_rate: {type: cosine_decay, ...}}``. A schedule holds
no state of its own: the optimizer's ``iterations`` (saved in every checkpoint) is the step, so a
resumed run continues the schedule exactly where it stopped. The formulas are Keras 3's
(``one_cycle`` is PyTorch's OneCycleLR with cosine annealing).
"""
import math

from dltrain import check
from dltrain.errors import ConfigError
from dltrain.registry import register


class Schedule:
    kind = "schedule"

    def __call__(self, step):
        """The learning rate for the update at ``step`` (0 for the first update)."""
        raise NotImplementedError


@register("exponential_decay")
class ExponentialDecay(Schedule):
    """lr = initial_learning_rate * decay_rate ^ (step / decay_steps) (floored with staircase).

    Args:
        initial_learning_rate: the rate at step 0, > 0.
        decay_steps: steps over which the rate is multiplied by decay_rate once, > 0.
        decay_rate: the factor per decay_steps, > 0.
        staircase: decay in whole steps of decay_steps instead of smoothly.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = check.positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check.positive_int("decay_steps", decay_steps)
        self.decay_rate = check.positive("decay_rate", decay_rate)
        self.staircase = check.boolean("staircase", staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


@register("piecewise_constant")
class PiecewiseConstant(Schedule):
    """values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
    values[-1] after the last boundary (Keras's PiecewiseConstantDecay).

    Args:
        boundaries: increasing step counts where the rate changes.
        values: the rates, one more than boundaries, each > 0.
    """

    def __init__(self, boundaries, values):
        if not isinstance(boundaries, list) or not all(isinstance(b, int) and b >= 0 for b in boundaries):
            raise ConfigError(f"boundaries must be a list of step counts, not {boundaries!r}")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ConfigError(f"boundaries must increase, not {boundaries!r}")
        if not isinstance(values, list) or len(values) != len(boundaries) + 1:
            raise ConfigError(f"values must list {len(boundaries) + 1} rates (one more than boundaries), "
                              f"not {values!r}")
        for value in values:
            check.positive("values", value)
        self.boundaries = boundaries
        self.values = values

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


@register("cosine_decay")
class CosineDecay(Schedule):
    """Linear warmup, then cosine decay to alpha * the peak rate.

    warmup (step < warmup_steps): lr = initial + (warmup_target - initial) * step / warmup_steps
    decay: lr = peak * ((1 - alpha) * 0.5 * (1 + cos(pi * min(s, decay_steps) / decay_steps)) + alpha),
    with s = step - warmup_steps and peak = warmup_target (initial_learning_rate without warmup).

    Args:
        initial_learning_rate: the rate at step 0, >= 0.
        decay_steps: steps of the cosine after the warmup, > 0.
        alpha: the final rate as a fraction of the peak, in [0, 1].
        warmup_target: the rate reached at the end of the warmup (none: no warmup).
        warmup_steps: steps of linear warmup, >= 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = check.non_negative("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check.positive_int("decay_steps", decay_steps)
        self.alpha = check.fraction("alpha", alpha, closed=True)
        self.warmup_target = None if warmup_target is None else check.positive("warmup_target", warmup_target)
        self.warmup_steps = check.non_negative_int("warmup_steps", warmup_steps)

    def __call__(self, step):
        peak = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        if step < self.warmup_steps:
            return self.initial_learning_rate + (peak - self.initial_learning_rate) * step / self.warmup_steps
        s = min(step - self.warmup_steps, self.decay_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * s / self.decay_steps))
        return peak * ((1 - self.alpha) * cosine + self.alpha)


@register("polynomial_decay")
class PolynomialDecay(Schedule):
    """lr = (initial - end) * (1 - s / decay_steps) ^ power + end, s = min(step, decay_steps).

    With cycle, decay_steps grows to the next multiple of itself past the step instead.

    Args:
        initial_learning_rate: the rate at step 0, > 0.
        decay_steps: steps to reach end_learning_rate, > 0.
        end_learning_rate: the final rate, >= 0.
        power: the polynomial's power, > 0 (1: linear).
        cycle: restart the decay every decay_steps (from a lower peak each time).
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False):
        self.initial_learning_rate = check.positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check.positive_int("decay_steps", decay_steps)
        self.end_learning_rate = check.non_negative("end_learning_rate", end_learning_rate)
        self.power = check.positive("power", power)
        self.cycle = check.boolean("cycle", cycle)

    def __call__(self, step):
        if self.cycle:
            steps = self.decay_steps * max(1, math.ceil(step / self.decay_steps))
        else:
            steps, step = self.decay_steps, min(step, self.decay_steps)
        fraction = (1 - step / steps) ** self.power
        return (self.initial_learning_rate - self.end_learning_rate) * fraction + self.end_learning_rate


@register("one_cycle")
class OneCycle(Schedule):
    """Smith's one-cycle policy: cosine up from max/div_factor to max over pct_start of the steps,
    then cosine down to max/(div_factor * final_div_factor) at total_steps (held after).

    Args:
        max_learning_rate: the peak rate, > 0.
        total_steps: length of the cycle in steps (epochs * batches per epoch), > 0.
        pct_start: fraction of the cycle spent increasing, in (0, 1).
        div_factor: initial rate = max_learning_rate / div_factor, > 0.
        final_div_factor: final rate = initial rate / final_div_factor, > 0.
    """

    def __init__(self, max_learning_rate, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
        self.max_learning_rate = check.positive("max_learning_rate", max_learning_rate)
        self.total_steps = check.positive_int("total_steps", total_steps)
        self.pct_start = check.fraction("pct_start", pct_start)
        self.div_factor = check.positive("div_factor", div_factor)
        self.final_div_factor = check.positive("final_div_factor", final_div_factor)

    def __call__(self, step):
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        up = max(1.0, self.pct_start * self.total_steps - 1)
        if step <= up:
            return _cosine(initial, self.max_learning_rate, step / up)
        down = max(1.0, self.total_steps - 1 - up)
        return _cosine(self.max_learning_rate, final, min(1.0, (step - up) / down))


def _cosine(start, end, fraction):
    """From start (fraction 0) to end (fraction 1) along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * fraction))
