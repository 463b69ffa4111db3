"""Batch and layer normalization: hand-computed values, training vs inference, save/load."""
import numpy as np

from dltrain.registry import build


def make(spec, shape, dtype=np.float32):
    layer = build("layer", spec)
    layer.name, layer.dtype = "bn", dtype
    layer.build(shape, np.random.default_rng(0))
    return layer


def test_batch_normalization_uses_batch_statistics_in_training_and_moving_ones_in_inference():
    layer = make({"type": "batch_normalization", "momentum": 0.5}, (4, 4, 3))
    x = (np.random.default_rng(1).standard_normal((8, 4, 4, 3)) * 3 + 5).astype(np.float32)
    y_train = layer.forward(x, training=True)
    # training: each channel standardised over (batch, height, width)
    np.testing.assert_allclose(y_train.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y_train.std(axis=(0, 1, 2)), 1, atol=1e-2)
    # moving = 0.5 * initial + 0.5 * batch
    np.testing.assert_allclose(layer.state["moving_mean"], 0.5 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(layer.state["moving_variance"], 0.5 + 0.5 * x.var(axis=(0, 1, 2)), rtol=1e-5)
    y_infer = layer.forward(x, training=False)
    assert not np.allclose(y_train, y_infer)
    expected = (x - layer.state["moving_mean"]) / np.sqrt(layer.state["moving_variance"] + 1e-3)
    np.testing.assert_allclose(y_infer, expected, rtol=1e-4, atol=1e-5)
    assert y_infer.dtype == np.float32 and layer.state["moving_mean"].dtype == np.float32


def test_layer_normalization_standardises_each_sample():
    layer = make({"type": "layer_normalization", "epsilon": 1e-6}, (3, 8))
    x = np.random.default_rng(2).standard_normal((2, 3, 8)).astype(np.float32) * 4 + 1
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=-1), 1, atol=1e-3)
    np.testing.assert_allclose(layer.forward(x, training=False), y)


def test_batch_normalization_moving_statistics_survive_a_checkpoint(tmp_path):
    from dltrain.model import Model
    from dltrain.training import checkpoint

    config = {"input_shape": [6, 6, 2], "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "batch_normalization", "momentum": 0.0},
        {"type": "global_average_pooling2d"}, {"type": "dense", "units": 3}]}
    model = Model.from_config(config)
    model.build(np.random.default_rng(0))
    x = np.random.default_rng(3).standard_normal((16, 6, 6, 2)).astype(np.float32) + 2
    model.forward(x, training=True)                            # moves the statistics
    before = model.predict(x)
    path = tmp_path / "state.npz"
    checkpoint.save(path, {f"model/{k}": v for k, v in model.state_dict().items()}, {"epoch": 1})
    arrays, _ = checkpoint.load(path)
    again = Model.from_config(config)
    again.build(np.random.default_rng(99))                     # different initial weights
    again.load_state_dict(checkpoint.section(arrays, "model"))
    assert any("moving_mean" in k for k in model.state_dict())
    np.testing.assert_array_equal(again.predict(x), before)
