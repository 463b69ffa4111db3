"""``model.init_from``: start training from weights trained elsewhere.

    init_from: ../runs/digits-resnet                         # every layer whose name matches
    init_from: {run: ../runs/digits-resnet, layers: [conv*, batch_normalization*]}
    init_from: {file: base.safetensors}                      # or a .keras file

Paths are relative to the config file; ``layers`` are globs over the model's layer names; the
arrays of each chosen layer (parameters and moving statistics) must all be in the source with
the same shapes, else one error lists every mismatch. A resumed run takes its weights from its
checkpoint instead.
"""
from pathlib import Path

from dltrain.errors import ConfigError

KEYS = ("run", "file", "layers")


def spec_of(experiment):
    """(source path, layer globs or None) of the experiment's init_from, or None."""
    return parse((experiment.config.get("model") or {}).get("init_from"), experiment.base, experiment.document.where)


def parse(spec, base, where):
    """(source path, layer globs or None) of an init_from setting, or None; ConfigError located
    at ``where(path)`` when its form is wrong."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return Path(base) / spec, None
    if not isinstance(spec, dict):
        raise ConfigError("init_from must be a path or {run: PATH, layers: [GLOB...]}", where=where(("model", "init_from")))
    for key in spec:
        if key not in KEYS:
            raise ConfigError(f"init_from has no setting {key!r}", where=where(("model", "init_from", key)),
                              expected=", ".join(KEYS))
    sources = [k for k in ("run", "file") if k in spec]
    if len(sources) != 1 or not isinstance(spec[sources[0]], str):
        raise ConfigError("init_from needs one of run: PATH or file: PATH", where=where(("model", "init_from")))
    layers = spec.get("layers")
    if layers is not None and (isinstance(layers, str) or not isinstance(layers, list)
                               or not all(isinstance(p, str) for p in layers)):
        raise ConfigError(f"init_from.layers must be a list of layer-name globs, not {layers!r}",
                          where=where(("model", "init_from", "layers")), fix="e.g. layers: [conv*, dense_1]")
    return Path(base) / spec[sources[0]], layers


def check(model_config, model, base, where):
    """What ``dltrain check`` can tell without the source (which may be trained later): the
    form, and that the globs match layers of ``model`` (shapes inferred), if given."""
    from dltrain.export import weights

    if not isinstance(model_config, dict):
        return                                     # validation reports the model section itself
    found = parse(model_config.get("init_from"), base, where)
    if found is None or model is None or found[1] is None:
        return
    if not weights.select(model, found[1]):
        raise ConfigError(f"init_from.layers {found[1]!r} match no layer of the model",
                          where=where(("model", "init_from", "layers")),
                          expected=", ".join(weights.layer_names(model)) or "(the model has no weights)")


def apply(experiment):
    """Copy the chosen weights into ``experiment.model`` (built); return the keys copied, or None."""
    from dltrain.export import weights

    found = spec_of(experiment)
    if found is None:
        return None
    path, layers = found
    where = experiment.document.where(("model", "init_from"))
    try:
        arrays = weights.read(path)
    except ConfigError as error:
        error.where = error.where or where
        raise
    return weights.assign(experiment.model, arrays, layers, source=str(path), where=where)
