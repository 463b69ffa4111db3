"""Image data: the idx and image_folder sources, augmentation, predict on images, `dltrain time`."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from dltrain.errors import DataError
from dltrain.registry import build

PIL = pytest.importorskip("PIL.Image", reason="Pillow is needed to write and read image fixtures")
SMALL_MNIST = Path(__file__).parent / "data" / "mnist_small"


def write_idx(path, array, compress=True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def image_folder(root, sizes=None, mode="L"):
    """root/{bars,dots}/ with 6 small images each, in four formats; bars and dots differ plainly."""
    rng = np.random.default_rng(0)
    formats = ["png", "bmp", "gif", "jpg"]
    for label, name in enumerate(["bars", "dots"]):
        (root / name).mkdir(parents=True)
        for i in range(6):
            h, w = (sizes or {}).get((name, i), (12, 10))
            pixels = rng.integers(0, 40, (h, w)).astype(np.uint8)
            if name == "bars":
                pixels[:, ::3] = 230
            else:
                pixels[::4, ::4] = 230
            image = PIL.fromarray(pixels, "L").convert(mode)
            image.save(root / name / f"{i}.{formats[i % 4]}")
    return root


# -- idx -------------------------------------------------------------------------------------

def test_idx_reads_images_channels_last_and_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 4, 3)).astype(np.uint8)
    write_idx(tmp_path / "img.gz", x)
    write_idx(tmp_path / "lab", np.arange(5).astype(np.uint8), compress=False)
    images, labels = build("source", {"type": "idx", "path": "img.gz", "labels": "lab"}).load(tmp_path)
    assert images.shape == (5, 4, 3, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], x)
    np.testing.assert_array_equal(labels, np.arange(5))


def test_idx_errors_name_the_file(tmp_path):
    (tmp_path / "bad.gz").write_bytes(b"\x12\x34\x56\x78rest")
    with pytest.raises(DataError, match="bad.gz is not an IDX file"):
        build("source", {"type": "idx", "path": "bad.gz"}).load(tmp_path)
    write_idx(tmp_path / "cut", np.zeros((4, 3, 3)), compress=False)
    (tmp_path / "cut").write_bytes((tmp_path / "cut").read_bytes()[:-5])
    with pytest.raises(DataError, match="cut: the header promises"):
        build("source", {"type": "idx", "path": "cut"}).load(tmp_path)
    write_idx(tmp_path / "img", np.zeros((4, 3, 3)))
    write_idx(tmp_path / "lab", np.zeros(3))
    with pytest.raises(DataError, match="4 images but .* 3 labels"):
        build("source", {"type": "idx", "path": "img", "labels": "lab"}).load(tmp_path)


def test_idx_reads_the_shared_mnist_test_split(shared_data):
    source = build("source", {"type": "idx", "path": "mnist/t10k-images-idx3-ubyte.gz",
                              "labels": "mnist/t10k-labels-idx1-ubyte.gz"})
    x, y = source.load(shared_data)
    assert x.shape == (10000, 28, 28, 1) and x.max() == 255
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    reference = np.load(shared_data / "mnist_t10k.npz")
    np.testing.assert_array_equal(x[..., 0], reference["x"])


# -- image_folder ----------------------------------------------------------------------------

def test_image_folder_reads_classes_from_folder_names(tmp_path):
    image_folder(tmp_path / "train")
    source = build("source", {"type": "image_folder", "path": "train", "color_mode": "grayscale"})
    x, y = source.load(tmp_path)
    assert x.shape == (12, 12, 10, 1) and x.dtype == np.uint8
    assert source.class_names == ["bars", "dots"] and y.tolist() == [0] * 6 + [1] * 6
    rgb = build("source", {"type": "image_folder", "path": "train", "target_size": [6, 5]}).load(tmp_path)[0]
    assert rgb.shape == (12, 6, 5, 3)


def test_image_folder_with_mixed_sizes_needs_target_size(tmp_path):
    image_folder(tmp_path / "train", sizes={("dots", 3): (9, 9)})
    with pytest.raises(DataError) as info:
        build("source", {"type": "image_folder", "path": "train"}).load(tmp_path)
    assert "3.jpg is 9x9 pixels" in str(info.value) and "target_size" in info.value.fix
    x, _ = build("source", {"type": "image_folder", "path": "train", "target_size": [12, 10]}).load(tmp_path)
    assert x.shape[1:3] == (12, 10)


def test_corrupt_image_and_empty_class_are_data_errors_naming_the_file(tmp_path):
    image_folder(tmp_path / "train")
    (tmp_path / "train" / "dots" / "4.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="4.png: not a readable image"):
        build("source", {"type": "image_folder", "path": "train"}).load(tmp_path)
    (tmp_path / "train" / "dots" / "4.png").unlink()
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="class folder .*empty holds no images"):
        build("source", {"type": "image_folder", "path": "train"}).load(tmp_path)


# -- augmentation ----------------------------------------------------------------------------

AUGMENTATIONS = [
    {"type": "random_flip"}, {"type": "random_translation", "height_factor": 0.2, "width_factor": 0.2},
    {"type": "random_rotation", "factor": 0.1}, {"type": "random_zoom", "height_factor": 0.2},
    {"type": "random_contrast", "factor": 0.5}, {"type": "random_crop", "height": 6, "width": 5},
]


@pytest.mark.parametrize("spec", AUGMENTATIONS, ids=[s["type"] for s in AUGMENTATIONS])
def test_augmentation_is_seeded_and_applies_in_training_only(spec):
    from dltrain.data.dataset import Pipeline

    pipeline = Pipeline([build("preprocessing", spec)])
    assert pipeline.augments
    x = np.random.default_rng(0).random((16, 8, 8, 2)).astype(np.float32)
    a = pipeline.transform(x, np.random.default_rng(5))
    b = pipeline.transform(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)                         # same stream, same batch
    assert a.dtype == np.float32
    inference = pipeline.transform(x)
    if spec["type"] == "random_crop":
        assert a.shape == inference.shape == (16, 6, 5, 2)
        np.testing.assert_array_equal(inference, x[:, 1:7, 1:6])  # the centre crop
    else:
        assert a.shape == x.shape
        np.testing.assert_array_equal(inference, x)              # untouched outside training
        assert not np.allclose(a, x)


def test_random_translation_moves_pixels_by_whole_steps():
    from dltrain.data.augmentation import affine_sample

    x = np.zeros((1, 5, 5, 1), np.float32)
    x[0, 2, 2] = 1
    shift = np.array([[[1, 0, -1], [0, 1, 0]]], np.float32)      # sample from row r - 1: moves down
    y = affine_sample(x, shift, fill_mode="constant", interpolation="nearest")
    assert y[0, 3, 2, 0] == 1 and y.sum() == 1


# -- end to end: fit on a folder, predict on files and folders --------------------------------

CONFIG = """
name: shapes
seed: 3
data:
  train: {type: image_folder, path: train, color_mode: grayscale, target_size: [12, 10]}
  preprocessing:
    - {type: rescale, scale: 0.00392156862745098}
    - {type: random_flip, mode: vertical}
