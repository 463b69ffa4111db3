"""Built-in datasets by name: ``{type: dataset, name: mnist, split: train}``.

The small ones (digits, iris, wine, breast_cancer, diabetes) ship in the repository's
``datasets/`` folder. MNIST and Fashion-MNIST are downloaded on first use from their public
mirrors into ``$DLTRAIN_DATA_DIR/NAME/`` (default ``~/.cache/dltrain/NAME/``), verified and read
from there afterwards; ``mirror:`` names another URL or a local folder holding the same files.
A ``DLTRAIN_DATA_DIR`` that itself holds the files (a folder of the four original MNIST ``.gz``
files) is used as it is: a file there that verifies is read in place, one that does not is left
alone (it may be another dataset's file of the same name) and the dataset is fetched into
``NAME/`` beside it.

How each dataset is verified (``Info.verification``): MNIST by the SHA-256 of the gunzipped
content, pinned from the team's checked copies; Fashion-MNIST by the MD5 of the ``.gz`` files as
its authors publish them, which no one here has checked against a download (there was no copy).
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.data import download
from dltrain.data.idx import Idx
from dltrain.data.csv_source import Csv
from dltrain.data.sources import Npz, Source
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
    file_md5: dict = field(default_factory=dict)         # file -> MD5 of the file as served
    size: str = ""
    verification: str = "bundled with dltrain"           # how the pinned hashes were obtained

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
    Info("mnist", "LeCun, Cortes and Burges, handwritten digits 28x28x1, values 0..255", (28, 28, 1), 10,
         _MNIST_FILES, mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",
                                "https://ossci-datasets.s3.amazonaws.com/mnist/"),
         content_sha256={
             "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
             "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
             "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
             "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
         size="60,000 + 10,000 images, 11 MB download",
         verification="SHA-256 of the gunzipped content (checked on the team's copies)"),
    # Fashion-MNIST: no copy was at hand to pin content hashes from, so the files are checked by
    # the MD5 sums Zalando publishes for its .gz files (github.com/zalandoresearch/fashion-mnist,
    # README, "Get the Data"): unverified here, and a mirror that re-compresses them fails.
    # (The SHA-256 values pinned before came from a third-party loader and disagree with the
    # ones most other loaders list for the same files; neither was checked here, so neither is
    # used.)
    Info("fashion_mnist", "Zalando's article images 28x28x1, values 0..255", (28, 28, 1), 10,
         _MNIST_FILES, class_names=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
         mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
         file_md5={
             "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
         size="60,000 + 10,000 images, 30 MB download",
         verification="unverified: pinned to the .gz files (the authors' published MD5; not "
                      "checked against a download here)"),
]}


def info(name, where=None):
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}", where=where, expected=", ".join(DATASETS),
                          fix=suggest(str(name), list(DATASETS), "`dltrain datasets list` shows them."))
    return DATASETS[name]


def cached(name):
    """Whether every file of a dataset is on this machine, verified (bundled ones always are)."""
    data = info(name)
    if not data.downloaded:
        return (BUNDLED / data.splits["train"][0]).exists()
    return all(local(name, split) is not None for split in data.splits)


def local(name, split="train"):
    """Verified local paths of a downloaded dataset's split, or None when one is missing."""
    data = info(name)
    paths = [_find(data, file) for file in data.splits[split]]
    return None if None in paths else paths


def _find(data, file, known=()):
    """The verified copy of ``file`` in ``$DLTRAIN_DATA_DIR/NAME/``, ``$DLTRAIN_DATA_DIR/``, or
    a ``known`` folder (where a run found its data when it was trained).

    A copy that fails verification is never deleted: a fresh download replaces the cache's own
    copy atomically, and a file directly in the data folder may be another dataset's."""
    for path in (download.cache_dir() / data.name / file, download.cache_dir() / file,
                 *(Path(folder) / file for folder in known)):
        if path.is_file() and not _problem(data, path):
            return path
    return None


