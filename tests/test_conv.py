"""Convolutions against slow loop-based references (one output pixel at a time), to 1e-5."""
import numpy as np
import pytest

from dltrain.registry import build


def make(spec, input_shape, dtype=np.float64, seed=0):
    layer = build("layer", spec)
    layer.name = spec["type"]
    layer.dtype = dtype
    rng = np.random.default_rng(seed)
    out = layer.build(input_shape, rng)
    for key in layer.params:                      # non-zero biases, so they are checked too
        layer.params[key][...] = rng.standard_normal(layer.params[key].shape)
    x = rng.standard_normal((2, *input_shape)).astype(dtype)
    return layer, x, out


def same_pads(length, k, s, d):
    span = d * (k - 1) + 1
    out = -(-length // s)
    total = max((out - 1) * s + span - length, 0)
    return total // 2, total - total // 2


def reference_conv2d(x, kernel, bias, strides, padding, dilation):
    (sh, sw), (dh, dw) = strides, dilation
    kh, kw, c, f = kernel.shape
    if padding == "same":
        (t, b_), (l, r) = same_pads(x.shape[1], kh, sh, dh), same_pads(x.shape[2], kw, sw, dw)
        x = np.pad(x, ((0, 0), (t, b_), (l, r), (0, 0)))
    ho = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], ho, wo, f))
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for a in range(kh):
                    for b in range(kw):
                        y[n, i, j] += x[n, i * sh + a * dh, j * sw + b * dw] @ kernel[a, b]
    return y + (0 if bias is None else bias)


CONV2D = [
    ({"kernel_size": 3}, (7, 6, 3)),
    ({"kernel_size": [2, 3], "strides": 2, "padding": "same"}, (7, 6, 2)),
    ({"kernel_size": 3, "dilation_rate": 2, "padding": "same", "use_bias": False}, (7, 7, 1)),
    ({"kernel_size": 3, "strides": [2, 1], "dilation_rate": [1, 2]}, (8, 9, 2)),
    ({"kernel_size": 1}, (4, 4, 3)),
    ({"kernel_size": 4, "strides": 3, "padding": "same"}, (10, 8, 2)),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("arguments, shape", CONV2D)
def test_conv2d_matches_loop_reference(arguments, shape):
    layer, x, out = make({"type": "conv2d", "filters": 4, **arguments}, shape)
    y = layer.forward(x)
    expected = reference_conv2d(x, layer.params["kernel"], layer.params.get("bias"),
                                _pair(arguments.get("strides", 1)), arguments.get("padding", "valid"),
                                _pair(arguments.get("dilation_rate", 1)))
    assert y.shape == (2, *out)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)


def test_conv2d_float32_matches_float64_reference():
    layer, x, _ = make({"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"}, (9, 9, 4),
                       dtype=np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    expected = reference_conv2d(x.astype(np.float64), layer.params["kernel"].astype(np.float64),
                                layer.params["bias"], (1, 1), "same", (1, 1))
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arguments", [{"kernel_size": 3}, {"kernel_size": 2, "strides": 2, "padding": "same"},
                                       {"kernel_size": 3, "dilation_rate": 2, "padding": "causal"}])
def test_conv1d_matches_loop_reference(arguments):
    layer, x, out = make({"type": "conv1d", "filters": 3, **arguments}, (9, 2))
    k = arguments["kernel_size"]
    s, d = arguments.get("strides", 1), arguments.get("dilation_rate", 1)
    padding = arguments.get("padding", "valid")
    xp = x
    if padding == "causal":
        xp = np.pad(x, ((0, 0), (d * (k - 1), 0), (0, 0)))
    elif padding == "same":
        xp = np.pad(x, ((0, 0), same_pads(9, k, s, d), (0, 0)))
    expected = reference_conv2d(xp[:, None], layer.params["kernel"][None], layer.params["bias"],
                                (1, s), "valid", (1, d))[:, 0]
    np.testing.assert_allclose(layer.forward(x), expected, atol=1e-5)
    assert expected.shape == (2, *out)


def reference_transpose(x, kernel, bias, s, d, padding):
    """Scatter each input pixel's contribution, then crop as Keras does."""
    kh, kw, f, c = kernel.shape
    b, h, w, _ = x.shape
    full = np.zeros((b, (h - 1) * s + d * (kh - 1) + 1 + s, (w - 1) * s + d * (kw - 1) + 1 + s, f))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for bb in range(kw):
                    full[:, i * s + a * d, j * s + bb * d] += x[:, i, j] @ kernel[a, bb].T
    span_h, span_w = d * (kh - 1) + 1, d * (kw - 1) + 1
    if padding == "valid":
        oh, ow, top, left = h * s + max(span_h - s, 0), w * s + max(span_w - s, 0), 0, 0
    else:
        oh, ow = h * s, w * s
        top, left = max(span_h - s, 0) // 2, max(span_w - s, 0) // 2
    return full[:, top:top + oh, left:left + ow] + bias


