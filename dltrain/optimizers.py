"""Optimizers: each updates parameters in place from their gradients, as Keras 3 defines it.

``apply(pairs)`` takes (key, param, grad) triples; slots (momenta, averages) are kept per key, so
``state_dict()`` / ``load_state_dict()`` save and restore them exactly. ``learning_rate`` is a
number or a schedule spec (``{type: exponential_decay, ...}``) evaluated at the step count; a
callback changes a fixed rate through ``set_rate`` (the constructor argument stays as written).
The training step calls the two halves of ``apply`` as stages: ``clip(grads)``, then
``update_all(pairs, grads)``.
"""
import numpy as np

from dltrain import check, schedules  # noqa: F401  (learning_rate may name a schedule)
from dltrain.backend import array_module
from dltrain.registry import build, register


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


@register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    v <- momentum v - lr g;  p <- p + v   (nesterov: p <- p + momentum v - lr g)

    Args:
        learning_rate: step size, or a schedule.
        momentum: in [0, 1].
        nesterov: use Nesterov momentum.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.momentum = check.fraction("momentum", momentum, closed=True)
        self.nesterov = check.boolean("nesterov", nesterov)
        self.slot_names = ("velocity",) if self.momentum else ()

    def update(self, param, grad, slots, lr):
        if not self.momentum:
            param -= lr * grad
            return
        v = slots["velocity"]
        v *= self.momentum
        v -= lr * grad
        if self.nesterov:
            param += self.momentum * v - lr * grad
        else:
            param += v


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


@register("adam")
class Adam(Optimizer):
    """Adaptive moment estimation (Kingma & Ba 2015), in Keras's form.

    m <- m + (g - m)(1 - beta_1);  v <- v + (g^2 - v)(1 - beta_2)
    p <- p - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

    Args:
        learning_rate: step size, or a schedule.
        beta_1: decay of the first moment, in [0, 1).
        beta_2: decay of the second moment, in [0, 1).
        epsilon: added to the root for stability.
        amsgrad: use the maximum of past second moments.
    """

    slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = check.fraction("beta_1", beta_1)
        self.beta_2 = check.fraction("beta_2", beta_2)
        self.epsilon = check.positive("epsilon", epsilon)
        self.amsgrad = check.boolean("amsgrad", amsgrad)
        if amsgrad:
            self.slot_names = self.slot_names + ("velocity_hat",)

    def update(self, param, grad, slots, lr):
        t = self.iterations
        dtype = param.dtype.type
        xp = array_module(param)
        alpha = dtype(lr * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t))
        m, v = slots["momentum"], slots["velocity"]
        m += (grad - m) * dtype(1 - self.beta_1)
        v += (grad * grad - v) * dtype(1 - self.beta_2)
        if self.amsgrad:
            xp.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
            v = slots["velocity_hat"]
        denominator = xp.sqrt(v)
        denominator += dtype(self.epsilon)
        step = m / denominator
        step *= alpha
        param -= step


@register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p <- p - lr wd p, then Adam.

    Args:
        learning_rate: step size, or a schedule.
        weight_decay: decay rate, >= 0 (Keras's default 0.004).
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to the root for stability.
        amsgrad: use the maximum of past second moments.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, clipnorm, clipvalue,
                         global_clipnorm)
        self.weight_decay = check.non_negative("weight_decay", weight_decay)

    def update(self, param, grad, slots, lr):
        param -= param * param.dtype.type(lr * self.weight_decay)
        super().update(param, grad, slots, lr)


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


@register("nadam")
class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2016), with Keras's momentum schedule.

    u_t = beta_1 (1 - 0.5 * 0.96^t) (Keras 3; Keras 2 and Dozat used 0.96^(0.004 t));  U_t = u_1 ... u_t
    m <- m + (g - m)(1 - beta_1);  v <- v + (g^2 - v)(1 - beta_2)
    p <- p - lr [u_{t+1} m / (1 - U_{t+1}) + (1 - u_t) g / (1 - U_t)] / (sqrt(v / (1 - beta_2^t)) + eps)

    Args:
        learning_rate: step size, or a schedule.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to the root for stability.
    """

    slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = check.fraction("beta_1", beta_1)
        self.beta_2 = check.fraction("beta_2", beta_2)
        self.epsilon = check.positive("epsilon", epsilon)
        self.u_product = 1.0

    def _u(self, t):
        return self.beta_1 * (1 - 0.5 * 0.96 ** t)

    def update_all(self, pairs, grads):
        t = self.iterations + 1
        self._u_t, self._u_t1 = self._u(t), self._u(t + 1)
        self._product_t = self.u_product * self._u_t
        self._product_t1 = self._product_t * self._u_t1
        super().update_all(pairs, grads)
        self.u_product = self._product_t

    def update(self, param, grad, slots, lr):
        t = self.iterations
        dtype = param.dtype.type
        m, v = slots["momentum"], slots["velocity"]
        m += (grad - m) * dtype(1 - self.beta_1)
        v += (grad * grad - v) * dtype(1 - self.beta_2)
        m_hat = m * dtype(self._u_t1 / (1 - self._product_t1)) \
            + grad * dtype((1 - self._u_t) / (1 - self._product_t))
        denominator = array_module(param).sqrt(v / dtype(1 - self.beta_2 ** t))
        denominator += dtype(self.epsilon)
        param -= lr * m_hat / denominator

    def state_dict(self):
        return {**super().state_dict(), "u_product": np.asarray(self.u_product)}

    def load_state_dict(self, state):
        state = dict(state)
        self.u_product = float(state.pop("u_product"))
        super().load_state_dict(state)
