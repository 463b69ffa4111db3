"""Merge layers: combine the outputs of several layers named in ``inputs``."""
import numpy as np

from dltrain.backend import array_module
from dltrain.errors import ShapeError
from dltrain.layers.base import Layer
from dltrain.registry import register


class Merge(Layer):
    multi_input = True

    def _same_shapes(self, shapes):
        if len(shapes) < 2:
            raise ShapeError(f"layer '{self.name}' ({self.registered_name}) needs at least two inputs",
                             fix="list two or more layer names in `inputs`.")
        if any(tuple(s) != tuple(shapes[0]) for s in shapes):
            raise ShapeError(
                f"layer '{self.name}' ({self.registered_name}) got inputs of different shapes "
                + ", ".join(str(tuple(s)) for s in shapes),
                fix="make the branches end in the same shape (e.g. a 1x1 conv or dense to match).")
        return tuple(shapes[0])

    def compute_mask(self, xs, masks):
        masks = [m for m in masks if m is not None]
        if not masks:
            return None
        mask = masks[0]
        for m in masks[1:]:
            mask = mask & m
        return mask


@register("add")
class Add(Merge):
    """Elementwise sum of its inputs, as in a residual connection: y = x1 + x2 + ...

    Shapes: several (batch, ...) of one shape -> the same
    """

    examples = (({}, [(4,), (4,)]), ({}, [(2, 3), (2, 3), (2, 3)]))

    def build(self, input_shapes, rng):
        return self._same_shapes(input_shapes)

    def forward(self, xs, training=False):
        self._count = len(xs)
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        return y

    def backward(self, grad_y):
        return [grad_y] * self._count


@register("multiply")
class Multiply(Merge):
    """Elementwise product of its inputs: y = x1 * x2 * ...

    Shapes: several (batch, ...) of one shape -> the same
    """

    examples = (({}, [(4,), (4,)]), ({}, [(2, 3), (2, 3), (2, 3)]))

    def build(self, input_shapes, rng):
        return self._same_shapes(input_shapes)

    def forward(self, xs, training=False):
        self._xs = xs
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        return y

    def backward(self, grad_y):
        grads = []
        for i in range(len(self._xs)):
            g = grad_y
            for j, x in enumerate(self._xs):
                if j != i:
                    g = g * x
            grads.append(g)
        return grads


@register("concatenate")
class Concatenate(Merge):
    """Joins its inputs along an axis (the last by default).

    Args:
        axis: the axis to join along, counting the batch axis as 0; -1 is the last.

    Shapes: (batch, ..., d_i, ...) -> (batch, ..., sum d_i, ...)
    """

    examples = (({}, [(4,), (3,)]), ({"axis": 1}, [(2, 3), (1, 3)]))

    def __init__(self, axis=-1):
        super().__init__()
        if not isinstance(axis, int) or axis == 0:
            from dltrain import check

            check._fail("axis", axis, "a non-zero integer (axis 0 is the batch)")
        self.axis = axis

    def build(self, input_shapes, rng):
        if len(input_shapes) < 2:
            return self._same_shapes(input_shapes)
        rank = len(input_shapes[0])
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise ShapeError(f"layer '{self.name}' (concatenate) has axis {self.axis} but inputs "
                             f"have rank {rank + 1} with the batch axis")
        rest = [tuple(s[:axis]) + tuple(s[axis + 1:]) for s in input_shapes]
        if len(set(rest)) != 1 or any(len(s) != rank for s in input_shapes):
            raise ShapeError(
                f"layer '{self.name}' (concatenate) got inputs " +
                ", ".join(str(tuple(s)) for s in input_shapes) +
                f" that differ on an axis other than {self.axis}")
        self._axis = axis + 1
        shape = list(input_shapes[0])
        shape[axis] = sum(s[axis] for s in input_shapes)
        return tuple(shape)

    def forward(self, xs, training=False):
        self._sizes = np.cumsum([x.shape[self._axis] for x in xs])[:-1].tolist()
        return array_module(xs[0]).concatenate(xs, axis=self._axis)

    def backward(self, grad_y):
        return array_module(grad_y).split(grad_y, self._sizes, axis=self._axis)

    def compute_mask(self, xs, masks):
        return super().compute_mask(xs, masks) if self._axis != 1 else None
