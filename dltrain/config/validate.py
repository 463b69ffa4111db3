"""The whole config checked before any data is read, every error found reported at once.

``validate(config, overrides)`` loads, composes and resolves the config, then checks each section
spec by spec (a bad layer does not hide a bad callback), infers every shape through the model
graph, and checks the pieces against each other: the loss against the model's output, every
callback's ``monitor`` against the names the run will log. It returns a ``Checked`` with the
resolved document and the built pieces, or raises ConfigErrors listing every problem.

This is the one place a config's pieces are constructed (each once; Experiment reuses them).
One concept, the validator, a little over 300 lines, kept whole: every section's method records
into the one error list through the same ``spec``/``fail`` helpers, and the last checks (the loss
against the model's output, each callback's monitor against the metrics) read what the other
sections built, so split by section each module would need the whole validator's state.
"""
from pathlib import Path

import numpy as np

from dltrain import check
from dltrain.config.resolve import TRAINING_DEFAULTS, resolve
from dltrain.config.signature import check_spec, construct
from dltrain.errors import ConfigError, ShapeError, join_errors
from dltrain.metrics import metric_name
from dltrain.registry import suggest

SPLITS = ("train", "validation", "test")
DATA_KEYS = (*SPLITS, "preprocessing")
#: training settings and their checks (None: checked where it is used); a key with a default in
#: TRAINING_DEFAULTS is also accepted. A new training setting is added here.
TRAINING_CHECKS = {"epochs": check.positive_int, "batch_size": check.positive_int,
                   "shuffle": check.boolean, "class_weight": None,
                   "divergence_factor": lambda key, value: value is None or check.positive(key, value)}
#: keys of a held-out split spec (`validation: {split: 0.2}`); kfold is data/kfold.py's
HELD_OUT_KEYS = ("split", "stratify", "kfold")


class Checked:
    """The resolved document and what was built from it (None where a section had errors):
    every piece constructed once; ``Experiment`` (experiment.py) takes them as they are."""

    document = model = loss = optimizer = None
    metrics = callbacks = preprocessing = ()
    sources = {}

    @property
    def metric_names(self):
        """The name each metric logs under, in the config's order."""
        return [metric_name(spec) for spec in self.document.data.get("metrics") or []]


def validate(config, overrides=(), files=True):
    """A Checked config; ConfigErrors with every problem. ``files``: check data files exist."""
    errors = []
    checked = Checked()
    checked.document = document = resolve(config, overrides, errors)
    _Validator(document, checked, errors, files).run()
    join_errors(errors)
    return checked


