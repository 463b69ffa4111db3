"""Image reshaping and per-pixel layers: zero_padding2d, up_sampling2d, rescaling, spatial_dropout2d."""
import numpy as np

from dltrain import check
from dltrain.backend import array_module, like
from dltrain.layers import im2col as windows
from dltrain.layers.base import Layer
from dltrain.registry import register


def _image(layer, input_shape):
    return check.rank(layer, input_shape, 3, hint="give it (height, width, channels) images")


@register("zero_padding2d")
class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around each image.

    Args:
        padding: an int (all sides), [rows, cols] (symmetric), or [[top, bottom], [left, right]].

    Shapes: (batch, height, width, channels) -> (batch, height + top + bottom, width + left + right, channels)
    """

    examples = (({}, (2, 3, 2)), ({"padding": [[0, 2], [1, 0]]}, (3, 2, 1)), ({"padding": [2, 0]}, (2, 2, 1)))

    def __init__(self, padding=1):
        super().__init__()
        self.padding = padding
        self._pads = self._parse(padding)

    @staticmethod
    def _parse(padding):
        def ok(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        if ok(padding):
            return ((padding, padding), (padding, padding))
        if isinstance(padding, (list, tuple)) and len(padding) == 2:
            if all(ok(v) for v in padding):
                return ((padding[0],) * 2, (padding[1],) * 2)
            if all(isinstance(p, (list, tuple)) and len(p) == 2 and all(ok(v) for v in p) for p in padding):
                return tuple(tuple(p) for p in padding)
        check._fail("padding", padding, "an int >= 0, [rows, cols], or [[top, bottom], [left, right]]")

    def build(self, input_shape, rng):
        h, w, c = _image(self, input_shape)
        (top, bottom), (left, right) = self._pads
        return (h + top + bottom, w + left + right, c)

    def forward(self, x, training=False):
        return windows.pad(x, self._pads)

    def backward(self, grad_y):
        return windows.unpad(grad_y, self._pads)


@register("up_sampling2d")
class UpSampling2D(Layer):
    """Repeats each row size[0] times and each column size[1] times (nearest-neighbour upsampling).

    Args:
        size: the upsampling factors, an int or [rows, cols].

    Shapes: (batch, height, width, channels) -> (batch, height * rows, width * cols, channels)
    """

    examples = (({}, (2, 3, 2)), ({"size": [3, 1]}, (2, 2, 1)))

    def __init__(self, size=2):
        super().__init__()
        self._size = check.int_tuple("size", size, 2)
        self.size = size

    def build(self, input_shape, rng):
        h, w, c = _image(self, input_shape)
        return (h * self._size[0], w * self._size[1], c)

    def forward(self, x, training=False):
        b, h, w, c = x.shape
        sh, sw = self._size
        y = array_module(x).broadcast_to(x[:, :, None, :, None], (b, h, sh, w, sw, c))
        return y.reshape(b, h * sh, w * sw, c)

    def backward(self, grad_y):
        b, hh, ww, c = grad_y.shape
        sh, sw = self._size
        # each input pixel fed sh * sw outputs: sum them
        return grad_y.reshape(b, hh // sh, sh, ww // sw, sw, c).sum(axis=(2, 4))


@register("rescaling")
class Rescaling(Layer):
    """y = x * scale + offset, inside the model (e.g. scale 1/255 for 8-bit images).

    Args:
        scale: multiplier.
        offset: added after scaling.

    Shapes: any -> the same
    """

    examples = (({"scale": 0.5}, (3,)), ({"scale": 2.0, "offset": -1.0}, (2, 2, 1)))

    def __init__(self, scale, offset=0.0):
        super().__init__()
        self.scale = check.number("scale", scale)
        self.offset = check.number("offset", offset)

    def forward(self, x, training=False):
        x = x.astype(self.dtype, copy=False)
        return x * self.dtype(self.scale) + self.dtype(self.offset)

    def backward(self, grad_y):
        return grad_y * self.dtype(self.scale)


@register("spatial_dropout2d")
class SpatialDropout2D(Layer):
    """Drops whole channels (feature maps) with probability rate in training, scaling the rest by 1 / (1 - rate).

    Neighbouring pixels are strongly correlated, so dropping single pixels barely regularises a
    convnet; dropping a channel for the whole image does.

    Args:
        rate: fraction of channels to drop, in [0, 1).

    Shapes: (batch, height, width, channels) -> the same
    """

    random = True
    examples = (({"rate": 0.5}, (2, 2, 3)), ({"rate": 0.0}, (2, 2, 1)))

    def __init__(self, rate):
        super().__init__()
        self.rate = check.fraction("rate", rate)

    def build(self, input_shape, rng):
        return tuple(_image(self, input_shape))

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._scale = None
            return x
        keep = like(self.random_rows((x.shape[0], 1, 1, x.shape[3])) >= self.rate, x)
        self._scale = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.rate))   # (B, 1, 1, C)
        return x * self._scale

    def backward(self, grad_y):
        return grad_y if self._scale is None else grad_y * self._scale
