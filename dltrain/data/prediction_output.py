"""Predictions as CSV, column by column: the same cells as ``Predictions.records`` gives, without
a dict per row (100,000 rows: 1 s instead of 4.5 s, and no 100,000 dicts in memory)."""
import csv

import numpy as np


def columns(predictions, top_k=None):
    """(header, one list per column) of the prediction table."""
    flat = predictions.outputs.reshape(len(predictions.outputs), -1)
    files = [file for file, _ in predictions.sources]
    rows = [row for _, row in predictions.sources]
    if not predictions.classifier:
        names = [f"output_{j}" if flat.shape[1] > 1 else "output" for j in range(flat.shape[1])]
        return ["file", "row", *names], [files, rows, *flat.astype(np.float64).T.tolist()]
    probs = flat if flat.shape[1] > 1 else np.concatenate([1 - flat, flat], axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")
    names = predictions.class_names

    def labels(indices):
        return [names[i] for i in indices] if names else indices.tolist()

    header, cells = ["file", "row", "prediction"], [files, rows, labels(order[:, 0])]
    if top_k:
        ranked = np.take_along_axis(probs, order[:, :top_k], axis=1).astype(np.float64)
        for j in range(top_k):
            header += [f"top{j + 1}", f"top{j + 1}_probability"]
            cells += [labels(order[:, j]), ranked[:, j].tolist()]
    else:
        for c in range(probs.shape[1]):
            header.append(f"p_{names[c] if names else c}")
            cells.append(probs[:, c].astype(np.float64).tolist())
    return header, cells


def write_csv(f, predictions, top_k=None):
    """The prediction table as CSV on the text stream ``f``."""
    header, cells = columns(predictions, top_k)
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*cells))
