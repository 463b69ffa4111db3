"""A trained run as an ONNX model: preprocessing, the layer graph, and the output activation.

The exported model takes what ``dltrain predict`` reads from a file (raw features, images,
series windows, texts) and gives what it reports (probabilities for a classifier, also when the
loss fused the final activation or read logits). A text model's input is a (batch,) string
tensor, text_vectorization written as string operators (onnx_text.py); where that step cannot
be written so (``split: character``), the model takes the step's output (token ids or counts)
and says so in its metadata ("input"), with the vocabulary.
"""
import json

import numpy as np

from dltrain.errors import ConfigError
from dltrain.export import onnx_layers, onnx_text
from dltrain.export.onnx_graph import OPSET, Graph

INPUT, OUTPUT = "input", "output"
RECURRENT = onnx_layers.RECURRENT
convert_layer = onnx_layers.convert_layer


# -- preprocessing folded in front -----------------------------------------------------------

def _rescale(g, step, x, hint):
    y = g.mul(x, step.scale, hint)
    return g.add(y, step.offset, hint) if step.offset else y


def _standardize(g, step, x, hint):
    y = g.op("Sub", [x, g.const(step.mean, f"{hint}/mean")], hint)
    return g.op("Div", [y, g.const(step.std, f"{hint}/std")], hint)


def _min_max(g, step, x, hint):
    low, high = step.feature_range
    span = np.where(step.data_max > step.data_min, step.data_max - step.data_min, 1.0)
    scale = ((high - low) / span).astype(np.float32)
    y = g.op("Sub", [x, g.const(step.data_min, f"{hint}/data_min")], hint)
    return g.add(g.mul(y, scale, hint), np.float32(low), hint)


def _clip(g, step, x, hint):
    low = g.const(np.float32(step.min), f"{hint}/min") if step.min is not None else ""
    high = g.const(np.float32(step.max), f"{hint}/max") if step.max is not None else ""
    return g.op("Clip", [x, low, high], hint)


def _log(g, step, x, hint):
    return g.op("Log", [g.add(x, np.float32(step.offset), hint)], hint)


STEPS = {"rescale": _rescale, "standardize": _standardize, "min_max": _min_max, "clip": _clip, "log": _log}
#: steps that turn texts into numbers: the first step, written as string operators if it can be
ENCODERS = {"text_vectorization"}


def _encoder(pipeline):
    steps = pipeline.steps if pipeline is not None else []
    return steps[0] if steps and steps[0].registered_name in ENCODERS else None


def text_input(pipeline, strings=True):
    """The text step the exported model starts with (its input is then strings), or None: no
    such step, one that cannot be written as ONNX nodes, or ``strings`` false (token ids asked for)."""
    first = _encoder(pipeline)
    return first if strings and first is not None and onnx_text.unsupported(first) is None else None


def _preprocessing(g, pipeline, x, text):
    """Fold the saved steps in (``text``: the text step written as string operators, or None);
    (output, the steps folded, the encoder steps left to the user)."""
    folded, left = [], []
    for i, step in enumerate(pipeline.steps):
        name = step.registered_name
        if step is text:
            x = onnx_text.text_vectorization(g, step, x, f"preprocessing/{i}_{name}")
            folded.append({"type": name, "standardize": step.standardize, "split": step.split,
                           "output_mode": step.output_mode, "vocabulary": f"{len(step.vocabulary)} tokens"})
            continue
        if name in ENCODERS and not folded:
            left.append(step)
            continue
        if getattr(step, "augments", False) and not getattr(step, "changes_shape", False):
            continue                                     # random augmentation: training only
        if name not in STEPS:
            raise ConfigError(f"preprocessing step {i} ({name}) cannot be exported to ONNX",
                              expected="one of " + ", ".join(sorted(STEPS)) + " (text_vectorization first)",
                              fix="apply it before the model, or train without it.")
        x = STEPS[name](g, step, x, f"preprocessing/{i}_{name}")
        folded.append({"type": name, **{k: _plain(v) for k, v in step.state_dict().items()}})
    return x, folded, left


def _plain(value):
    value = np.asarray(value)
    return value.tolist() if value.size <= 64 else f"array of shape {list(value.shape)}"


# -- the model -------------------------------------------------------------------------------