class _Validator:
    def __init__(self, document, checked, errors, files):
        self.document, self.checked, self.errors, self.files = document, checked, errors, files
        self.where = document.where
        self.data = document.data

    def run(self):
        self.scalars()
        self.checked.model = self.model()
        self.init_from()                                  # dltrain/export/init_from.py
        self.checked.loss = self.one("loss", ("loss",))
        self.checked.optimizer = self.one("optimizer", ("optimizer",))
        self.checked.metrics = self.many("metric", "metrics", ignore=("name",))
        self.checked.callbacks = self.many("callback", "callbacks")
        self.checked.sources, self.checked.preprocessing = self.data_section()
        self.training()
        if (self.checked.model is not None and getattr(self.checked.model, "output_shape", None) is not None
                and self.checked.loss is not None):
            self.loss_against_output()
        self.monitors()

    def init_from(self):
        from dltrain.export import init_from

        try:
            init_from.check(self.data.get("model"), self.checked.model, Path(self.document.file).parent, self.where)
        except ConfigError as error:
            self.errors.append(error)

    def fail(self, message, path, **details):
        self.errors.append(ConfigError(message, where=self.where(path), **details))

    # -- sections ------------------------------------------------------------------------------

    def scalars(self):
        if self.data.get("precision") not in ("float32", "float64"):
            self.fail(f"precision {self.data.get('precision')!r} is not supported", ("precision",),
                      expected="float32 or float64", fix=suggest(self.data.get("precision"),
                                                                 ["float32", "float64"]))
        if self.data.get("device") not in (None, "cpu", "cuda", "auto"):
            self.fail(f"device {self.data.get('device')!r} is not one of cpu, cuda, auto", ("device",),
                      expected="cpu, cuda or auto", fix=suggest(str(self.data.get("device")), ["cpu", "cuda", "auto"]))
        seed = self.data.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            self.fail(f"seed {seed!r} is not a non-negative integer", ("seed",), expected="e.g. 7")
        if not isinstance(self.data.get("name"), (str, int)):
            self.fail(f"name {self.data.get('name')!r} is not a string", ("name",),
                      expected="a run name, e.g. digits-mlp")

    def one(self, kind, path, ignore=()):
        """The instance a spec describes, or None after recording its errors."""
        spec = self.data.get(path[0]) if len(path) == 1 else None
        if spec is None and len(path) == 1:
            return None      # a missing required section is reported by resolve
        return self.spec(kind, spec, path, ignore)

    def spec(self, kind, spec, path, ignore=()):
        cls, arguments, errors = check_spec(kind, spec, path, self.where, ignore)
        if errors:
            self.errors.extend(errors)
            return None
        instance, error = construct(cls, arguments, kind, path, self.where)
        if error is not None:
            self.errors.append(error)
        return instance

    def many(self, kind, section, ignore=()):
        specs = self.data.get(section) or []
        if not isinstance(specs, list):
            self.fail(f"{section} must be a list", (section,), expected=f"e.g. `{section}: [...]`")
            return []
        return [self.spec(kind, spec, (section, i), ignore) for i, spec in enumerate(specs)]

    def training(self):
        training = self.data.get("training") or {}
        known = {**{k: None for k in TRAINING_DEFAULTS}, **TRAINING_CHECKS}
        for key, value in training.items():
            if key not in known:
                self.fail(f"unknown training setting {key!r}", ("training", key),
                          expected=", ".join(known), fix=suggest(key, list(known)))
            elif known[key] is not None:
                try:
                    known[key](key, value)
                except ConfigError as error:
                    error.where = self.where(("training", key))
                    self.errors.append(error)

    def data_section(self):
        data = self.data.get("data")
        if data is None:
            return {}, []
        if not isinstance(data, dict) or "train" not in data:
            self.fail("data needs a train source", ("data",),
                      fix="add `train: {type: npz, path: ...}` under data.")
            if not isinstance(data, dict):
                return {}, []
        for key in data:
            if key not in DATA_KEYS:
                self.fail(f"unknown data setting {key!r}", ("data", key), expected=", ".join(DATA_KEYS),
                          fix=suggest(key, list(DATA_KEYS)))
        sources = {}
        for split in SPLITS:
            spec = data.get(split)
            if spec is None:
                continue
            if isinstance(spec, dict) and "type" not in spec and split != "train":
                self.held_out(spec, split)
                continue
            sources[split] = source = self.spec("source", spec, ("data", split))
            if source is not None and self.files:
                self.data_files(source, ("data", split))
        steps = data.get("preprocessing")
        if steps is None:
            return sources, []
        if not isinstance(steps, list):
            self.fail("data.preprocessing must be a list of steps", ("data", "preprocessing"))
            return sources, []
        return sources, [self.spec("preprocessing", s, ("data", "preprocessing", i))
                         for i, s in enumerate(steps)]

    def held_out(self, spec, split):
        for key in spec:
            if key not in HELD_OUT_KEYS:
                self.fail(f"unknown key {key!r} in data.{split}", ("data", split, key),
                          expected=", ".join(HELD_OUT_KEYS) + ", or a source with type",
                          fix=suggest(key, list(HELD_OUT_KEYS)))
        fraction = spec.get("split", 0.5)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            self.fail(f"split={fraction!r} is out of range", ("data", split, "split"),
                      expected="a fraction in (0, 1), e.g. 0.2")
        if not isinstance(spec.get("stratify", False), bool):
            self.fail(f"stratify={spec['stratify']!r} is not true or false", ("data", split, "stratify"))

    def data_files(self, source, path):
        folder = Path(self.document.file).parent
        for key in getattr(type(source), "path_arguments", ("path",)):
            value = getattr(source, key, None)
            if not isinstance(value, (str, Path)):
                continue
            full = Path(value).expanduser()
            full = full if full.is_absolute() else folder / full
            if not full.exists():
                self.fail(f"data file {str(full)!r} does not exist", path + (key,),
                          fix=f"check `{key}`; it is relative to the config file's folder.")

    # -- the model -----------------------------------------------------------------------------

    def model(self):
        """The model graph, each layer constructed once, its shapes inferred (allocating no
        parameters where the model can infer shapes alone); None after recording its errors."""
        from dltrain.model import Model

        config = self.data.get("model")
        if config is None:
            return None
        specs = config.get("layers") if isinstance(config, dict) else None
        failed = False
        if isinstance(config, dict) and "input_shape" in config:
            try:
                check.shape("input_shape", config["input_shape"])
            except ConfigError as error:
                error.where = self.where(("model", "input_shape"))
                self.errors.append(error)
                failed = True
        layers = self.layers(specs) if isinstance(specs, list) else None
        if layers is not None and None in layers:
            self.node_errors(specs, layers)
            return None
        if failed:
            return None
        dtype = np.float64 if self.data.get("precision") == "float64" else np.float32
        try:
            model = Model.from_config(config, self.where, dtype, layers=layers)
        except ConfigError as error:
            if not self.node_errors(specs, layers):     # every layer's node keys, or the graph's
                self.errors.append(error)
            return None
        try:
            model.infer_shapes()            # shapes only: no parameter arrays (issue 12)
        except ShapeError as error:
            self.errors.append(error)
        except ConfigError as error:
            self.errors.append(error)
        except TypeError:                   # a layer given a null (unknown) dimension
            if None not in tuple(model.input_shape):
                raise
            self.fail(f"model.input_shape {list(model.input_shape)} has an unknown (null) dimension, "
                      "which these layers cannot take", ("model", "input_shape"),
                      fix="give every dimension a size.")
        return model

    def layers(self, specs):
        """The layer of each spec, constructed once (None where it has errors, recorded)."""
        from dltrain.model import NODE_KEYS

        layers = []
        for i, spec in enumerate(specs):
            path = ("model", "layers", i)
            is_activation = isinstance(spec, dict) and spec.get("type") == "activation"
            ignore = tuple(k for k in NODE_KEYS if not (is_activation and k == "activation"))
            layer = self.spec("layer", spec, path, ignore)
            shorthand = spec.get("activation") if isinstance(spec, dict) and not is_activation else None
            if shorthand is not None and self.spec("activation", shorthand, path + ("activation",)) is None:
                layer = None
            layers.append(layer)
        return layers

    def node_errors(self, specs, layers):
        """Record the node-key errors (name, inputs, activation shorthand) of every constructed
        layer; whether there were any. Runs only when the model cannot be built anyway."""
        from dltrain.model import _nodes_of

        found = False
        counts, aliases = {}, {}
        for i, (spec, layer) in enumerate(zip(specs or [], layers or [])):
            if layer is None:
                continue
            try:
                _nodes_of(spec, ("model", "layers", i), self.where, counts, "input", aliases)
            except ConfigError as error:
                self.errors.append(error)
                found = True
        return found

    def loss_against_output(self):
        from dltrain.model import Model  # noqa: F401  (model is built: output_shape is known)

        model, loss = self.checked.model, self.checked.loss
        units = model.output_shape[-1] if model.output_shape else 1
        final = model.final_activation
        name = loss.registered_name
        if final == "softmax" and units == 1:
            self.fail("the model ends in softmax over 1 unit, which always outputs 1.0", ("model", "layers"),
                      fix="use sigmoid for one yes/no output, or give the last layer one unit per class.")
        elif loss.fuses == "softmax" and units == 1:
            self.fail(f"loss {name!r} needs one output unit per class, but the model ends in 1 unit",
                      ("loss",), expected="a last layer with as many units as classes, with softmax",
                      fix="give the last dense layer as many units as there are classes, or use "
                          "binary_crossentropy with a sigmoid for a yes/no label.")
        elif (loss.fuses == "sigmoid" and units > 1 and final != "sigmoid"
              and not getattr(loss, "from_logits", False)):
            self.fail(f"loss {name!r} on {units} output units that end in "
                      f"{final or 'no activation'}", ("loss",),
                      expected="one sigmoid unit per independent yes/no label",
                      fix="for one class out of several use sparse_categorical_crossentropy with "
                          "softmax; for multi-label outputs end the model in sigmoid.")

    def monitors(self):
        metrics = self.data.get("metrics") if isinstance(self.data.get("metrics"), list) else []
        names = ["loss"] + [metric_name(s) for s, built in zip(metrics, self.checked.metrics)
                            if built is not None]
        data = self.data.get("data") if isinstance(self.data.get("data"), dict) else {}
        validation = data.get("validation") is not None
        produced = names + [f"val_{n}" for n in names]
        specs = self.data.get("callbacks") if isinstance(self.data.get("callbacks"), list) else []
        for i, (spec, callback) in enumerate(zip(specs, self.checked.callbacks)):
            if callback is not None:
                watched = callback.monitored() if hasattr(callback, "monitored") else ()
            else:       # not built (another error): still check what it names
                watched = [spec["monitor"]] if isinstance(spec, dict) and isinstance(spec.get("monitor"), str) else []
            for monitored in watched:
                path = ("callbacks", i, "monitor")
                if monitored.startswith("val_") and monitored in produced and not validation:
                    self.fail(f"callback {callback.registered_name!r} monitors {monitored!r}, but "
                              "there is no validation data", path,
                              expected="training names: " + ", ".join(names),
                              fix=f"add `validation: {{split: 0.2}}` under data, or monitor "
                                  f"{monitored.removeprefix('val_')!r}.")
                elif monitored not in produced and monitored not in ("lr",):
                    available = produced if validation else names
                    self.fail(f"callback {callback.registered_name!r} monitors {monitored!r}, "
                              "which no metric produces", path, expected=", ".join(available),
                              fix=suggest(monitored, available, "add the metric under `metrics:`."))