model:
  input_shape: [12, 10, 1]
  layers:
    - {type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu}
    - {type: max_pooling2d}
    - flatten
    - {type: dense, units: 2, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
metrics: [accuracy]
training: {epochs: 10, batch_size: 4}
"""


def test_fit_on_an_image_folder_then_predict_images_with_class_names(tmp_path, cli):
    image_folder(tmp_path / "train")
    (tmp_path / "shapes.yaml").write_text(CONFIG)
    result = cli("fit", tmp_path / "shapes.yaml", "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    result = cli("predict", tmp_path / "run", tmp_path / "train" / "bars" / "0.png",
                 tmp_path / "train" / "dots", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert len(records) == 7
    assert records[0]["row"] == "0.png" and set(records[0]) >= {"prediction", "p_bars", "p_dots"}
    assert sum(r["prediction"] == ("bars" if i == 0 else "dots") for i, r in enumerate(records)) >= 6


def test_fit_on_a_folder_with_a_corrupt_image_exits_3(tmp_path):
    from conftest import run_dltrain

    image_folder(tmp_path / "train")
    (tmp_path / "train" / "bars" / "1.bmp").write_bytes(b"BM garbage")
    (tmp_path / "shapes.yaml").write_text(CONFIG)
    done = run_dltrain("fit", tmp_path / "shapes.yaml", "--run-dir", tmp_path / "run", "--quiet", timeout=120)
    assert done.returncode == 3, done.stderr
    assert "1.bmp" in done.stderr and "Traceback" not in done.stderr


def test_time_command_lists_each_layer(cli):
    config = Path(__file__).parent.parent / "configs" / "mnist_convnet.yaml"
    result = cli("time", config, "--batch-size", "8", "--iterations", "2")
    assert result.exit_code == 0, result.output
    for fragment in ("conv2d_1", "max_pooling2d_2", "dense_2", "forward ms", "backward ms", "total"):
        assert fragment in result.output


@pytest.mark.parametrize("config", ["mnist_convnet.yaml", "mnist_separable.yaml", "digits_resnet.yaml"])
def test_example_config_trains_briefly_and_evaluates(config, tmp_path, cli):
    path = Path(__file__).parent.parent / "configs" / config
    overrides = ["--set", "training.epochs=1"]
    if config.startswith("mnist"):
        for split, stem in (("train", "train"), ("test", "t10k")):   # the configs name `mnist`
            overrides += ["--set", f"data.{split}={{type: idx, path: '{SMALL_MNIST / f'{stem}-images-idx3-ubyte.gz'}',"
                                   f" labels: '{SMALL_MNIST / f'{stem}-labels-idx1-ubyte.gz'}'}}"]
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet", *overrides)
    assert result.exit_code == 0, result.output
    result = cli("evaluate", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.output)["accuracy"] <= 1
