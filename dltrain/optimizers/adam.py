"""Adam and its variants: AdamW (decoupled weight decay) and Nadam (Nesterov momentum)."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module
from dltrain.optimizers.base import Optimizer
from dltrain.registry import register


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
