"""The convnet's fast paths give what the plain paths give: kernel-row im2col, tiled max pooling
(ties included), the bias carried as a ones column, buffers reused across calls and shapes."""
import numpy as np
import pytest

from dltrain.layers import im2col as windows
from dltrain.registry import build


def per_offset_im2col(x, kernel, out_hw, strides, dilation):
    kh, kw = kernel
    out = np.empty((x.shape[0], *out_hw, kh, kw, x.shape[3]), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j] = windows.window(x, i, j, out_hw, strides, dilation)
    return out


@pytest.mark.parametrize("shape, kernel, strides, dilation", [
    ((2, 9, 9, 8), (3, 3), (1, 1), (1, 1)),
    ((2, 9, 11, 6), (2, 3), (2, 3), (2, 1)),      # strides, dilation along H
    ((2, 8, 8, 4), (3, 2), (1, 2), (1, 2)),       # dilation along W: the per-offset copy
    ((3, 10, 10, 1), (3, 3), (1, 1), (1, 1)),     # one channel: the per-offset copy
])
def test_im2col_equals_the_per_offset_copy(shape, kernel, strides, dilation):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out_hw, _ = windows.output_size(None, shape[1:3], kernel, strides, dilation, "valid")
    expected = per_offset_im2col(x, kernel, out_hw, strides, dilation)
    np.testing.assert_array_equal(windows.im2col(x, kernel, out_hw, strides, dilation), expected)


def general_max_pool(spec, x, grad_y):
    """Forward and backward through the per-offset (overlapping-window) path."""
    layer = build("layer", spec)
    layer.name = "reference"
    layer._tiled = lambda: False
    y = layer.forward(x)
    return y, layer.backward(grad_y)


@pytest.mark.parametrize("spec, shape", [
    ({"type": "max_pooling2d", "pool_size": 2}, (4, 6, 6, 3)),
    ({"type": "max_pooling2d", "pool_size": 2}, (2, 7, 5, 2)),                 # crops a row, a column
    ({"type": "max_pooling2d", "pool_size": [3, 2], "padding": "same"}, (2, 7, 5, 2)),
    ({"type": "max_pooling2d", "pool_size": 3}, (2, 9, 9, 4)),
    ({"type": "max_pooling1d", "pool_size": 3}, (2, 10, 3)),
])
def test_tiled_max_pooling_equals_the_per_offset_path_with_ties(spec, shape):
    rng = np.random.default_rng(1)
    x = np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float32)     # ReLU'd: many ties
    layer = build("layer", spec)
    layer.name = "tiled"
    assert layer._tiled()
    y = layer.forward(x)
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    expected_y, expected_grad = general_max_pool(spec, x, grad_y)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(layer.backward(grad_y), expected_grad)


def test_bias_column_matches_a_separate_bias_add():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 8, 1)).astype(np.float32)
    layers = []
    for below in (16, 0):                                  # ones column / plain bias add
        layer = build("layer", {"type": "conv2d", "filters": 4, "kernel_size": 3})
        layer.name, layer.bias_column_below = "c", below
        layer.build((8, 8, 1), np.random.default_rng(0))
        layer.params["bias"][...] = [1.0, -2.0, 0.5, 3.0]
        layers.append(layer)
    y_column, y_add = (layer.forward(x) for layer in layers)
    assert layers[0]._bias_column and not layers[1]._bias_column
    np.testing.assert_allclose(y_column, y_add, rtol=1e-5, atol=1e-5)
    grad_y = rng.standard_normal(y_add.shape).astype(np.float32)
    for layer in layers:
        layer.backward(grad_y)
    for key in ("kernel", "bias"):
        np.testing.assert_allclose(layers[0].grads[key], layers[1].grads[key], rtol=1e-4, atol=1e-4)


