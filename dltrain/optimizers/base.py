"""The Optimizer base: the learning rate or its schedule, gradient clipping, the per-key slots
and their state; a subclass writes only ``update(param, grad, slots, lr)``."""
import numpy as np

from dltrain import check, schedules  # noqa: F401  (learning_rate may name a schedule)
from dltrain.backend import array_module
from dltrain.registry import build


class Optimizer:
    kind = "optimizer"
    slot_names = ()

    def __init__(self, learning_rate=0.001, clipnorm=None, clipvalue=None, global_clipnorm=None):
        if isinstance(learning_rate, (dict, str)):
            self.schedule = build("schedule", learning_rate)
        else:
            self.schedule = None
            check.positive("learning_rate", learning_rate)
        self.learning_rate = learning_rate
        self.rate = None if self.schedule is not None else float(learning_rate)   # the rate in use
        self.clipnorm = None if clipnorm is None else check.positive("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else check.positive("clipvalue", clipvalue)
        self.global_clipnorm = (None if global_clipnorm is None
                                else check.positive("global_clipnorm", global_clipnorm))
        self.iterations = 0
        self.slots = {}

    @property
    def current_learning_rate(self):
        """The rate the next step will use."""
        if self.schedule is not None:
            return float(self.schedule(self.iterations))
        return self.rate

    def set_rate(self, value):
        """Use ``value`` as the (fixed) learning rate from the next step on."""
        self.rate = float(value)

    def apply(self, pairs):
        """One update of every (key, param, grad): clip, then the rule of the subclass, in place."""
        pairs = list(pairs)
        self.update_all(pairs, self.clip([g for _, _, g in pairs]))

    def update_all(self, pairs, grads):
        """The rule of the subclass on every (key, param, _) with its (clipped) gradient."""
        lr = self.current_learning_rate
        self.iterations += 1
        for (key, param, _), grad in zip(pairs, grads):
            slots = self.slots.get(key)
            if slots is None:
                slots = self.slots[key] = {name: array_module(param).zeros_like(param) for name in self.slot_names}
                self.init_slots(slots, param)
            self.update(param, grad, slots, param.dtype.type(lr))

    def clip(self, grads):
        """The gradients after clipvalue, clipnorm and global_clipnorm (the list itself when none).

        The norms stay on the device (no read back per step): the factors are min(1, limit / norm)."""
        if self.clipvalue is not None:
            grads = [g.clip(-self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            grads = [g * _factor(self.clipnorm, (g * g).sum().astype(np.float64) ** 0.5 + 1e-12, g.dtype)
                     for g in grads]
        if self.global_clipnorm is not None and grads:
            total = sum((g * g).sum().astype(np.float64) for g in grads) ** 0.5
            grads = [g * _factor(self.global_clipnorm, total, g.dtype) for g in grads]
        return grads

    def init_slots(self, slots, param):
        pass

    def update(self, param, grad, slots, lr):
        raise NotImplementedError

    def state_dict(self):
        """Arrays and numbers that restore this optimizer exactly."""
        state = {"iterations": np.asarray(self.iterations)}
        for key, slots in self.slots.items():
            for name, value in slots.items():
                state[f"{key}/{name}"] = value
        return state

    def load_state_dict(self, state):
        self.iterations = int(state["iterations"])
        self.slots = {}
        for path, value in state.items():
            if path == "iterations":
                continue
            key, name = path.rsplit("/", 1)
            self.slots.setdefault(key, {})[name] = np.array(value)


def _factor(limit, norm, dtype):
    """min(1, limit / norm) as a 0-d array of ``dtype``, on the device the norm is on."""
    return (limit / norm).clip(None, 1.0).astype(dtype)
