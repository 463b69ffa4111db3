"""Commands that look at a config without training it: check, summary, gradcheck, time, and the
registry's catalogue, entries and schema."""
from dataclasses import dataclass

from dltrain import device as devices
from dltrain.allocator import tune as _tune_allocator
from dltrain.experiment import Experiment


def check(config, overrides=()):
    """Validate a config and infer every shape, reading no data and training nothing.

    Returns the model's ``summary.Summary``; raises ConfigError (every problem found) otherwise."""
    from dltrain.config.validate import validate
    from dltrain.feasibility import check_config
    from dltrain.summary import summarize

    checked = validate(config, overrides, files=True)
    check_config(checked)                   # memory this machine lacks, labels vs the last layer
    return summarize(checked)


def summary(target, overrides=(), passes=False):
    """The per-layer ``summary.Summary`` of a config, a run directory or a checkpoint file, as
    the user wrote the model; with ``passes``, also what each graph pass rewrote."""
    from dltrain.config.validate import validate
    from dltrain.summary import config_of, summarize

    return summarize(validate(config_of(target), overrides, files=False), passes=passes)


def catalogue(kind=None):
    """{kind: [Entry]} of the registry: every kind, or the one a word names ('layers', 'layer')."""
    from dltrain.config import catalogue_text

    return {k: catalogue_text.entries(k) for k in catalogue_text.kinds_of(kind)}


def describe(name, kind=None):
    """The ``Entry`` of one registered class (with its whole docstring), by name or alias."""
    from dltrain.config import catalogue_text

    return catalogue_text.find(catalogue_text.kinds_of(kind), name)


def schema():
    """The JSON Schema of a config, generated from the registry."""
    from dltrain.config.schema import config_schema

    return config_schema()



def gradcheck(config, overrides=(), batch_size=4, elements=30):
    """[model_gradcheck.LayerCheck]: each parameter's gradient against central differences (float64)."""
    from dltrain.config.validate import validate
    from dltrain.model_gradcheck import check_model

    return check_model(validate(config, overrides, files=False), batch_size, elements)


@dataclass
class LayerTimes:
    batch_size: int
    iterations: int
    rows: list                                 # [timing.LayerTime], one per node


def time_layers(config, overrides=(), batch_size=None, iterations=10, device=None):
    """Median forward and backward milliseconds per layer on one random batch (reads no data),
    on ``device`` (default: the config's, else cpu)."""
    from dltrain.timing import time_layers as timed

    _tune_allocator()                   # as `fit` does: without it every large array page-faults
    experiment = Experiment(config, overrides)
    device = devices.choose(device, experiment.config.get("device"), experiment.document.where(("device",)))
    model = experiment.build()
    batch_size = batch_size or experiment.training["batch_size"]
    return LayerTimes(batch_size, iterations, timed(model, batch_size, iterations, device=device))