def test_a_conv_layer_reused_at_two_shapes_keeps_earlier_outputs_and_gradients():
    """Buffers are keyed by shape, and never handed to a caller that a later call overwrites."""
    layer = build("layer", {"type": "conv2d", "filters": 3, "kernel_size": 3})
    layer.name = "c"
    layer.build((9, 9, 2), np.random.default_rng(0))
    rng = np.random.default_rng(3)
    small, large = (rng.standard_normal(s).astype(np.float32) for s in ((2, 7, 7, 2), (4, 9, 9, 2)))
    y_small = layer.forward(small)
    grad_small = layer.backward(np.ones_like(y_small))
    kept = y_small.copy(), grad_small.copy()
    layer.backward(np.ones_like(layer.forward(large)))
    np.testing.assert_array_equal(y_small, kept[0])
    np.testing.assert_array_equal(grad_small, kept[1])
    np.testing.assert_allclose(layer.forward(small), kept[0], rtol=1e-6)


CONVNET = {"input_shape": [10, 10, 1], "layers": [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "max_pooling2d", "pool_size": 2},
    {"name": "features", "type": "flatten"},
    {"type": "dense", "units": 3}]}


def forward_backward(model, x):
    y = model.forward(x, training=True)
    model.backward(np.ones_like(y))
    return y, {key: grad.copy() for key, _, grad in model.parameters()}


def test_max_pooling_runs_before_the_relu_with_the_same_outputs_and_gradients():
    from dltrain.model import Model

    # without pool_blocks: bit-exact products, the same rows
    x = np.random.default_rng(4).standard_normal((3, 10, 10, 1)).astype(np.float32)
    results = []
    for commutes in (True, False):
        passes = ("pool_before_relu",) * commutes + ("compute_read_region",)
        model = Model.from_config(CONVNET, passes=passes)
        model.build(np.random.default_rng(0))
        results.append((forward_backward(model, x), [n.name for n in model.nodes]))
    (y, grads), order = results[0]
    (y_plain, grads_plain), order_plain = results[1]
    assert order[:3] == ["conv2d_1", "max_pooling2d_1", "conv2d_1_relu"]
    assert order_plain[:3] == ["conv2d_1", "conv2d_1_relu", "max_pooling2d_1"]
    np.testing.assert_array_equal(y, y_plain)
    for key in grads:
        np.testing.assert_array_equal(grads[key], grads_plain[key])


def test_a_relu_read_by_another_layer_or_named_as_output_stays_before_the_pooling():
    from dltrain.model import Model

    branching = {"input_shape": [6, 6, 2], "layers": [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
        {"name": "p", "type": "max_pooling2d", "pool_size": 2},
        {"type": "global_average_pooling2d", "inputs": ["c"]}]}
    model = Model.from_config(branching)
    model.build(np.random.default_rng(0))
    assert [n.name for n in model.nodes][:3] == ["c", "c_relu", "p"]
    ending = {"input_shape": [6, 6, 2], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pooling2d", "pool_size": 2}]}
    model = Model.from_config(ending)
    model.build(np.random.default_rng(0))
    assert [n.name for n in model.nodes] == ["conv2d_1", "max_pooling2d_1", "conv2d_1_relu"]
    assert model.output == "conv2d_1_relu"


def test_a_conv_read_by_a_cropping_pooling_computes_only_the_read_region_with_equal_results():
    from dltrain.model import Model

    config = {"input_shape": [13, 13, 3], "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3},                 # 11x11: pooling reads 10x10
        {"type": "max_pooling2d", "pool_size": 2},
        {"type": "flatten"}, {"type": "dense", "units": 2}]}
    x = np.random.default_rng(6).standard_normal((3, 13, 13, 3)).astype(np.float32)
    results = []
    for keep_region in (True, False):
        model = Model.from_config(config, passes=("pool_before_relu", "absorb_relu", "compute_read_region"))
        model.build(np.random.default_rng(0))
        conv = model.nodes[0].layer
        assert conv._region == (10, 10)
        if not keep_region:
            conv._region = None
        y = model.forward(x, training=True)
        grad_x = model.backward(np.ones_like(y))                           # the input's gradient too
        results.append((y, {"input": grad_x, **{k: g.copy() for k, _, g in model.parameters()}}))
    (y, grads), (y_full, grads_full) = results
    np.testing.assert_allclose(y, y_full, rtol=1e-5, atol=1e-6)
    assert grads["input"].shape == x.shape
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_full[key], rtol=1e-5, atol=1e-6)


