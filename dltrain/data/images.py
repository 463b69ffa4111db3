"""The ``image_folder`` source: one sub-folder of images per class, read through Pillow.

    flowers/            class names come from the folder names, sorted:
      daisy/*.jpg       daisy = 0, rose = 1
      rose/*.png

Images come out channels-last, (N, height, width, channels), uint8 0..255; rescale them in
preprocessing. With ``target_size`` every image is resized; without it, every image must already
have the size of the first (a different size is a DataError naming the file).
"""
from pathlib import Path

import numpy as np

from dltrain import check
from dltrain.data.sources import Source
from dltrain.errors import ConfigError, DataError
from dltrain.registry import register

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("reading images needs Pillow, which is not installed",
                          fix="pip install 'dltrain[images]' (or pip install Pillow).") from None
    return Image


def image_files(folder):
    """Every image file under ``folder``, sorted, hidden files left out."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_image(path, color_mode="rgb", target_size=None, interpolation="bilinear"):
    """One image as uint8 (height, width, channels); the first frame of an animated GIF."""
    Image = _pillow()
    try:
        with Image.open(path) as image:
            image = image.convert(MODES[color_mode])
            if target_size is not None and image.size != (target_size[1], target_size[0]):
                resample = getattr(Image.Resampling, interpolation.upper())
                image = image.resize((target_size[1], target_size[0]), resample)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: not a readable image ({error})",
                        fix="remove or replace the file (PNG, JPEG, BMP and GIF are read).") from None
    return array if array.ndim == 3 else array[:, :, None]


def read_images(files, color_mode, target_size, interpolation):
    """(N, height, width, channels) uint8 of ``files``; sizes must agree unless resized."""
    first = read_image(files[0], color_mode, target_size, interpolation)
    images = np.empty((len(files), *first.shape), dtype=np.uint8)
    images[0] = first
    for i, file in enumerate(files[1:], start=1):
        image = read_image(file, color_mode, target_size, interpolation)
        if image.shape != first.shape:
            raise DataError(
                f"{file} is {image.shape[1]}x{image.shape[0]} pixels, but {files[0]} is "
                f"{first.shape[1]}x{first.shape[0]}",
                fix="set `target_size: [height, width]` on the source to resize every image.")
        images[i] = image
    return images


class _ImageOptions:
    def _options(self, target_size, color_mode, interpolation):
        self.target_size = None if target_size is None else list(check.int_tuple("target_size", target_size, 2))
        self.color_mode = check.one_of("color_mode", color_mode, tuple(MODES))
        self.interpolation = check.one_of("interpolation", interpolation, RESAMPLING)

    def _read(self, files):
        return read_images(files, self.color_mode, self.target_size, self.interpolation)


@register("image_folder")
class ImageFolder(Source, _ImageOptions):
    """Images in one sub-folder per class (PNG, JPEG, BMP, GIF); labels from the folder names.

    Args:
        path: the folder that holds one folder per class.
        target_size: [height, width] to resize every image to, or null to keep sizes (all equal).
        color_mode: grayscale (1 channel), rgb (3) or rgba (4).
        interpolation: resampling for resizing: nearest, bilinear, bicubic or lanczos.
    """

    family = "image"

    extensions = EXTENSIONS
    reads_folders = True

    def __init__(self, path, target_size=None, color_mode="rgb", interpolation="bilinear"):
        self.path = path
        self._options(target_size, color_mode, interpolation)
        self.class_names = None

    def load(self, base):
        folder = self.resolve(base)
        if not folder.is_dir():
            raise DataError(f"{folder} is not a folder",
                            fix="point `path` at a folder with one sub-folder of images per class.")
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{folder} has no class folders",
                            fix="put the images of each class in a sub-folder named after the class.")
        files, labels = [], []
        for label, class_folder in enumerate(classes):
            members = image_files(class_folder)
            if not members:
                raise DataError(f"class folder {class_folder} holds no images",
                                expected="files ending in " + ", ".join(EXTENSIONS),
                                fix="add images to it or remove the folder.")
            files += members
            labels += [label] * len(members)
        self.class_names = [p.name for p in classes]
        return self._read(files), np.array(labels, dtype=np.int64)

    def load_features(self, base, expected_features=None):
        return self.load(base)[0]

    @classmethod
    def for_prediction(cls, path, train):
        if train is None:
            return ImageFiles(path)
        return ImageFiles(path, train.target_size, train.color_mode, train.interpolation)


class ImageFiles(_ImageOptions):
    """Images to predict on: one file, or every image under a folder (``sample_names`` name them).

    Without a training image_folder to copy the settings from, images keep their size, and
    grayscale images stay one channel while others become RGB.
    """

    def __init__(self, path, target_size=None, color_mode=None, interpolation="bilinear"):
        self.path = Path(path)
        self._options(target_size, color_mode or "rgb", interpolation)
        self._keep_gray = color_mode is None
        self.sample_names = None

    def load_features(self, base, expected_features=None):
        path = self.path if self.path.is_absolute() else Path(base) / self.path
        files = [path] if path.is_file() else image_files(path)
        if not files:
            raise DataError(f"{path} holds no images", expected="files ending in " + ", ".join(EXTENSIONS))
        if self._keep_gray:
            try:
                with _pillow().open(files[0]) as image:
                    self.color_mode = "grayscale" if image.mode in ("L", "1", "I;16") else "rgb"
            except OSError:
                pass                                   # read_image names the bad file below
        self.sample_names = [f.name if path.is_file() else str(f.relative_to(path)) for f in files]
        return self._read(files)
