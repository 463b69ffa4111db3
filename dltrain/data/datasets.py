"""Built-in datasets by name: ``{type: dataset, name: mnist, split: train}``.

The small ones (digits, iris, wine, breast_cancer, diabetes) ship in the repository's
``datasets/`` folder. MNIST and Fashion-MNIST are downloaded on first use from their public
mirrors into ``$DLTRAIN_DATA_DIR/NAME/`` (default ``~/.cache/dltrain/NAME/``), verified by
SHA-256 and read from there afterwards; ``mirror:`` names another URL or a local folder holding
the same files.
"""
import gzip
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain.data import download
from dltrain.data.sources import Csv, Npz, Source
from dltrain.errors import ConfigError, DataError
from dltrain.registry import register, suggest

BUNDLED = Path(__file__).resolve().parent.parent.parent / "datasets"


@dataclass
class Info:
    name: str
    description: str
    shape: tuple                      # per sample
    classes: int                      # 0 for regression
    splits: dict                      # split -> (x file, y file) or (file,)
    class_names: list = None
    mirrors: tuple = ()
    content_sha256: dict = field(default_factory=dict)   # file -> SHA-256 of gunzipped bytes
    file_sha256: dict = field(default_factory=dict)      # file -> SHA-256 of the file as served
    size: str = ""

    @property
    def downloaded(self):
        return bool(self.mirrors)


_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

DATASETS = {info.name: info for info in [
    Info("digits", "UCI optical digits, 8x8 images, values 0..16", (8, 8), 10,
         {"train": ("digits.npz",)}, size="1,797 samples"),
    Info("iris", "Fisher's iris, 4 measurements (cm)", (4,), 3, {"train": ("iris.csv",)},
         class_names=["setosa", "versicolor", "virginica"], size="150 samples"),
    Info("wine", "UCI wine recognition, 13 chemical measurements (standardize them)", (13,), 3,
         {"train": ("wine.csv",)}, class_names=["class_0", "class_1", "class_2"], size="178 samples"),
    Info("breast_cancer", "Wisconsin diagnostic breast cancer, 30 features", (30,), 2,
         {"train": ("breast_cancer.csv",)}, class_names=["malignant", "benign"], size="569 samples"),
    Info("diabetes", "Efron et al. diabetes progression, 10 raw features (regression)", (10,), 0,
         {"train": ("diabetes.csv",)}, size="442 samples"),
    Info("mnist", "LeCun, Cortes and Burges, handwritten digits 28x28, values 0..255", (28, 28), 10,
         _MNIST_FILES, mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",
                                "https://ossci-datasets.s3.amazonaws.com/mnist/"),
         content_sha256={
             "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
             "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
             "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
             "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
         size="60,000 + 10,000 images, 11 MB download"),
    # Fashion-MNIST: the hashes of the .gz files as Zalando publishes them (no copy was at hand to
    # pin the content hashes from); a mirror that re-compresses them fails verification.
    Info("fashion_mnist", "Zalando's article images 28x28, values 0..255", (28, 28), 10,
         _MNIST_FILES, class_names=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
         mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
         file_sha256={
             "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
             "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
             "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
             "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"},
         size="60,000 + 10,000 images, 30 MB download"),
]}


def info(name, where=None):
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}", where=where, expected=", ".join(DATASETS),
                          fix=suggest(str(name), list(DATASETS), "`dltrain datasets list` shows them."))
    return DATASETS[name]


def cached(name):
    """Whether every file of a downloaded dataset is in the cache (bundled ones always are)."""
    data = info(name)
    if not data.downloaded:
        return (BUNDLED / data.splits["train"][0]).exists()
    return all((download.cache_dir() / name / f).exists() for files in data.splits.values() for f in files)


