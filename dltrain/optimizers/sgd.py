"""Stochastic gradient descent, with optional (Nesterov) momentum."""
from dltrain import check
from dltrain.optimizers.base import Optimizer
from dltrain.registry import register


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