def test_a_conv_read_by_two_layers_computes_all_of_its_output():
    from dltrain.model import Model

    model = Model.from_config({"input_shape": [7, 7, 1], "layers": [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 3},
        {"name": "p", "type": "max_pooling2d", "pool_size": 2},
        {"type": "global_max_pooling2d", "inputs": ["c"]}]})
    model.build(np.random.default_rng(0))
    assert model.nodes[0].layer._region is None


def to_blocks(x, pool):
    """(B, H, W, C) -> the (B, ph*pw, H//ph, W//pw, C) blocks of Conv2D.emit_pool_blocks."""
    (ph, pw), (b, h, w, c) = pool, x.shape
    x = x[:, :h // ph * ph, :w // pw * pw].reshape(b, h // ph, ph, w // pw, pw, c)
    return np.ascontiguousarray(x.transpose(0, 2, 4, 1, 3, 5)).reshape(b, ph * pw, h // ph, w // pw, c)


@pytest.mark.parametrize("pool, shape", [((2, 2), (3, 6, 6, 4)), ((2, 2), (2, 7, 9, 3)),
                                         ((3, 3), (2, 9, 9, 2)), ((2, 3), (2, 6, 7, 5))])
def test_max_pooling_of_blocks_equals_the_tiled_path_with_ties(pool, shape):
    rng = np.random.default_rng(7)
    x = np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float32)     # many ties
    plain, blocked = (build("layer", {"type": "max_pooling2d", "pool_size": list(pool)}) for _ in range(2))
    plain.name, blocked.name = "plain", "blocked"
    for layer in (plain, blocked):
        layer.build(shape[1:], None)
    assert blocked.blocks_for(shape[1:]) == pool
    blocked.take_blocks()
    y = plain.forward(x, True)
    np.testing.assert_array_equal(blocked.forward(to_blocks(x, pool), True), y)
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(blocked.backward(grad_y), to_blocks(plain.backward(grad_y), pool))


@pytest.mark.parametrize("conv, input_shape, pool", [
    ({"filters": 4, "kernel_size": 3}, (10, 10, 1), 2),                      # ones column (K = 9)
    ({"filters": 5, "kernel_size": 3}, (11, 11, 6), 2),                      # odd: reads 8x8 of 9x9
    ({"filters": 3, "kernel_size": 3, "padding": "same", "use_bias": False}, (9, 9, 4), 3),
    ({"filters": 3, "kernel_size": [2, 3], "strides": 2, "dilation_rate": 1}, (13, 14, 3), 2),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (8, 8, 3), 2),
    ({"filters": 4, "kernel_size": 1}, (6, 6, 5), 2),                        # 1x1: no plain shortcut
])
def test_a_conv_giving_pooling_blocks_equals_the_plain_layout(conv, input_shape, pool):
    """Outputs, every parameter's gradient and the input's gradient, through a model whose conv
    is not the first layer (so it computes its input gradient too)."""
    from dltrain.model import Model
    from dltrain.model import passes as passes_module

    config = {"input_shape": list(input_shape), "layers": [
        {"type": "zero_padding2d", "padding": 1},
        {"type": "conv2d", "activation": "relu", **conv},
        {"type": "max_pooling2d", "pool_size": pool},
        {"type": "flatten"}, {"type": "dense", "units": 3}]}
    b = 3
    x = np.random.default_rng(8).standard_normal((b, *input_shape)).astype(np.float32)
    results = []
    for fuse in (True, False):
        passes = [name for name in passes_module.names() if fuse or name != "pool_blocks"]
        model = Model.from_config(config, passes=passes)
        model.build(np.random.default_rng(0))
        conv_layer = next(n.layer for n in model.nodes if n.layer.registered_name == "conv2d")
        assert (conv_layer._blocks is not None) == fuse
        y = model.forward(x, training=True)
        grad_x = model.backward(np.ones_like(y))
        results.append((y, {"input": grad_x, **{k: g.copy() for k, _, g in model.parameters()}}))
    (y, grads), (y_plain, grads_plain) = results
    np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-6)
    for key in grads_plain:
        np.testing.assert_allclose(grads[key], grads_plain[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_a_conv_read_by_a_pooling_and_another_layer_keeps_the_plain_layout():
    from dltrain.model import Model

    model = Model.from_config({"input_shape": [8, 8, 1], "layers": [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 3},
        {"name": "p", "type": "max_pooling2d", "pool_size": 2},
        {"name": "q", "type": "max_pooling2d", "pool_size": 2, "inputs": ["c"]},
        {"type": "concatenate", "inputs": ["p", "q"]}]})
    model.build(np.random.default_rng(0))
    assert model.nodes[0].layer._blocks is None
    y = model.forward(np.ones((2, 8, 8, 1), dtype=np.float32))
    assert y.shape == (2, 3, 3, 4)


@pytest.mark.parametrize("shape, kernel, strides, blocks", [
    ((2, 9, 9, 8), (3, 3), (1, 1), (2, 2)),       # kernel-row copy
    ((3, 10, 10, 1), (3, 3), (1, 1), (2, 2)),     # one channel: per-offset copies
    ((2, 11, 13, 2), (2, 3), (1, 2), (3, 2)),
])
def test_im2col_in_pooling_blocks_is_the_plain_columns_regrouped(shape, kernel, strides, blocks):
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    out_hw, _ = windows.output_size(None, shape[1:3], kernel, strides, (1, 1), "valid")
    region = (out_hw[0] // blocks[0] * blocks[0], out_hw[1] // blocks[1] * blocks[1])
    plain = windows.im2col(x, kernel, out_hw, strides, (1, 1))[:, :region[0], :region[1]]
    b, k = shape[0], kernel[0] * kernel[1] * shape[3]
    blocked = windows.im2col(x, kernel, region, strides, (1, 1), blocks=blocks)
    np.testing.assert_array_equal(blocked.reshape(b, -1, region[0] // blocks[0], region[1] // blocks[1], k),
                                  to_blocks(plain.reshape(b, *region, k), blocks))


@pytest.mark.parametrize("pool, shape", [((2, 2), (3, 6, 6, 4)), ((3, 3), (2, 9, 9, 2))])
def test_a_blocked_pooling_that_absorbed_its_relu_equals_pooling_then_relu_with_ties(pool, shape):
    """max(0, blocks) with the zero first: the same values as relu(max) and no gradient where the
    maximum is <= 0 (ties at zero included), as the ReLU layer's x > 0 gives."""
    from dltrain.activations import ReLU

    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, shape).astype(np.float32)                  # negatives, zeros, ties
    plain, fused = (build("layer", {"type": "max_pooling2d", "pool_size": list(pool)}) for _ in range(2))
    plain.name, fused.name = "plain", "fused"
    for layer in (plain, fused):
        layer.build(shape[1:], None)
    fused.take_blocks()
    fused.absorb_relu()
    relu = ReLU()
    y = relu.forward(plain.forward(x, True))
    np.testing.assert_array_equal(fused.forward(to_blocks(x, pool), True), y)
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    expected = to_blocks(plain.backward(relu.backward(grad_y)), pool)
    np.testing.assert_array_equal(fused.backward(grad_y), expected)


def test_the_relu_after_a_blocked_pooling_is_absorbed_and_leaves_the_plan():
    from dltrain.model import Model

    model = Model.from_config({"input_shape": [10, 10, 1], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pooling2d", "pool_size": 2},
        {"type": "flatten"}]})
    model.build(np.random.default_rng(0))
    layers = {n.name: n.layer for n in model.nodes}
    assert layers["max_pooling2d_1"]._relu and "conv2d_1_relu" not in layers     # dropped from the plan
    assert [r.nodes for r in model.rewrites if r.pass_name == "absorb_relu"] == [("max_pooling2d_1", "conv2d_1_relu")]
    y = model.forward(np.random.default_rng(1).standard_normal((2, 10, 10, 1)).astype(np.float32))
    assert (y >= 0).all()
