"""Regenerate the Keras reference fixtures: every case of cases.py through Keras 3 itself.

Run it in an environment of its own (Keras is no dependency of dltrain, and the default suite
never imports it):

    python3 -m venv /tmp/kerasref
    /tmp/kerasref/bin/pip install keras==3.15.1 jax==0.10.2 -e .      # from the repository root
    /tmp/kerasref/bin/python tests/keras_reference/generate.py

It writes tests/keras_reference/fixtures/KIND/NAME.npz, one file per registered name, holding
for each case its description (``I/case``, JSON) and its arrays (``I/x``, ``I/weights/KEY``,
``I/y``, ``I/grad_x``, ``I/grads/KEY``, ...). The same inputs give the same bytes: inputs are
drawn from a seed per case id, and the zip entries carry a fixed date.

Everything runs in float64 on the CPU: ``jax_enable_x64``, ``keras.config.set_floatx("float64")``
and one patch: Keras's type promotion maps float64 to float32 on JAX and torch
(``keras.src.backend.common.dtypes.BIT64_TO_BIT32_DTYPE``), so ``tanh`` of a float64 tensor is
float32 and the recurrent layers' scan fails; the script maps float64 to itself. A case whose
Keras op still fell back to float32 would fail the parity test at its 1e-6 tolerance rather than
pass silently.

dltrain's layout is the source: the dltrain layer is built, its parameters replaced by random
values (biases included), and copied into the Keras layer by variable name; Keras's gradients
come back under dltrain's keys. Where the two layouts differ (gru's two biases, which Keras
stacks into one (2, 3U) variable), the mapping says so below.
"""
import hashlib
import inspect
import io
import json
import os
import sys
import time
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.set_floatx("float64")
# Keras's type promotion turns float64 into float32 on JAX and torch (BIT64_TO_BIT32_DTYPE, "to
# be aligned with JAX's default"): tanh of a float64 tensor comes back float32, and the recurrent
# layers' scan then fails on its carry's dtype. Keep float64 float64.
from keras.src.backend.common import dtypes as _keras_dtypes  # noqa: E402

_keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))          # the repository, for dltrain

from cases import all_cases  # noqa: E402

import dltrain.catalogue  # noqa: E402,F401  (every registry filled)
from dltrain.registry import build as dl_build  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")

KERAS_LAYERS = {
    "activation": "Activation", "add": "Add", "average_pooling1d": "AveragePooling1D",
    "average_pooling2d": "AveragePooling2D", "batch_normalization": "BatchNormalization",
    "bidirectional": "Bidirectional", "concatenate": "Concatenate", "conv1d": "Conv1D",
    "conv2d": "Conv2D", "conv2d_transpose": "Conv2DTranspose", "dense": "Dense",
    "depthwise_conv2d": "DepthwiseConv2D", "dropout": "Dropout", "embedding": "Embedding",
    "flatten": "Flatten", "global_average_pooling1d": "GlobalAveragePooling1D",
    "global_average_pooling2d": "GlobalAveragePooling2D", "global_max_pooling1d": "GlobalMaxPooling1D",
    "global_max_pooling2d": "GlobalMaxPooling2D", "gru": "GRU", "layer_normalization": "LayerNormalization",
    "lstm": "LSTM", "masking": "Masking", "max_pooling1d": "MaxPooling1D", "max_pooling2d": "MaxPooling2D",
    "multiply": "Multiply", "rescaling": "Rescaling", "reshape": "Reshape",
    "separable_conv2d": "SeparableConv2D", "simple_rnn": "SimpleRNN", "spatial_dropout2d": "SpatialDropout2D",
    "time_distributed": "TimeDistributed", "up_sampling2d": "UpSampling2D", "zero_padding2d": "ZeroPadding2D",
}
KERAS_OPTIMIZERS = {"sgd": "SGD", "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW",
                    "adagrad": "Adagrad", "nadam": "Nadam"}
KERAS_SCHEDULES = {"exponential_decay": "ExponentialDecay", "piecewise_constant": "PiecewiseConstantDecay",
                   "cosine_decay": "CosineDecay", "polynomial_decay": "PolynomialDecay"}
