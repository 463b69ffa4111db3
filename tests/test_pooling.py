"""Pooling against slow loop-based references, and its backward routing."""
import numpy as np
import pytest

from dltrain.registry import build


def make(spec, input_shape, seed=0):
    layer = build("layer", spec)
    layer.name, layer.dtype = spec["type"], np.float64
    out = layer.build(input_shape, np.random.default_rng(seed))
    x = np.random.default_rng(seed).standard_normal((2, *input_shape))
    return layer, x, out


def reference_pool(x, pool, strides, padding, reduce):
    """Loop over output pixels; `same` windows see only the pixels inside the image."""
    (ph, pw), (sh, sw) = pool, strides
    b, h, w, c = x.shape
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        top = max((oh - 1) * sh + ph - h, 0) // 2
        left = max((ow - 1) * sw + pw - w, 0) // 2
    else:
        oh, ow, top, left = (h - ph) // sh + 1, (w - pw) // sw + 1, 0, 0
    y = np.zeros((b, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - top, j * sw - left
            patch = x[:, max(r0, 0):r0 + ph, max(c0, 0):c0 + pw]
            y[:, i, j] = reduce(patch, axis=(1, 2))
    return y


CASES = [({}, (6, 6, 2)), ({"pool_size": 3, "strides": 2, "padding": "same"}, (7, 6, 2)),
         ({"pool_size": [2, 3], "strides": 1}, (5, 6, 1)), ({"pool_size": 2}, (5, 7, 3)),
         ({"pool_size": 3, "strides": 1, "padding": "same"}, (4, 4, 2))]


@pytest.mark.parametrize("kind, reduce", [("max_pooling2d", np.max), ("average_pooling2d", np.mean)])
@pytest.mark.parametrize("arguments, shape", CASES)
def test_pooling2d_matches_loop_reference(kind, reduce, arguments, shape):
    layer, x, out = make({"type": kind, **arguments}, shape)
    pool = arguments.get("pool_size", 2)
    pool = (pool, pool) if isinstance(pool, int) else tuple(pool)
    strides = arguments.get("strides") or pool
    strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
    expected = reference_pool(x, pool, strides, arguments.get("padding", "valid"), reduce)
    y = layer.forward(x)
    assert y.shape == expected.shape == (2, *out)
    np.testing.assert_allclose(y, expected, atol=1e-5)


@pytest.mark.parametrize("kind, reduce", [("max_pooling1d", np.max), ("average_pooling1d", np.mean)])
def test_pooling1d_is_pooling2d_one_pixel_high(kind, reduce):
    layer, x, out = make({"type": kind, "pool_size": 3, "strides": 2, "padding": "same"}, (9, 2))
    expected = reference_pool(x[:, None], (1, 3), (1, 2), "same", reduce)[:, 0]
    np.testing.assert_allclose(layer.forward(x), expected, atol=1e-5)
    assert expected.shape == (2, *out)


def test_max_pooling_sends_each_gradient_to_the_first_maximum_only():
    layer, _, _ = make({"type": "max_pooling2d"}, (2, 2, 1))
    x = np.array([[[[1.0], [3.0]], [[3.0], [0.0]]]])          # a tie between two 3s
    layer.forward(x)
    grad = layer.backward(np.array([[[[5.0]]]]))
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0, 5], [0, 0]])


def test_overlapping_max_windows_add_their_gradients():
    layer, _, _ = make({"type": "max_pooling1d", "pool_size": 3, "strides": 1}, (4, 1))
    x = np.array([[[0.0], [9.0], [1.0], [2.0]]])               # 9 wins both windows
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 2, 1)))[0, :, 0], [0, 2, 0, 0])


@pytest.mark.parametrize("kind, reduce, axes", [("global_average_pooling2d", np.mean, (1, 2)),
                                                ("global_max_pooling2d", np.max, (1, 2)),
                                                ("global_average_pooling1d", np.mean, (1,)),
                                                ("global_max_pooling1d", np.max, (1,))])
def test_global_pooling(kind, reduce, axes):
    shape = (3, 4, 2) if len(axes) == 2 else (5, 3)
    layer, x, out = make({"type": kind}, shape)
    np.testing.assert_allclose(layer.forward(x), reduce(x, axis=axes), atol=1e-12)
    assert out == (shape[-1],)


def test_global_average_pooling1d_ignores_masked_steps():
    layer, _, _ = make({"type": "global_average_pooling1d"}, (4, 1))
    x = np.array([[[1.0], [3.0], [100.0], [100.0]]])
    layer.input_mask = np.array([[True, True, False, False]])
    np.testing.assert_allclose(layer.forward(x), [[2.0]])
    np.testing.assert_allclose(layer.backward(np.ones((1, 1)))[0, :, 0], [0.5, 0.5, 0, 0])


@pytest.mark.parametrize("spec, shape", [
    ({"type": "max_pooling2d", "pool_size": 2, "padding": "same"}, (7, 7, 2)),
    ({"type": "max_pooling2d", "pool_size": 3, "padding": "same"}, (8, 8, 2)),
    ({"type": "max_pooling2d", "pool_size": [2, 3], "padding": "same"}, (5, 7, 1)),
    ({"type": "max_pooling1d", "pool_size": 2, "padding": "same"}, (7, 2))])
def test_same_max_pooling_whose_padding_falls_after_the_image_backpropagates(spec, shape):
    """`same` padding that the pool does not divide pads only after the image (top/left 0): the
    tiled path used to take that for `valid` and crash reshaping its backward (issue 17, 1)."""
    layer, x, out = make(spec, shape)
    y = layer.forward(x)
    assert y.shape == (2, *out)
    grad = layer.backward(np.ones_like(y))
    # each window sends its 1 to its maximum: the input gradient sums to the number of windows
    assert grad.shape == x.shape and grad.sum() == y.size
    from dltrain import gradcheck
    errors = gradcheck.check_layer(layer, x, rng=np.random.default_rng(1))
    assert errors and max(errors.values()) < 1e-6, errors
