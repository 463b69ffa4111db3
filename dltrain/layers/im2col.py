"""Sliding windows for convolution and pooling, channels-last (NHWC).

A convolution is one matrix product over the im2col matrix: every output pixel's receptive field
laid out as one row, ordered (kernel row, kernel column, channel) so that the channel axis, the
one that is contiguous in NHWC memory, stays contiguous in the copy.

col2im, the adjoint of im2col, adds each kernel offset's slab of column gradients back onto the
strided input positions it was read from: one vectorised add per kernel offset (kh * kw of them),
never a loop over samples or pixels and never ``np.add.at``.
"""
import numpy as np

from dltrain import check
from dltrain.backend import array_module


def padding_amounts(length, kernel, stride, dilation, padding):
    """(output length, pad before, pad after) along one axis, as TensorFlow computes them.

    ``valid``: no padding; ``same``: output = ceil(length / stride), the padding split with the
    extra element after; ``causal`` (1-D only): all of it before.
    """
    span = dilation * (kernel - 1) + 1
    if padding == "valid":
        return (length - span) // stride + 1, 0, 0
    out = -(-length // stride)
    total = max((out - 1) * stride + span - length, 0)
    if padding == "causal":
        return out, total, 0
    return out, total // 2, total - total // 2


def output_size(layer, input_hw, kernel, strides, dilation, padding):
    """(out_h, out_w) and ((top, bottom), (left, right)), or a ShapeError if nothing fits."""
    sizes, pads = [], []
    for length, k, s, d in zip(input_hw, kernel, strides, dilation):
        out, before, after = padding_amounts(length, k, s, d, padding)
        sizes.append(out)
        pads.append((before, after))
    if min(sizes) < 1:
        from dltrain.errors import ShapeError

        raise ShapeError(
            f"layer '{layer.name}' ({layer.registered_name}) gets an input of {tuple(input_hw)} "
            f"pixels, smaller than its window {tuple(kernel)} (dilation {tuple(dilation)})",
            fix="use padding: same, a smaller kernel_size, or remove a pooling layer before it.")
    return tuple(sizes), tuple(pads)


def pad(x, pads, value=0.0):
    """x (B, H, W, C) with pads ((top, bottom), (left, right)) of ``value`` around H and W."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    b, h, w, c = x.shape
    out = array_module(x).full((b, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w] = x
    return out


def unpad(x, pads):
    """The inverse of ``pad``: the interior of x (B, Hp, Wp, C)."""
    (top, bottom), (left, right) = pads
    return x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]


def window(x, i, j, out_hw, strides, dilation):
    """The (B, Ho, Wo, C) strided view of x that kernel offset (i, j) reads."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw, strides, dilation
    return x[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def im2col(x, kernel, out_hw, strides, dilation, out=None, blocks=(1, 1)):
    """Columns (B, Ho, Wo, kh, kw, C) of a padded x (B, Hp, Wp, C); reshape to (B*Ho*Wo, kh*kw*C).

    ``out`` is a buffer of that shape to reuse (no fresh pages per step). The copy runs over
    whichever is longer: a kernel row's kw*C floats, contiguous in x when dilation along W is 1
    (one strided copy), or an output row's Wo pixels (one copy per kernel offset, for few
    channels, as a first layer's C = 1).

    With ``blocks`` (ph, pw) the rows come grouped by pooling window offset, as
    Conv2D.emit_pool_blocks lays its output out: ``out`` is (B, ph*pw, Ho/ph, Wo/pw, kh, kw, C),
    block i*pw + j holding output pixels (ho*ph + i, wo*pw + j). The same copies, through a
    permuted view of the destination.
    """
    kh, kw = kernel
    (ph, pw), b, c = blocks, x.shape[0], x.shape[3]
    ho, wo = out_hw[0] // ph, out_hw[1] // pw
    if out is None:
        shape = (b, *out_hw) if blocks == (1, 1) else (b, ph * pw, ho, wo)
        out = array_module(x).empty((*shape, kh, kw, c), dtype=x.dtype)
    if dilation[1] == 1 and kw * c >= out_hw[1] and x.strides[2] == c * x.strides[3]:
        rows = _view(out, (b, ph, pw, ho, wo, kh, kw * c))
        view = _blocked(kernel_rows(x, kernel, out_hw, strides, dilation), blocks)
        array_module(x).copyto(rows, view)
        return out
    dest = _view(out, (b, ph, pw, ho, wo, kh, kw, c))
    for i in range(kh):
        for j in range(kw):
            dest[..., i, j, :] = _blocked(window(x, i, j, out_hw, strides, dilation), blocks)
    return out


def _blocked(a, blocks):
    """The (B, ph, pw, Ho/ph, Wo/pw, ...) view of a (B, Ho, Wo, ...) array: pixel (ho*ph + i,
    wo*pw + j) at [:, i, j, ho, wo]."""
    (ph, pw), (b, h, w) = blocks, a.shape[:3]
    if (ph, pw) == (1, 1):
        return a[:, None, None]
    split = a.reshape(b, h // ph, ph, w // pw, pw, *a.shape[3:])         # splits axes: a view
    return split.transpose(0, 2, 4, 1, 3, *range(5, split.ndim))


def _view(a, shape):
    """a reshaped without a copy (a buffer that is written through), or an error."""
    view = a.reshape(shape)
    if not array_module(a).may_share_memory(view, a):          # a reshape that copies gives a fresh array
        raise ValueError(f"im2col: a {a.shape} buffer cannot be seen as {shape} without a copy")
    return view


def kernel_rows(x, kernel, out_hw, strides, dilation):
    """The read-only (B, Ho, Wo, kh, kw*C) view of x (B, Hp, Wp, C) whose last axis is one kernel
    row's pixels and channels, contiguous in x (needs dilation 1 along W)."""
    kh, kw = kernel
    sb, sh, sw, sc = x.strides
    shape = (x.shape[0], *out_hw, kh, kw * x.shape[3])
    xp = array_module(x)
    read_only = {"writeable": False} if xp is np else {}     # cupy's as_strided has no flag
    return xp.lib.stride_tricks.as_strided(
        x, shape, (sb, strides[0] * sh, strides[1] * sw, dilation[0] * sh, sc), **read_only)


def col2im(cols, padded_shape, kernel, strides, dilation):
    """The adjoint of im2col: cols (B, Ho, Wo, kh, kw, C) summed into a (B, Hp, Wp, C) array.

    Each input pixel receives the gradient of every (output pixel, kernel offset) pair that read
    it: grad_x[b, h*s + i*d, w*s + j*d, c] += cols[b, h, w, i, j, c]. For a fixed offset (i, j) the
    targets of all (b, h, w) are distinct, so one strided ``+=`` per offset is exact.
    """
    kh, kw = kernel
    out_hw = cols.shape[1:3]
    grad = array_module(cols).zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            window(grad, i, j, out_hw, strides, dilation)[...] += cols[:, :, :, i, j]
    return grad


def col2im_slabs(slabs, padded_shape, strides, dilation):
    """col2im from slabs (kh, kw, B, Ho, Wo, C), one contiguous slab per kernel offset, summed
    into a new (B, Hp, Wp, C) array."""
    kh, kw = slabs.shape[:2]
    out_hw = slabs.shape[3:5]
    if tuple(strides) == (1, 1):       # the first offset's window is the block [:Ho, :Wo]
        grad = empty_with_zero_border(padded_shape, *out_hw, slabs.dtype, array_module(slabs))
    else:
        grad = array_module(slabs).zeros(padded_shape, dtype=slabs.dtype)
    window(grad, 0, 0, out_hw, strides, dilation)[...] = slabs[0, 0]      # written, not added
    for i in range(kh):
        for j in range(kw):
            if i or j:
                window(grad, i, j, out_hw, strides, dilation)[...] += slabs[i, j]
    return grad


def empty_with_zero_border(shape, rows, cols, dtype, xp=np):
    """A (B, H, W, C) array of module ``xp``, zero outside [:, :rows, :cols] and uninitialised
    inside, for a caller that fills the inside (no pass zeroing all of it first)."""
    out = xp.empty(shape, dtype=dtype)
    out[:, rows:] = 0
    out[:, :rows, cols:] = 0
    return out


class Workspace:
    """Buffers a layer reuses from step to step while the shape stays the same.

    Only for temporaries the layer itself consumes (never an array it returns): reusing them
    saves the page faults of fresh large allocations each step.
    """

    def __init__(self):
        self.buffers = {}

    def get(self, name, shape, dtype, new=False, xp=np):
        """The buffer ``name`` of that shape and dtype, of array module ``xp`` (contents left
        from its last use); with ``new``, also whether it was just made."""
        buffer = self.buffers.get(name)
        made = (buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype
                or array_module(buffer) is not xp)
        if made:
            buffer = self.buffers[name] = xp.empty(shape, dtype=dtype)
        return (buffer, made) if new else buffer

    def ones(self, length, dtype, xp=np):
        """A (length,) vector of ones: sums over rows as a product, ``ones @ g`` (BLAS, not a
        reduction over short strided runs)."""
        buffer = self.buffers.get("ones")
        if (buffer is None or buffer.shape != (length,) or buffer.dtype != dtype
                or array_module(buffer) is not xp):
            buffer = self.buffers["ones"] = xp.ones(length, dtype=dtype)
        return buffer


def window_arguments(layer, rank, kernel_size, strides, padding, dilation_rate,
                     paddings=("valid", "same")):
    """Validate and store the window arguments as written; return them as rank-tuples."""
    kernel = check.int_tuple("kernel_size", kernel_size, rank)
    stride = check.int_tuple("strides", strides, rank)
    dilation = check.int_tuple("dilation_rate", dilation_rate, rank)
    layer.kernel_size, layer.strides, layer.dilation_rate = kernel_size, strides, dilation_rate
    layer.padding = check.one_of("padding", padding, paddings)
    return kernel, stride, dilation
