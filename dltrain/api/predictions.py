"""predict: a trained run's outputs for the samples of files, and writing them as csv, json or npy."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import dltrain.catalogue  # noqa: F401  (every kind can be built by name from here)
from dltrain import device as devices
from dltrain.api.loading import LoadedRun
from dltrain.data import prediction_inputs
from dltrain.errors import ConfigError, DataError


@dataclass
class Predictions:
    outputs: np.ndarray                      # (N, ...) model outputs
    sources: list                            # (file, row) of each output
    class_names: list = None                 # names of the classes, for a classifier
    classifier: bool = False

    def top(self, k):
        """(indices, probabilities) of the k most probable classes per row."""
        probs = self.outputs.reshape(len(self.outputs), -1)
        if probs.shape[1] == 1:
            probs = np.concatenate([1 - probs, probs], axis=1)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(probs, order, axis=1)

    def label(self, index):
        return self.class_names[index] if self.class_names else int(index)

    def capped_top_k(self, k):
        """(k to use, a note or None): --top-k capped at the classes; refused for a regression."""
        return prediction_inputs.cap_top_k(k, self)

    def write_csv(self, stream, top_k=None):
        """The prediction table as CSV on a text stream, column by column (no dict per row)."""
        from dltrain.data import prediction_output

        prediction_output.write_csv(stream, self, top_k)

    def records(self, top_k=None):
        """One dict per input: file, row, and the predicted class and probabilities, or outputs."""
        rows = []
        if self.classifier:
            k = top_k or 1
            order, probs = self.top(k)
            classes = self.outputs.reshape(len(self.outputs), -1).shape[1]
            classes = 2 if classes == 1 else classes
            full = self.top(classes)
            for i, (file, row) in enumerate(self.sources):
                record = {"file": file, "row": row, "prediction": self.label(order[i, 0])}
                if top_k:
                    for j in range(k):
                        record[f"top{j + 1}"] = self.label(order[i, j])
                        record[f"top{j + 1}_probability"] = float(probs[i, j])
                else:
                    by_class = dict(zip(full[0][i], full[1][i]))
                    for c in range(classes):
                        record[f"p_{self.label(c)}"] = float(by_class[c])
                rows.append(record)
        else:
            flat = self.outputs.reshape(len(self.outputs), -1)
            for i, (file, row) in enumerate(self.sources):
                rows.append({"file": file, "row": row,
                             **{f"output_{j}" if flat.shape[1] > 1 else "output": float(v)
                                for j, v in enumerate(flat[i])}})
        return rows


def predict(run, files, which="best", device=None):
    """The model's outputs for every sample of every file, with the saved preprocessing applied."""
    from dltrain.data.sources import for_file

    loaded = LoadedRun(run, which)
    experiment, model = loaded.experiment, loaded.model
    xp = devices.device_module(devices.choose(device, experiment.config.get("device")))
    devices.move_model(model, xp)
    expected = tuple(model.input_shape)
    outputs, sources = [], []
    for file in files:
        source = prediction_inputs.prepare_image_source(for_file(file, experiment.sources.get("train")),
                                                        expected)
        reshapes = any(getattr(step, "changes_shape", False) for step in experiment.pipeline.steps)
        features = None if reshapes else int(np.prod(expected))
        x = source.load_features(Path.cwd(), expected_features=features)
        if features and x.ndim == 2 and len(expected) > 1 and x.shape[1] == features:
            x = x.reshape(len(x), *expected)        # flat CSV rows for shaped inputs (8x8 digits)
        x = prediction_inputs.conform(x, expected, file)    # a missing channel axis added
        if tuple(x.shape[1:]) != expected and not reshapes:     # text: checked by check_data
            raise DataError(f"{file}: each sample has shape {tuple(x.shape[1:])}, the model expects {expected}",
                            fix="give inputs shaped like the training data.")
        x = experiment.pipeline.transform(x)
        outputs.append(devices.predict(model, x, experiment.training["batch_size"] * 8, xp))
        names = getattr(source, "sample_names", None)
        sources += [(str(file), names[i] if names else i) for i in range(len(x))]
    loss = experiment.loss
    classifier = loss.fuses is not None or loss.target == "sparse"
    outputs = np.concatenate(outputs)
    if getattr(loss, "from_logits", False):          # report probabilities, not logits
        from dltrain.registry import build

        outputs = build("activation", loss.fuses).forward(outputs)
    class_names = loaded.class_names or getattr(experiment.sources.get("train"), "class_names", None)
    return Predictions(outputs, sources, class_names, classifier)


def write_predictions(predictions, output, format=None, top_k=None):
    """Write predictions to ``output`` as csv, json or npy (by ``format`` or the extension)."""
    from dltrain.data import prediction_output
    from dltrain.training.files import atomic_open

    output = Path(output)
    format = format or (output.suffix.lstrip(".").lower() or "csv")
    if format not in ("csv", "json", "npy"):
        raise ConfigError(f"unknown output format {format!r}", expected="csv, json or npy")
    where = {"what": f"predictions to {output}",
             "fix": "give --output a path in a folder that exists and that you can write to."}
    if format == "npy":
        with atomic_open(output, **where) as f:
            np.save(f, predictions.outputs)
        return output
    with atomic_open(output, "w", **where) as f:
        if format == "json":
            json.dump(prediction_inputs.strict(predictions.records(top_k)), f, indent=1, allow_nan=False)
        else:                                   # column by column: no dict per row
            prediction_output.write_csv(f, predictions, top_k)
    return output
