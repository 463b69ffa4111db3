"""Data augmentation: random image transformations applied to training batches only.

Augmentation steps go in ``data.preprocessing`` like any other step. In training the pipeline
calls ``transform(x, rng)`` with the run's augmentation stream (fixed by the seed and the epoch,
so a resumed run sees the same batches); in evaluation and prediction ``transform(x)`` leaves the
images alone (random_crop takes the centre crop). Every transformation is vectorised over the
batch: one gather of source pixels computed from a per-sample affine map.

    preprocessing:
      - {type: rescale, scale: 0.00392156862745098}
      - {type: random_rotation, factor: 0.05}
      - {type: random_zoom, height_factor: 0.1}
"""
import numpy as np

from dltrain import check
from dltrain.data.preprocessing import Preprocessing
from dltrain.errors import DataError
from dltrain.registry import register

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def _range(name, factor, low=None):
    """A factor as (lower, upper): a number f means (-f, f)."""
    if isinstance(factor, (list, tuple)) and len(factor) == 2:
        lower, upper = (check.number(name, v) for v in factor)
        if lower > upper:
            check._fail(name, factor, "[lower, upper] with lower <= upper")
    else:
        upper = check.non_negative(name, factor)
        lower = -upper
    if low is not None and lower < low:
        check._fail(name, factor, f"values > {low}")
    return lower, upper


def _fold(index, size, mode):
    """Integer source indices mapped into [0, size) by the fill mode (constant: clipped, masked later)."""
    if mode == "wrap":
        return np.mod(index, size)
    if mode == "reflect":                       # d c b a | a b c d | d c b a
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    return np.clip(index, 0, size - 1)


def affine_sample(x, matrices, fill_mode="reflect", fill_value=0.0, interpolation="bilinear"):
    """y[b, r, c] = x[b] sampled at matrices[b] @ (r, c, 1), for x (B, H, W, C) and matrices (B, 2, 3)."""
    b, h, w, channels = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel(), np.ones(h * w, np.float32)])    # (3, H*W)
    source = matrices.astype(np.float32) @ grid                                     # (B, 2, H*W)
    batch = np.arange(b)[:, None]
    if interpolation == "nearest":
        corners = [(np.rint(source[:, 0]), np.rint(source[:, 1]), 1.0)]
    else:
        r0, c0 = np.floor(source[:, 0]), np.floor(source[:, 1])
        fr, fc = source[:, 0] - r0, source[:, 1] - c0
        corners = [(r0, c0, (1 - fr) * (1 - fc)), (r0, c0 + 1, (1 - fr) * fc),
                   (r0 + 1, c0, fr * (1 - fc)), (r0 + 1, c0 + 1, fr * fc)]
    y = np.zeros((b, h * w, channels), dtype=np.float32)
    for r, c, weight in corners:                                                    # 1 or 4 gathers
        r, c = r.astype(np.intp), c.astype(np.intp)
        values = x[batch, _fold(r, h, fill_mode), _fold(c, w, fill_mode)]            # (B, H*W, C)
        if fill_mode == "constant":
            outside = (r < 0) | (r >= h) | (c < 0) | (c >= w)
            values = np.where(outside[..., None], np.float32(fill_value), values)
        y += values * (np.asarray(weight, np.float32)[..., None] if np.ndim(weight) else weight)
    return y.reshape(b, h, w, channels)


def _about_centre(linear, shape, shift=None):
    """(B, 2, 3) maps r -> centre + linear @ (r - centre) + shift, for (B, 2, 2) linear parts."""
    centre = (np.array(shape[1:3], np.float32) - 1) / 2
    offset = centre - linear @ centre
    if shift is not None:
        offset = offset + shift
    return np.concatenate([linear, offset[..., None]], axis=2)


class Augmentation(Preprocessing):
    """A random transformation of a batch of images (B, H, W, C) in training; identity otherwise."""

    augments = True

    def transform(self, x, rng=None):
        if rng is None:
            return x
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise DataError(f"{self.registered_name} needs image batches (batch, height, width, channels), "
                            f"got shape {x.shape}",
                            fix="use an image source, or a model input_shape with a channel axis.")
        return self.augment(x, rng)


class _Geometric(Augmentation):
    def _fill(self, fill_mode, fill_value, interpolation):
        self.fill_mode = check.one_of("fill_mode", fill_mode, FILL_MODES)
        self.fill_value = check.number("fill_value", fill_value)
        self.interpolation = check.one_of("interpolation", interpolation, ("nearest", "bilinear"))

    def _sample(self, x, matrices):
        return affine_sample(x, matrices, self.fill_mode, self.fill_value, self.interpolation)


@register("random_flip")
class RandomFlip(Augmentation):
    """Flips each image left-right and/or upside down with probability 1/2.

    Args:
        mode: horizontal, vertical, or horizontal_and_vertical.
    """

    def __init__(self, mode="horizontal_and_vertical"):
        self.mode = check.one_of("mode", mode, ("horizontal", "vertical", "horizontal_and_vertical"))

    def augment(self, x, rng):
        for axis, name in ((2, "horizontal"), (1, "vertical")):
            if name in self.mode:
                flip = rng.random(len(x)) < 0.5
                x = np.where(flip[:, None, None, None], np.flip(x, axis=axis), x)
        return x


