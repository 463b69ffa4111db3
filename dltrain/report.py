"""``evaluate --report``: where a model is right and wrong, per class or per residual.

A classifier gets a confusion matrix (rows: true class, columns: predicted; its diagonal sums to
the correct predictions) and per-class precision, recall, F1 and support under the class names;
a one-unit sigmoid is two classes at threshold 0.5. A regression gets a summary of the residuals
(prediction - target) and, with matplotlib, a predicted-vs-true plot.
"""
from dataclasses import dataclass, field

import numpy as np

from dltrain import scoring
from dltrain.errors import ConfigError


@dataclass
class ClassReport:
    class_names: list
    matrix: np.ndarray                 # (classes, classes) counts, [true, predicted]
    rows: list = field(default_factory=list)     # per class: name, precision, recall, f1, support
    correct: int = 0
    samples: int = 0
    kind: str = "classification"

    def as_dict(self):
        return {"kind": self.kind, "class_names": self.class_names, "confusion_matrix": self.matrix.tolist(),
                "per_class": self.rows, "correct": self.correct, "samples": self.samples}


@dataclass
class RegressionReport:
    summary: dict
    predicted: np.ndarray
    true: np.ndarray
    kind: str = "regression"

    def as_dict(self):
        return {"kind": self.kind, "residuals": self.summary}


def predicted_classes(out):
    """(N,) class indices of classifier outputs: argmax, or p >= 0.5 for one sigmoid unit."""
    flat = out.reshape(len(out), -1)
    return (flat[:, 0] >= 0.5).astype(np.int64) if flat.shape[1] == 1 else flat.argmax(axis=1)


def classification(out, y, class_names=None):
    flat = out.reshape(len(out), -1)
    classes = 2 if flat.shape[1] == 1 else flat.shape[1]
    true = np.asarray(y).reshape(len(y), -1)
    true = true.argmax(axis=1) if true.shape[1] > 1 else true[:, 0].astype(np.int64)
    if flat.shape[1] == 1 and true.size and true.max() > 1:
        raise ConfigError("a one-unit classifier's labels must be 0 or 1")
    predicted = predicted_classes(out)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    names = [str(n) for n in class_names] if class_names and len(class_names) == classes else \
        [str(i) for i in range(classes)]
    rows = []
    for c, name in enumerate(names):
        tp, predicted_c, support = int(matrix[c, c]), int(matrix[:, c].sum()), int(matrix[c].sum())
        precision = tp / predicted_c if predicted_c else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return ClassReport(names, matrix, rows, int(np.trace(matrix)), len(true))


def regression(out, y):
    predicted = out.reshape(len(out), -1).astype(np.float64)
    true = np.asarray(y, dtype=np.float64).reshape(len(predicted), -1)
    residual = (predicted - true).ravel()
    q = np.quantile(residual, [0.05, 0.25, 0.5, 0.75, 0.95]) if residual.size else [np.nan] * 5
    summary = {"samples": len(predicted), "mean": float(residual.mean()), "std": float(residual.std()),
               "mae": float(np.abs(residual).mean()), "rmse": float(np.sqrt((residual ** 2).mean())),
               "max_abs": float(np.abs(residual).max()),
               **{f"q{int(p * 100):02d}": float(v) for p, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), q)}}
    return RegressionReport(summary, predicted, true)


def report(loaded, split):
    """The report of one run on a split."""
    x, y = scoring.split_arrays(split)
    out = scoring.outputs(loaded, x)
    if scoring.is_classifier(loaded.experiment.loss):
        names = loaded.class_names or getattr(loaded.experiment.sources.get("train"), "class_names", None)
        return classification(out, y, names)
    return regression(out, y)


def draw(found, output):
    """A PNG of the confusion matrix or of predicted vs true; the path, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if found.kind == "classification":
        n = len(found.class_names)
        size = min(4 + 0.45 * n, 14)
        fig, ax = plt.subplots(figsize=(size, size * 0.85))
        image = ax.imshow(found.matrix, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_xticks(range(n), found.class_names, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
        ax.set_yticks(range(n), found.class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 30:
            top = found.matrix.max() or 1
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, int(found.matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if found.matrix[i, j] > top / 2 else "black")
        ax.set_title(f"confusion matrix: {found.correct} of {found.samples} correct")
    else:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        t, p = found.true.ravel(), found.predicted.ravel()
        ax.scatter(t, p, s=8, alpha=0.6)
        low, high = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([low, high], [low, high], color="grey", linewidth=1)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        ax.set_title(f"predicted vs true: RMSE {found.summary['rmse']:.4g}")
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
