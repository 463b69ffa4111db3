"""An experiment: every piece a config describes, built once and checked, ready to train or score.

``Experiment(config)`` validates the config once (config/validate.py), which constructs every
piece exactly once: the model graph (shapes inferred), loss, optimizer, metrics, callbacks,
preprocessing and data sources. The experiment takes those objects as they are, rebuilding
nothing; ``load_data()`` reads the sources and makes the splits; ``build()`` creates the
parameters, once. fit, evaluate, predict and inspect all start here.
"""
import os
from pathlib import Path

import dltrain.catalogue  # noqa: F401  (builds every kind by name)
from dltrain.backend import dtype_of
from dltrain.data.dataset import Pipeline, Split, split_off
from dltrain.data.prediction_inputs import shape_fix
from dltrain.errors import ConfigError, DataError
from dltrain.random import Streams
from dltrain.registry import registry

SPLITS = ("train", "validation", "test")


class Experiment:
    def __init__(self, document, overrides=(), fold=None):
        """``fold``: (K, i) to train fold i of a ``validation: {kfold: K}`` config (data/kfold.py)."""
        from dltrain.config.validate import validate

        # every spec, shape and cross-check, all errors at once (data files: at load_data)
        checked = validate(document, overrides, files=False)
        self.document = checked.document
        self.config = self.document.data
        self.base = Path(self.document.file).resolve().parent if self.document.file != "<string>" \
            else Path.cwd()
        self.dtype = dtype_of(self.config["precision"])
        self.seed = self.config["seed"]
        self.model = checked.model
        self.loss = checked.loss
        self.optimizer = checked.optimizer
        self.metrics = dict(zip(checked.metric_names, checked.metrics))
        self.callbacks = named(checked.callbacks)
        self.pipeline = Pipeline(list(checked.preprocessing))
        self.sources = {split: checked.sources.get(split, self.config["data"].get(split))
                        for split in SPLITS}
        self.training = self.config["training"]
        self.streams = Streams(self.seed)
        self.class_names = None
        self.fold = fold

    def metric_names(self):
        return list(self.metrics)

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
                        splits["train"], spec, self.fold, rng,
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
        """Create every parameter, once, from the run's init stream."""
        self.model.build(self.streams.get("init"), self.streams)
        return self.model

    def target_fn(self):
        """How raw labels become the targets the loss wants (the loss decides: loss.targets)."""
        units, dtype, loss = self.model.output_shape[-1], self.dtype, self.loss
        return lambda y: loss.targets(y, units, dtype)

    def class_weights(self):
        """The (classes,) loss weight per class from ``training.class_weight``, or None."""
        from dltrain.training.class_weight import table

        return table(self.training.get("class_weight"), self.model.output_shape[-1], self.dtype,
                     self.document.where(("training", "class_weight")))


def named(callbacks):
    """{name: callback}: each named by its type, numbered from the second of a type on
    (early_stopping, early_stopping_2), as layers are; a resume matches state by this name."""
    counts, result = {}, {}
    for callback in callbacks:
        kind = callback.registered_name
        counts[kind] = counts.get(kind, 0) + 1
        result[kind if counts[kind] == 1 else f"{kind}_{counts[kind]}"] = callback
    return result


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