@register("random_translation")
class RandomTranslation(_Geometric):
    """Shifts each image by a random fraction of its height and width.

    Args:
        height_factor: f (shift in [-f, f] * height) or [lower, upper].
        width_factor: the same for the width.
        fill_mode: constant, nearest, reflect or wrap: how pixels shifted in are filled.
        interpolation: nearest or bilinear.
        fill_value: the value of constant filling.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 fill_value=0.0):
        self.height_factor, self.width_factor = height_factor, width_factor
        self._ranges = (_range("height_factor", height_factor), _range("width_factor", width_factor))
        self._fill(fill_mode, fill_value, interpolation)

    def augment(self, x, rng):
        b, h, w = x.shape[:3]
        shift = np.stack([rng.uniform(*self._ranges[0], b) * h, rng.uniform(*self._ranges[1], b) * w], 1)
        linear = np.broadcast_to(np.eye(2, dtype=np.float32), (b, 2, 2))
        return self._sample(x, _about_centre(linear, x.shape, -shift.astype(np.float32)))


@register("random_rotation")
class RandomRotation(_Geometric):
    """Rotates each image by a random angle, factor * 2 pi at most, about its centre.

    Args:
        factor: f (angle in [-f, f] * 2 pi) or [lower, upper].
        fill_mode: constant, nearest, reflect or wrap.
        interpolation: nearest or bilinear.
        fill_value: the value of constant filling.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", fill_value=0.0):
        self.factor = factor
        self._range = _range("factor", factor)
        self._fill(fill_mode, fill_value, interpolation)

    def augment(self, x, rng):
        angle = rng.uniform(*self._range, len(x)) * 2 * np.pi
        cos, sin = np.cos(angle), np.sin(angle)
        linear = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1).astype(np.float32)
        return self._sample(x, _about_centre(linear, x.shape))


@register("random_zoom")
class RandomZoom(_Geometric):
    """Zooms each image about its centre: a positive factor zooms out, a negative one in (as Keras).

    Args:
        height_factor: f (zoom in [-f, f]) or [lower, upper], each > -1.
        width_factor: the same for the width; null keeps the aspect ratio.
        fill_mode: constant, nearest, reflect or wrap.
        interpolation: nearest or bilinear.
        fill_value: the value of constant filling.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
                 fill_value=0.0):
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _range("height_factor", height_factor, low=-1)
        self._width = None if width_factor is None else _range("width_factor", width_factor, low=-1)
        self._fill(fill_mode, fill_value, interpolation)

    def augment(self, x, rng):
        b = len(x)
        zoom_h = 1 + rng.uniform(*self._height, b)
        zoom_w = zoom_h if self._width is None else 1 + rng.uniform(*self._width, b)
        linear = np.zeros((b, 2, 2), np.float32)
        linear[:, 0, 0], linear[:, 1, 1] = zoom_h, zoom_w
        return self._sample(x, _about_centre(linear, x.shape))


@register("random_contrast")
class RandomContrast(Augmentation):
    """Scales each image's deviation from its per-channel mean by a random c in [1 - f, 1 + f].

    Args:
        factor: f in [0, 1], or [lower, upper] giving c in [1 - lower, 1 + upper].
    """

    def __init__(self, factor):
        self.factor = factor
        lower, upper = _range("factor", factor)
        self._range = (1 + lower, 1 + upper) if isinstance(factor, (list, tuple)) else (1 - upper, 1 + upper)

    def augment(self, x, rng):
        contrast = rng.uniform(*self._range, len(x)).astype(np.float32)[:, None, None, None]
        mean = x.mean(axis=(1, 2), keepdims=True)
        return (x - mean) * contrast + mean


@register("random_crop")
class RandomCrop(Augmentation):
    """Crops a random height x width window from each image in training; the centre one otherwise.

    Args:
        height: crop height in pixels.
        width: crop width in pixels.
    """

    changes_shape = True

    def __init__(self, height, width):
        self.height = check.positive_int("height", height)
        self.width = check.positive_int("width", width)

    def _check(self, x):
        if x.ndim != 4 or x.shape[1] < self.height or x.shape[2] < self.width:
            raise DataError(f"random_crop of {self.height}x{self.width} got images of shape {x.shape[1:]}",
                            fix="crop to at most the image size (height, width).")

    def transform(self, x, rng=None):
        self._check(np.asarray(x))
        if rng is None:
            top, left = (x.shape[1] - self.height) // 2, (x.shape[2] - self.width) // 2
            return x[:, top:top + self.height, left:left + self.width]
        return super().transform(x, rng)

    def augment(self, x, rng):
        b = len(x)
        top = rng.integers(0, x.shape[1] - self.height + 1, b)
        left = rng.integers(0, x.shape[2] - self.width + 1, b)
        rows = (top[:, None] + np.arange(self.height))[:, :, None]          # (B, h, 1)
        cols = (left[:, None] + np.arange(self.width))[:, None, :]          # (B, 1, w)
        return x[np.arange(b)[:, None, None], rows, cols]                   # (B, h, w, C)