KERAS_LOSSES = {"mean_squared_error": "MeanSquaredError", "mean_absolute_error": "MeanAbsoluteError",
                "huber": "Huber", "binary_crossentropy": "BinaryCrossentropy",
                "categorical_crossentropy": "CategoricalCrossentropy",
                "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"}


def rng_for(case):
    seed = int.from_bytes(hashlib.sha256(case["id"].encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def tupled(value):
    return tuple(tupled(v) for v in value) if isinstance(value, list) else value


# -- layers -----------------------------------------------------------------------------------

def keras_activation(spec):
    spec = {"type": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("type")
    function = getattr(keras.activations, {"swish": "silu"}.get(name, name))
    return lambda x: function(x, **spec)


def keras_layer(spec):
    spec = dict(spec)
    name = spec.pop("type")
    cls = getattr(keras.layers, KERAS_LAYERS[name])
    if name == "activation":
        return cls(keras_activation(spec["activation"]))
    if name in ("bidirectional", "time_distributed"):
        spec["layer"] = keras_layer(spec["layer"])
    return cls(**{k: tupled(v) for k, v in spec.items()})


#: Keras variable names that dltrain spells otherwise, per layer
RENAMED = {"depthwise_conv2d": {"kernel": "depthwise_kernel"}}


def dl_key(variable, layer_type):
    parts = variable.path.split("/")
    prefix = ""
    if layer_type == "bidirectional":
        prefix = "forward_" if any(p.startswith("forward") for p in parts) else "backward_"
    return prefix + RENAMED.get(layer_type, {}).get(parts[-1], parts[-1])


def to_keras(key, weights, variable):
    """The Keras value of a variable from dltrain's weights (gru: bias and recurrent_bias stacked)."""
    recurrent_bias = key.replace("bias", "recurrent_bias")
    if key.endswith("bias") and recurrent_bias in weights and tuple(variable.shape)[0] == 2:
        return np.stack([weights[key], weights[recurrent_bias]])
    return weights[key]


def from_keras(key, weights, grad, out):
    recurrent_bias = key.replace("bias", "recurrent_bias")
    if key.endswith("bias") and recurrent_bias in weights and grad.ndim == 2:
        out[key], out[recurrent_bias] = grad[0], grad[1]
    else:
        out[key] = grad


def layer_inputs(case, rng):
    shapes = case["shape"] if isinstance(case["shape"][0], list) else [case["shape"]]
    xs = []
    for shape in shapes:
        if "ids" in case:
            x = rng.integers(1, case["ids"], shape)
        else:
            x = rng.standard_normal(shape)
        for row, step in case.get("zero_rows", []):
            x[row, step] = case["spec"].get("mask_value", 0.0)
        xs.append(x)
    return xs


def run_layer(case):
    rng = rng_for(case)
    spec = case["spec"]
    multi = isinstance(case["shape"][0], list)
    dl = dl_build("layer", spec)
    dl.name, dl.dtype = case["id"], np.float64
    dl.build([s[1:] for s in case["shape"]] if multi else case["shape"][1:], np.random.default_rng(0))
    weights = {k: rng.standard_normal(v.shape) * 0.5 for k, v in {**dl.params, **dl.state}.items()}
    if "moving_variance" in weights:
        weights["moving_variance"] = rng.uniform(0.5, 1.5, weights["moving_variance"].shape)
    xs = layer_inputs(case, rng)
    mask = None if case.get("mask") is None else np.array(case["mask"], bool)

    layer = keras_layer(dl.config())                       # every argument, defaults included
    call_x = xs if multi else xs[0]
    layer(call_x)                                                      # builds it
    layer_type = spec["type"]
    for variable in layer.weights:
        key = dl_key(variable, layer_type)
        variable.assign(to_keras(key, weights, variable))
    used = {dl_key(v, layer_type) for v in layer.weights}
    used |= {k.replace("bias", "recurrent_bias") for k in used}
    assert set(weights) <= used, f"{case['id']}: Keras has no variable for {set(weights) - used}"

    training = case.get("training", False)
    accepts = inspect.signature(layer.call).parameters
    kwargs = {"training": training} if "training" in accepts else {}
    if mask is not None:
        assert "mask" in accepts, f"{case['id']}: Keras's {type(layer).__name__} takes no mask"
        kwargs["mask"] = jnp.asarray(mask)
    trainable = [v.value for v in layer.trainable_variables]
    frozen = [v.value for v in layer.non_trainable_variables]
    y0 = np.asarray(layer(call_x, **kwargs))
    grad_y = rng.standard_normal(y0.shape)
    integer = "ids" in case

    def objective(trainable, xs):
        inputs = list(xs) if multi else xs[0]
        y, new_frozen = layer.stateless_call(trainable, frozen, inputs, **kwargs)
        return jnp.sum(y * grad_y), (y, new_frozen)

    argnums = (0,) if integer else (0, 1)
    (_, (y, new_frozen)), grads = jax.value_and_grad(objective, argnums=argnums, has_aux=True)(
        trainable, [jnp.asarray(x) for x in xs])
    out = {"y": np.asarray(y), "grad_y": grad_y}
    for i, x in enumerate(xs):
        out[f"x/{i}"] = x
    if mask is not None:
        out["mask"] = mask
    for key, value in weights.items():
        out[f"weights/{key}"] = value
    dl_grads = {}
    for variable, grad in zip(layer.trainable_variables, grads[0]):
        from_keras(dl_key(variable, layer_type), weights, np.asarray(grad), dl_grads)
    for key, value in dl_grads.items():
        out[f"grads/{key}"] = value
    if not integer:
        for i, g in enumerate(grads[1]):
            out[f"grad_x/{i}"] = np.asarray(g)
    if training:                  # dltrain's statistics (not Keras's dropout seed, which is random)
        for variable, value in zip(layer.non_trainable_variables, new_frozen):
            if dl_key(variable, layer_type) in weights:
                out[f"state/{dl_key(variable, layer_type)}"] = np.asarray(value)
    mask_in = None if mask is None else jnp.asarray(mask)
    mask_out = layer.compute_mask(call_x, mask_in)
    if mask_out is not None:
        out["mask_out"] = np.asarray(mask_out)
    return out


# -- losses -----------------------------------------------------------------------------------

def loss_data(case, rng):
    shape = case["shape"]
    classes = shape[-1]
    logits = case["spec"].get("from_logits", False)
    kind = case["target"]
    if kind == "real":
        pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    elif kind == "binary":
        target = rng.integers(0, 2, shape).astype(np.float64)
        pred = rng.standard_normal(shape) * 2 if logits else rng.uniform(0.05, 0.95, shape)
        if case.get("clip"):                     # beyond the clip at eps and 1 - eps
            pred.flat[:4] = [1e-9, 1 - 1e-9, 0.0, 1.0]
    else:
        labels = rng.integers(0, classes, shape[:-1])
        if kind == "soft":
            target = rng.dirichlet(np.ones(classes), shape[:-1])
        elif kind == "onehot":
            target = np.eye(classes)[labels]
        else:
            target = labels
        if logits:
            pred = rng.standard_normal(shape) * 2
        elif case.get("unnormalised"):
            pred = rng.uniform(0.05, 1.0, shape)
        else:
            e = np.exp(rng.standard_normal(shape))
            pred = e / e.sum(axis=-1, keepdims=True)
        if case.get("clip"):                     # a certain row and a near-zero probability
            pred[0] = np.eye(classes)[0]
            pred[1, 0] = 1e-9
    weight = rng.uniform(0.5, 2.0, shape[0]) if case.get("sample_weight") else None
    return pred, target, weight


def run_loss(case):
    rng = rng_for(case)
    pred, target, weight = loss_data(case, rng)
    spec = dict(case["spec"])
    name = spec.pop("type")
    keras_target = target
    if name == "sparse_categorical_crossentropy" and spec.get("label_smoothing"):
        name, keras_target = "categorical_crossentropy", np.eye(pred.shape[-1])[target]
    elif name == "sparse_categorical_crossentropy":
        spec.pop("label_smoothing", None)
    loss = getattr(keras.losses, KERAS_LOSSES[name])(**spec)

    def value(p):
        return loss(jnp.asarray(keras_target), p, sample_weight=None if weight is None else jnp.asarray(weight))

    v, g = jax.value_and_grad(value)(jnp.asarray(pred))
    out = {"pred": pred, "target": target, "value": np.asarray(v), "grad": np.asarray(g)}
    if weight is not None:
        out["sample_weight"] = weight
    return out


# -- optimizers, schedules --------------------------------------------------------------------

def keras_schedule(spec):
    spec = dict(spec)
    return getattr(keras.optimizers.schedules, KERAS_SCHEDULES[spec.pop("type")])(**spec)


def run_optimizer(case):
    rng = rng_for(case)
    spec = dict(case["spec"])
    name = spec.pop("type")
    if isinstance(spec.get("learning_rate"), dict):
        spec["learning_rate"] = keras_schedule(spec["learning_rate"])
    optimizer = getattr(keras.optimizers, KERAS_OPTIMIZERS[name])(**spec)
    params = [rng.standard_normal(s) for s in case["shapes"]]
    grads = [[rng.standard_normal(s) for s in case["shapes"]] for _ in range(case["steps"])]
    variables = [keras.Variable(p) for p in params]
    history = [[] for _ in params]
    for step in grads:
        optimizer.apply([jnp.asarray(g) for g in step], variables)
        for i, v in enumerate(variables):
            history[i].append(np.asarray(v.value))
    out = {}
    for i, p in enumerate(params):
        out[f"params/{i}"] = p
        out[f"grads/{i}"] = np.stack([step[i] for step in grads])
        out[f"history/{i}"] = np.stack(history[i])
    return out


def run_schedule(case):
    schedule = keras_schedule(case["spec"])
    return {"rates": np.array([float(schedule(step)) for step in range(case["steps"])])}


# -- metrics ----------------------------------------------------------------------------------

def metric_data(case, rng):
    shape = case["shape"]
    kind = case["target"]
    if kind == "real":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    pred = rng.uniform(0, 1, shape)
    if kind == "binary":
        return pred, rng.integers(0, 2, shape).astype(np.float64)
    labels = rng.integers(0, shape[-1], shape[:-1])
    return pred, (np.eye(shape[-1])[labels] if kind == "onehot" else labels)


def run_metric(case):
    rng = rng_for(case)
    pred, target = metric_data(case, rng)
    cls, arguments = case["keras"]
    metric = getattr(keras.metrics, cls)(**arguments)
    one_hot = case["target"] == "sparse" and cls not in ("SparseCategoricalAccuracy",
                                                         "SparseTopKCategoricalAccuracy")
    keras_target = np.eye(pred.shape[-1])[target] if one_hot else target
    for chunk in np.array_split(np.arange(len(pred)), case["batches"]):
        metric.update_state(jnp.asarray(keras_target[chunk]), jnp.asarray(pred[chunk]))
    return {"pred": pred, "target": target, "result": np.asarray(metric.result())}


RUN = {"layer": run_layer, "loss": run_loss, "optimizer": run_optimizer, "schedule": run_schedule,
       "metric": run_metric}


def save(path, arrays):
    """An .npz that np.load reads, with sorted entries and a fixed date: the same arrays give
    the same bytes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main(only=None):
    """Write every fixture; with ``only`` (a substring of case ids), just run those cases."""
    start = time.perf_counter()
    files = {}
    failed = []
    for case in all_cases():
        if only is not None and only not in case["id"]:
            continue
        try:
            arrays = RUN[case["kind"]](case)
        except Exception as error:                  # report them all, write nothing
            failed.append(f"{case['id']}: {type(error).__name__}: {str(error)[:300]}")
            continue
        entries = files.setdefault((case["kind"], case["name"]), {})
        index = case["id"].rsplit("-", 1)[1]
        entries[f"{index}/case"] = np.array(json.dumps(case, sort_keys=True))
        for key, value in arrays.items():
            entries[f"{index}/{key}"] = value
    if failed:
        sys.exit("Keras failed on:\n" + "\n".join(failed))
    if only is not None:
        print(f"ran {len(files)} names' cases; nothing written (only {only!r})")
        return
    for (kind, name), entries in sorted(files.items()):
        save(os.path.join(FIXTURES, kind, f"{name}.npz"), entries)
    total = sum(os.path.getsize(os.path.join(FIXTURES, k, f"{n}.npz")) for k, n in files)
    print(f"{len(files)} files, {len(all_cases())} cases, {total / 1e6:.2f} MB, "
          f"{time.perf_counter() - start:.0f} s (keras {keras.__version__}, jax {jax.__version__})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