def files(name, split="train", mirror=None, progress=None, known=()):
    """Local, verified paths of a split's files: downloaded (and cached) when missing.

    ``progress(file, done, total)`` is called while downloading; without one, the hook that
    ``download.reporting`` installed (if any) is.
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
            problem = _problem(data, path)
            if problem:
                raise DataError(f"{path} failed verification: {problem}",
                                fix="replace it with a correct copy.")
        return paths
    paths = []
    for file in data.splits[split]:
        path = _find(data, file, known)
        if path is None:
            path = _download(data, file, download.cache_dir() / name / file, mirror, progress)
        paths.append(path)
    return paths


def _pins(data, file):
    return {"content_sha256": data.content_sha256.get(file), "file_sha256": data.file_sha256.get(file),
            "file_md5": data.file_md5.get(file)}


def _problem(data, path):
    return download.verify(path, **_pins(data, path.name))


def _download(data, file, target, mirror, progress):
    errors = []
    report = (lambda done, total: progress(file, done, total)) if progress else download.reporter(file)
    for base in ([mirror] if mirror else data.mirrors):
        url = base.rstrip("/") + "/" + file
        try:
            return download.fetch(url, target, progress=report, **_pins(data, file))
        except DataError as error:
            if data.file_md5 and "failed verification" in error.message:
                error.fix = f"{data.name}'s pinned hashes are {data.verification}; " + (error.fix or "")
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    raise DataError(f"could not download {file} from any mirror: "
                    + "; ".join(e.message for e in errors), fix=errors[-1].fix)


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
        self.path = None                 # the first file read, once loaded (the run records it)
        self.inner = None
        #: folders where the run that saved this source found its files (api.LoadedRun)
        self.known_folders = ()

    @property
    def class_names(self):
        return self.info.class_names or getattr(self.inner, "class_names", None)

    @property
    def family(self):
        """What predict reads a file as: images for mnist-likes, else what the bundled file is."""
        return "image" if self.info.downloaded else getattr(self.inner, "family", "array")

    def load(self, base):
        mirror = self.mirror
        if mirror and "://" not in str(mirror) and not Path(mirror).expanduser().is_absolute():
            mirror = Path(base) / mirror
        paths = files(self.name, self.split, mirror, known=self.known_folders)
        self.path = str(paths[0])
        if self.info.downloaded:              # (N, 28, 28, 1) uint8 images, (N,) int64 labels
            return Idx(str(paths[0]), labels=str(paths[1])).load(base)
        path = paths[0]
        self.inner = Npz(str(path)) if path.suffix == ".npz" else Csv(str(path))
        return self.inner.load(base)

    @property
    def fitted(self):
        return getattr(self.inner, "fitted", None)

    @fitted.setter
    def fitted(self, value):
        pass                                   # bundled CSVs are numeric: nothing to restore


def remember_folders(sources, record):
    """Give every dataset source the folders a run's manifest (run.json ``data``) says its files
    were read from, so evaluating it without the DLTRAIN_DATA_DIR it was trained with finds them
    instead of downloading."""
    folders = [str(Path(entry["path"]).parent) for entry in (record or {}).get("data", {}).values()
               if isinstance(entry, dict) and entry.get("path")]
    for source in sources.values():
        if isinstance(source, Dataset):
            source.known_folders = tuple(folders)


def listing():
    """One dict per dataset: name, description, size, classes, splits, whether it is local, and
    how its files are verified."""
    return [{"name": d.name, "description": d.description, "size": d.size,
             "shape": d.shape, "classes": d.classes, "splits": list(d.splits),
             "source": "bundled" if not d.downloaded else "download",
             "cached": cached(d.name), "verification": d.verification} for d in DATASETS.values()]


def environment_note():
    return f"cache: {download.cache_dir()} (set DLTRAIN_DATA_DIR to move it)" \
        if "DLTRAIN_DATA_DIR" not in os.environ else f"cache: {download.cache_dir()} (DLTRAIN_DATA_DIR)"
