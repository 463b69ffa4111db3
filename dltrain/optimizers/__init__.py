"""Optimizers: each updates parameters in place from their gradients, as Keras 3 defines it.

``apply(pairs)`` takes (key, param, grad) triples; slots (momenta, averages) are kept per key, so
``state_dict()`` / ``load_state_dict()`` save and restore them exactly. ``learning_rate`` is a
number or a schedule spec (``{type: exponential_decay, ...}``) evaluated at the step count; a
callback changes a fixed rate through ``set_rate`` (the constructor argument stays as written).
The training step calls the two halves of ``apply`` as stages: ``clip(grads)``, then
``update_all(pairs, grads)``.

The package: base.py (Optimizer: rates, clipping, slots, state), sgd.py, adaptive.py (rmsprop,
adagrad), adam.py (adam, adamw, nadam).
"""


from dltrain.optimizers import adam, adaptive, sgd  # noqa: F401  (each @register runs)
from dltrain.optimizers.adam import Adam, AdamW, Nadam  # noqa: F401
from dltrain.optimizers.adaptive import Adagrad, RMSprop  # noqa: F401
from dltrain.optimizers.base import Optimizer  # noqa: F401
from dltrain.optimizers.sgd import SGD  # noqa: F401
