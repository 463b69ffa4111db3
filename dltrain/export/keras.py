"""Weights of a Keras 3 ``.keras`` file, under dltrain's ``layer/parameter`` names.

A .keras file is a zip of ``config.json`` (the model: each layer's class, name and settings),
``metadata.json`` (the Keras version) and ``model.weights.h5``, where each layer's variables are
``layers/<path>/vars/0, 1, ...`` in the order the layer created them (recurrent layers under
``layers/<path>/cell/vars``). ``<path>`` is not the layer's name but its class in snake case,
numbered by occurrence (``dense``, ``dense_1``), so the names come from walking config.json in
order. Keras's kernels already have dltrain's layouts (both are channels-last, gates in Keras's
order); a GRU's (2, 3U) bias is dltrain's ``bias`` and ``recurrent_bias``. Needs h5py.
"""
import io
import json
import re
import zipfile

from dltrain.errors import CheckpointError, ConfigError

#: dltrain parameter names of a Keras layer's variables, in order (None: the layer's settings decide)
VARIABLES = {
    "Dense": ("kernel", "bias"), "Conv1D": ("kernel", "bias"), "Conv2D": ("kernel", "bias"),
    "Conv2DTranspose": ("kernel", "bias"), "DepthwiseConv2D": ("depthwise_kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"), "Embedding": ("embeddings",),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "LayerNormalization": ("gamma", "beta"),
    "SimpleRNN": ("kernel", "recurrent_kernel", "bias"), "LSTM": ("kernel", "recurrent_kernel", "bias"),
    "GRU": ("kernel", "recurrent_kernel", "bias"),
}
RECURRENT = ("SimpleRNN", "LSTM", "GRU")


def snake_case(name):
    """Keras's object names: Conv2D -> conv2d, SeparableConv2D -> separable_conv2d, SimpleRNN -> simple_rnn."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _names(config, variables):
    """The parameter names of a layer's variables, leaving out what its settings switch off."""
    names = list(variables)
    if config.get("use_bias") is False:
        names.remove("bias")
    if config.get("scale") is False:
        names.remove("gamma")
    if config.get("center") is False:
        names.remove("beta")
    return names


def _layer_arrays(group, class_name, config, prefix=""):
    """{dltrain parameter name: array} of one layer's h5 group."""
    import numpy as np

    if class_name == "Bidirectional":
        inner = config["layer"]
        arrays = {}
        for side in ("forward", "backward"):
            sub = group.get(f"{side}_layer")
            if sub is not None:
                arrays.update(_layer_arrays(sub, inner["class_name"], inner["config"], f"{side}_"))
        return arrays
    if class_name not in VARIABLES:
        return {}
    holder = group["cell"] if class_name in RECURRENT and "cell" in group else group
    stored = holder.get("vars", {})
    values = [np.asarray(stored[str(i)]) for i in range(len(stored))]
    names = _names(config, VARIABLES[class_name])
    if len(values) != len(names):
        raise CheckpointError(f"Keras layer {config.get('name')!r} ({class_name}) holds {len(values)} "
                              f"variables; dltrain expects {len(names)} ({', '.join(names)})")
    arrays = dict(zip(names, values))
    if class_name == "GRU" and arrays["bias"].ndim == 2:             # reset_after: [input, recurrent]
        arrays["bias"], arrays["recurrent_bias"] = arrays["bias"][0], arrays["bias"][1]
    return {f"{prefix}{k}": v for k, v in arrays.items()}


def _layers(config):
    """(class_name, layer config) of every layer of a Sequential or functional model, in order."""
    inner = config.get("config", {})
    found = []
    for spec in inner.get("layers", []):
        if spec.get("class_name") in ("Sequential", "Functional", "Model"):
            found += _layers(spec)                                   # a nested model's layers
        else:
            found.append((spec["class_name"], spec.get("config", {})))
    return found


def load(path):
    """({'layer_name/param': array}, {'keras_version': ...}) of a .keras file."""
    try:
        import h5py
    except ImportError:
        raise ConfigError("reading .keras weights needs h5py", fix="pip install 'dltrain[keras]' (or h5py).") from None
    try:
        archive = zipfile.ZipFile(path)
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in archive.namelist() else {}
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not a .keras file (a zip of config.json and model.weights.h5): {error}") from None
    arrays, counts = {}, {}
    with weights:
        root = weights.get("layers", {})
        for class_name, layer_config in _layers(config):
            base = snake_case(class_name)
            n = counts.get(base, 0)
            counts[base] = n + 1
            key = base if n == 0 else f"{base}_{n}"
            if key not in root:
                continue
            for param, value in _layer_arrays(root[key], class_name, layer_config).items():
                arrays[f"{layer_config['name']}/{param}"] = value
    return arrays, metadata
