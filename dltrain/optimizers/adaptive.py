"""Per-parameter rates from squared gradients: RMSprop (a running average) and Adagrad (a sum)."""
from dltrain import check
from dltrain.backend import array_module
from dltrain.optimizers.base import Optimizer
from dltrain.registry import register


@register("rmsprop")
class RMSprop(Optimizer):
    """Divides the gradient by a running root mean square (Keras 3's form).

    v <- rho v + (1 - rho) g^2;  p <- p - lr g / sqrt(v + epsilon)
    (centered: v - m^2 in the root, m the running mean of g; momentum: applied to the increment)

    Args:
        learning_rate: step size, or a schedule.
        rho: decay of the running average, in [0, 1).
        momentum: in [0, 1].
        epsilon: added inside the square root for stability.
        centered: normalize by the variance estimate instead of the second moment.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.rho = check.fraction("rho", rho)
        self.momentum = check.fraction("momentum", momentum, closed=True)
        self.epsilon = check.positive("epsilon", epsilon)
        self.centered = check.boolean("centered", centered)
        self.slot_names = ("velocity",) + (("average_gradient",) if centered else ()) \
            + (("momentum",) if self.momentum else ())

    def update(self, param, grad, slots, lr):
        dtype = param.dtype.type
        v = slots["velocity"]
        xp = array_module(param)
        scratch = self._scratch(param)                 # one buffer reused: no allocation per step
        xp.multiply(grad, grad, out=scratch)
        scratch *= dtype(1 - self.rho)
        v *= dtype(self.rho)
        v += scratch                                   # v <- rho v + (1 - rho) g^2
        if self.centered:
            m = slots["average_gradient"]
            m *= dtype(self.rho)
            m += dtype(1 - self.rho) * grad
            xp.multiply(m, m, out=scratch)
            xp.subtract(v, scratch, out=scratch)       # v - m^2
            scratch += dtype(self.epsilon)
        else:
            xp.add(v, dtype(self.epsilon), out=scratch)
        xp.sqrt(scratch, out=scratch)
        xp.divide(grad, scratch, out=scratch)
        scratch *= lr                                  # the increment lr g / sqrt(...)
        if self.momentum:
            buf = slots["momentum"]
            buf *= dtype(self.momentum)
            buf += scratch
            scratch = buf
        param -= scratch

    def _scratch(self, param):
        buffers = self.__dict__.setdefault("_buffers", {})
        key = (param.shape, param.dtype.str, array_module(param).__name__)
        if key not in buffers:
            buffers[key] = array_module(param).empty_like(param)
        return buffers[key]


@register("adagrad")
class Adagrad(Optimizer):
    """Per-parameter rates from the sum of squared gradients (Duchi et al. 2011).

    a <- a + g^2;  p <- p - lr g / sqrt(a + epsilon)

    Args:
        learning_rate: step size, or a schedule.
        initial_accumulator_value: starting value of a, >= 0.
        epsilon: added inside the root for stability.
    """

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.initial_accumulator_value = check.non_negative(
            "initial_accumulator_value", initial_accumulator_value)
        self.epsilon = check.positive("epsilon", epsilon)

    def init_slots(self, slots, param):
        slots["accumulator"][...] = self.initial_accumulator_value

    def update(self, param, grad, slots, lr):
        a = slots["accumulator"]
        a += grad * grad
        param -= lr * grad / array_module(param).sqrt(a + param.dtype.type(self.epsilon))
