"""An experiment: every piece a config describes, built and checked, ready to train or score.

``Experiment(document)`` builds the model graph, loss, optimizer, metrics and callbacks (cheap,
no arrays); ``load_data()`` reads the sources and makes the splits; ``build()`` creates the
parameters. fit, evaluate, predict, check and summary all start here.
"""
import os
from pathlib import Path

import numpy as np

from dltrain.backend import dtype_of
from dltrain.data.dataset import Pipeline, Split, split_off
from dltrain.data.prediction_inputs import shape_fix
from dltrain.errors import ConfigError, DataError
from dltrain.model import Model
from dltrain.random import Streams
from dltrain.registry import build, registry
from dltrain.training.trainer import metric_name

SPLITS = ("train", "validation", "test")


class Experiment:
    def __init__(self, document, overrides=()):
        from dltrain.config.validate import validate

        # every spec, shape and cross-check first, all errors at once (data files: at load_data)
        self.document = validate(document, overrides, files=False).document
        self.config = self.document.data
        self.base = Path(self.document.file).resolve().parent if self.document.file != "<string>" \
            else Path.cwd()
        where = self.document.where
        config = self.config
        # validate() has checked every spec, section and key: what follows only builds
        self.dtype = dtype_of(config["precision"])
        self.seed = config["seed"]
        self.model = Model.from_config(config["model"], where, self.dtype)
        self.loss = build("loss", config["loss"], where(("loss",)))
        self.optimizer = build("optimizer", config["optimizer"], where(("optimizer",)))
        self.metric_specs = list(config["metrics"] or [])
        self.callbacks = [build("callback", spec, where(("callbacks", i)))
                          for i, spec in enumerate(config["callbacks"] or [])]
        self.pipeline = Pipeline.from_config(config["data"].get("preprocessing"), where)
        self.sources = self._sources()
        self.training = config["training"]
        self.streams = Streams(self.seed)
        self.class_names = None

    def _sources(self):
        """{split: a built source, a held-out spec ({split: ...} or {kfold: ...}), or None}."""
        data = self.config["data"]
        sources = {}
        for split in SPLITS:
            spec = data.get(split)
            if spec is None or (isinstance(spec, dict) and "type" not in spec
                                and ("split" in spec or "kfold" in spec)):
                sources[split] = spec
            else:
                sources[split] = build("source", spec, self.document.where(("data", split)))
        return sources

    # -- data ----------------------------------------------------------------------------------

    def load_split_source(self, split):
        source = self.sources[split]
        if split != "train" and hasattr(source, "adopt"):     # categories etc. learned on train
            source.adopt(self.sources["train"])
        try:
            return source.load(self.base)
        except (ConfigError, DataError) as error:
            if error.where is None:
                error.where = self.document.where(("data", split))
            raise

    def load_data(self):
        """{'train': Split, 'validation': Split or None, 'test': Split or None}."""
        x, y = self.load_split_source("train")
        if y is None:
            raise DataError("the training data has no labels", where=self.document.where(("data", "train")),
                            fix="name the label column or array in the train source.")
        self.class_names = getattr(self.sources["train"], "class_names", None)
        splits = {"train": Split(x, y, name="train")}
        rng = self.streams.get("split")
        separate = []                 # splits read from their own sources, after the refit below
        for name in ("test", "validation"):
            spec = self.sources[name]
            if spec is None:
                splits[name] = None
            elif isinstance(spec, dict):
                unknown = set(spec) - {"split", "stratify", "kfold"}
                if unknown:
                    raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in data.{name}",
                                      where=self.document.where(("data", name)),
                                      expected="split, stratify, or a source with type")
                if "kfold" in spec:                   # the fold api.fit is training, if any
                    from dltrain.data.kfold import fold_split

                    splits["train"], splits[name] = fold_split(
                        splits["train"], spec, getattr(self, "fold", None), rng,
                        self.document.where(("data", name, "kfold")))
                    continue
                splits["train"], splits[name] = split_off(
                    splits["train"], spec, name, rng, self.document.where(("data", name, "split")))
            else:
                separate.append(name)
        self._fit_on_training_rows(splits)
        for name in separate:
            vx, vy = self.load_split_source(name)
            splits[name] = Split(vx, vy, name=name)
        self.check_data(splits)
        return splits

    def _fit_on_training_rows(self, splits):
        """A source that learns from its file (CSV categories, fill values) learns again from the
        training rows only, once held-out fractions are taken out; the splits see the new x."""
        refit = getattr(self.sources["train"], "fit_rows", None)
        try:
            x = refit(splits["train"].indices) if refit else None
        except DataError as error:
            error.where = error.where or self.document.where(("data", "train"))
            raise
        if x is None:
            return
        old = splits["train"].x
        for name, split in splits.items():
            if split is not None and split.x is old:
                splits[name] = Split(x, split.y, split.indices, split.name)

    def check_data(self, splits):
        """Inputs and labels against the model, before the first epoch."""
        expected = tuple(self.model.input_shape)
        for name, split in splits.items():
            if split is None:
                continue
            shape = tuple(split.x.shape[1:])
            if shape != expected and not (self.pipeline.steps and _reshapes(self.pipeline)):
                raise DataError(
                    f"the {name} inputs have shape {shape} per sample, the model expects {expected}",
                    where=self.document.where(("data", name if self.sources.get(name) is not None
                                               and not isinstance(self.sources.get(name), dict) else "train")),
                    fix=shape_fix(shape, expected))
        last = self.pipeline.steps[-1] if self.pipeline.steps else None
        produced = tuple(last.output_shape()) if hasattr(last, "output_shape") else expected
        if produced != expected:                       # e.g. text_vectorization's sequence length
            raise ConfigError(f"the preprocessing produces samples of shape {produced}, the model "
                              f"expects {expected}", where=self.document.where(("model", "input_shape")),
                              fix=f"set model.input_shape to {list(produced)}.")

    def fit_pipeline(self, train):
        self.pipeline.fit_split(train)      # in chunks: a memory-mapped split is never read whole

    # -- model ---------------------------------------------------------------------------------

    def build(self):
        self.model.build(self.streams.get("init"), self.streams)
        return self.model

    def target_fn(self):
        """How raw labels become the targets the loss wants (integer labels one-hot for cce)."""
        from dltrain.losses import CategoricalCrossentropy

        units = self.model.output_shape[-1]
        dtype = self.dtype
        if isinstance(self.loss, CategoricalCrossentropy):
            def one_hot(y):
                y = np.asarray(y)
                if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and units > 1):
                    return np.eye(units, dtype=dtype)[y.reshape(-1).astype(np.intp)]
                return y.astype(dtype, copy=False)
            return one_hot
        if self.loss.target == "sparse":
            return lambda y: np.asarray(y)
        return lambda y: np.asarray(y).astype(dtype, copy=False)

    def metric_names(self):
        return [metric_name(spec) for spec in self.metric_specs]

    def class_weights(self):
        """The (classes,) loss weight per class from ``training.class_weight``, or None."""
        from dltrain.training.class_weight import table

        return table(self.training.get("class_weight"), self.model.output_shape[-1], self.dtype,
                     self.document.where(("training", "class_weight")))


def _reshapes(pipeline):
    return any(getattr(step, "changes_shape", False) for step in pipeline.steps)


def relative_paths(config, config_base, run_dir):
    """A copy of the config with every data path made relative to the run directory."""
    import copy

    config = copy.deepcopy(config)
    data = config.get("data") or {}
    for split in SPLITS:
        spec = data.get(split)
        if not isinstance(spec, dict) or "type" not in spec:
            continue
        cls = registry("source").get(spec["type"])
        for key in getattr(cls, "path_arguments", ("path",)):
            if spec.get(key):
                full = Path(config_base) / Path(spec[key]).expanduser()
                spec[key] = os.path.relpath(full.resolve(), Path(run_dir).resolve())
    return config