@pytest.mark.parametrize("k, s, d, padding", [(3, 1, 1, "valid"), (3, 2, 1, "same"), (2, 2, 1, "valid"),
                                              (3, 2, 2, "same"), (1, 3, 1, "valid"), (4, 2, 1, "same")])
def test_conv2d_transpose_matches_scatter_reference(k, s, d, padding):
    layer, x, out = make({"type": "conv2d_transpose", "filters": 3, "kernel_size": k, "strides": s,
                          "dilation_rate": d, "padding": padding}, (4, 3, 2))
    y = layer.forward(x)
    expected = reference_transpose(x, layer.params["kernel"], layer.params["bias"], s, d, padding)
    assert y.shape == expected.shape == (2, *out)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    conv, x, _ = make({"type": "conv2d", "filters": 3, "kernel_size": 3, "strides": 2, "use_bias": False},
                      (7, 7, 2))
    up = build("layer", {"type": "conv2d_transpose", "filters": 2, "kernel_size": 3, "strides": 2,
                         "use_bias": False})
    up.name, up.dtype = "up", np.float64
    up.build((3, 3, 3), np.random.default_rng(0))
    up.params["kernel"][...] = conv.params["kernel"]       # (kh, kw, in=2 -> out=3): transposed roles
    z = np.random.default_rng(5).standard_normal((2, 3, 3, 3))
    # <conv(x), z> == <x, conv_transpose(z)>
    np.testing.assert_allclose((conv.forward(x) * z).sum(), (x * up.forward(z)).sum(), rtol=1e-10)


@pytest.mark.parametrize("arguments", [{"kernel_size": 3}, {"kernel_size": 3, "strides": 2, "padding": "same",
                                                            "depth_multiplier": 2},
                                       {"kernel_size": [2, 3], "dilation_rate": 2, "depth_multiplier": 3}])
def test_depthwise_conv2d_matches_per_channel_reference(arguments):
    layer, x, out = make({"type": "depthwise_conv2d", **arguments}, (7, 8, 3))
    kernel = layer.params["depthwise_kernel"]                       # (kh, kw, C, M)
    m = kernel.shape[3]
    strides, dilation = _pair(arguments.get("strides", 1)), _pair(arguments.get("dilation_rate", 1))
    padding = arguments.get("padding", "valid")
    parts = [reference_conv2d(x[..., c:c + 1], kernel[:, :, c:c + 1, :], None, strides, padding, dilation)
             for c in range(3)]
    expected = np.concatenate(parts, axis=-1) + layer.params["bias"]   # channel order c * M + m
    y = layer.forward(x)
    assert y.shape == (2, *out) and out[-1] == 3 * m
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_separable_conv2d_is_depthwise_then_pointwise():
    layer, x, _ = make({"type": "separable_conv2d", "filters": 4, "kernel_size": 3, "depth_multiplier": 2,
                        "padding": "same"}, (6, 6, 3))
    kernel = layer.params["depthwise_kernel"]
    mid = np.concatenate([reference_conv2d(x[..., c:c + 1], kernel[:, :, c:c + 1, :], None, (1, 1), "same",
                                           (1, 1)) for c in range(3)], axis=-1)
    expected = mid @ layer.params["pointwise_kernel"][0, 0] + layer.params["bias"]
    np.testing.assert_allclose(layer.forward(x), expected, atol=1e-5)


def test_window_larger_than_the_image_is_a_shape_error():
    from dltrain.errors import ShapeError

    layer = build("layer", {"type": "conv2d", "filters": 2, "kernel_size": 5})
    layer.name = "c"
    with pytest.raises(ShapeError, match="smaller than its window"):
        layer.build((3, 3, 1), np.random.default_rng(0))


def test_conv2d_rejects_a_vector_input_with_a_fix():
    from dltrain.errors import ShapeError

    layer = build("layer", {"type": "conv2d", "filters": 2, "kernel_size": 3})
    layer.name = "c"
    with pytest.raises(ShapeError) as info:
        layer.build((784,), np.random.default_rng(0))
    assert "reshape" in info.value.fix