def files(name, split="train", mirror=None, progress=None):
    """Local, verified paths of a split's files: downloaded (and cached) when missing.

    ``progress(file, done, total)`` is called while downloading.
    """
    data = info(name)
    if split not in data.splits:
        raise ConfigError(f"dataset {name!r} has no split {split!r}", expected=", ".join(data.splits),
                          fix="use split: train and hold out validation/test with `split:` fractions."
                          if not data.downloaded else None)
    if not data.downloaded:
        return [BUNDLED / f for f in data.splits[split]]
    mirror = str(mirror) if mirror else None
    if mirror and "://" not in mirror:                    # a local folder: read in place
        folder = Path(mirror).expanduser()
        paths = [folder / f for f in data.splits[split]]
        for path in paths:
            if not path.exists():
                raise DataError(f"{path} does not exist", fix=f"the mirror folder needs {path.name}.")
            _check(data, path, f"{path}")
        return paths
    paths = []
    for file in data.splits[split]:
        target = download.cache_dir() / name / file
        if target.exists():
            _check(data, target, f"cached file {target}", delete=True)
        if not target.exists():
            _download(data, file, target, mirror, progress)
        paths.append(target)
    return paths


def _check(data, path, what, delete=False):
    problem = download.verify(path, data.content_sha256.get(path.name), data.file_sha256.get(path.name))
    if problem:
        if delete:                      # a damaged cache entry is fetched again
            path.unlink(missing_ok=True)
            return
        raise DataError(f"{what} failed verification: {problem}",
                        fix="replace it with a correct copy.")


def _download(data, file, target, mirror, progress):
    errors = []
    for base in ([mirror] if mirror else data.mirrors):
        url = base.rstrip("/") + "/" + file
        try:
            return download.fetch(url, target, data.content_sha256.get(file), data.file_sha256.get(file),
                                  progress=(lambda done, total: progress(file, done, total))
                                  if progress else None)
        except DataError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    raise DataError(f"could not download {file} from any mirror: "
                    + "; ".join(e.message for e in errors), fix=errors[-1].fix)


def read_idx(path):
    """An IDX file (MNIST's format, gzipped or not) as a uint8 array."""
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable IDX file ({error})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: the header says {shape} ({int(np.prod(shape))} bytes), the file "
                        f"holds {data.size}", fix="the file is truncated; delete it and download again.")
    return data.reshape(shape)


@register("dataset")
class Dataset(Source):
    """A built-in dataset by name (``dltrain datasets list``).

    Args:
        name: digits, iris, wine, breast_cancer, diabetes, mnist or fashion_mnist.
        split: train, or test for the datasets that have one (mnist, fashion_mnist).
        mirror: a URL or a local folder with the dataset's files, instead of the public mirrors.
    """

    path_arguments = ()

    def __init__(self, name, split="train", mirror=None):
        self.name, self.split, self.mirror = name, split, mirror
        self.info = info(name)
        self.path = None
        self.inner = None

    @property
    def class_names(self):
        return self.info.class_names or getattr(self.inner, "class_names", None)

    def load(self, base):
        mirror = self.mirror
        if mirror and "://" not in str(mirror) and not Path(mirror).expanduser().is_absolute():
            mirror = Path(base) / mirror
        paths = files(self.name, self.split, mirror)
        if self.info.downloaded:
            x, y = (read_idx(p) for p in paths)
            if len(x) != len(y):
                raise DataError(f"{paths[0]} has {len(x)} images but {paths[1]} has {len(y)} labels")
            return x, y
        path = paths[0]
        self.inner = Npz(str(path)) if path.suffix == ".npz" else Csv(str(path))
        return self.inner.load(base)

    @property
    def fitted(self):
        return getattr(self.inner, "fitted", None)

    @fitted.setter
    def fitted(self, value):
        pass                                   # bundled CSVs are numeric: nothing to restore


def listing():
    """One dict per dataset: name, description, size, classes, splits, whether it is local."""
    return [{"name": d.name, "description": d.description, "size": d.size,
             "shape": d.shape, "classes": d.classes, "splits": list(d.splits),
             "source": "bundled" if not d.downloaded else "download",
             "cached": cached(d.name)} for d in DATASETS.values()]


def environment_note():
    return f"cache: {download.cache_dir()} (set DLTRAIN_DATA_DIR to move it)" \
        if "DLTRAIN_DATA_DIR" not in os.environ else f"cache: {download.cache_dir()} (DLTRAIN_DATA_DIR)"