def convert(loaded, strings=True):
    """(ONNX ModelProto bytes, output name) of a ``LoadedRun`` (api.LoadedRun); a text model
    takes raw strings unless ``strings`` is false (then the text step's output)."""
    experiment, loss = loaded.experiment, loaded.experiment.loss
    final = None
    if getattr(loss, "from_logits", False):                 # predict reports probabilities
        from dltrain.registry import build

        final = build("activation", loss.fuses)
    return model_bytes(loaded.model, experiment.pipeline, final, str(experiment.config.get("name", "dltrain")),
                       lambda folded, encoders: _metadata(loaded, folded, encoders, strings), strings)


def model_bytes(model, pipeline=None, final=None, name="dltrain", metadata=None, strings=True):
    """ONNX bytes of a built ``Model`` after ``pipeline``'s steps, ending in activation ``final``."""
    from dltrain import __version__
    from dltrain.data.dataset import Pipeline

    pipeline = pipeline or Pipeline()
    text = text_input(pipeline, strings)
    g = Graph(model.dtype, onnx_text.OPSET if text is not None else OPSET)
    x, folded, encoders = _preprocessing(g, pipeline, INPUT, text)
    y = layer_graph(g, model, x)
    if final is not None:
        y = onnx_layers.activation(g, final, y, "output_activation")
    y = g.identity(y, OUTPUT)
    record = metadata(folded, encoders) if metadata else {}
    given = (INPUT, object, ["batch"]) if text is not None else (INPUT, np.float32, ["batch", *model.input_shape])
    return g.serialize(name, [given],
                       [(y, model.dtype, ["batch", *model.output_shape])], record, __version__), y


def layer_graph(g, model, x):
    """The model's nodes as written (not as the graph passes rewrote how they compute; the
    layers' own flags for those rewrites are ignored) converted in order from tensor ``x``;
    the output tensor's name."""
    from dltrain.model import INPUT as MODEL_INPUT

    shapes, tensors, masks = {MODEL_INPUT: model.input_shape}, {MODEL_INPUT: x}, {MODEL_INPUT: None}
    for node in getattr(model, "graph", model.nodes):
        ins = node.inputs
        if node.layer.multi_input:
            args = ([tensors[n] for n in ins], [shapes[n] for n in ins], node.output_shape, [masks[n] for n in ins])
        else:
            args = (tensors[ins[0]], shapes[ins[0]], node.output_shape, masks[ins[0]])
        tensors[node.name], masks[node.name] = convert_layer(g, node, *args)
        shapes[node.name] = node.output_shape
    return tensors[getattr(model, "written_output", model.output)]


def input_description(model, pipeline, strings=True):
    """What the exported model's input is: name, shape, dtype and what it expects."""
    if text_input(pipeline, strings) is not None:
        return {"name": INPUT, "shape": ["batch"], "dtype": "string",
                "expects": "raw texts, one per sample, as `dltrain predict` reads them"}
    encoder = _encoder(pipeline)
    description = {"name": INPUT, "shape": ["batch", *model.input_shape], "dtype": "float32",
                   "expects": "raw inputs, as `dltrain predict` reads them"}
    if encoder is not None:
        why = onnx_text.unsupported(encoder) or "token ids were asked for (--text-input ids)"
        description["expects"] = (f"the output of {encoder.registered_name} (token ids or counts), not "
                                  f"texts: {why}")
    return description


def _metadata(loaded, folded, encoders, strings):
    experiment = loaded.experiment
    source_state = loaded.meta.get("source_state") or {}
    kinds = source_state.get("kinds") or {}
    classifier = experiment.loss.fuses is not None or experiment.loss.target == "sparse"
    record = {
        "input": json.dumps(input_description(loaded.model, experiment.pipeline, strings)),
        "preprocessing": json.dumps(folded),
        "task": "classification" if classifier else "regression",
        "dltrain_run": str(loaded.run_dir),
        "dltrain_checkpoint": str(loaded.path),
    }
    if kinds and all(kind == "numeric" for kind in kinds.values()):
        record["feature_names"] = json.dumps(list(kinds))
    names = loaded.class_names or getattr(experiment.sources.get("train"), "class_names", None)
    if names:
        record["class_names"] = json.dumps([str(n) for n in names])
    for step in [s for s in experiment.pipeline.steps if s.registered_name in ENCODERS]:
        vocabulary = getattr(step, "vocabulary", None)
        if vocabulary is not None:
            record["vocabulary"] = json.dumps(vocabulary)
            record["text_vectorization"] = json.dumps({"output_mode": step.output_mode,
                                                       "output_sequence_length": getattr(step, "output_sequence_length", None)})
    return record
