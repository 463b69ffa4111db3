"""A sweep's plots (matplotlib, the `plot` extra): the score against each parameter, and every
trial as one line across all parameters (parallel coordinates).

Trials are coloured by how many epochs they trained (the scheduler's rung), so a low score of a
trial stopped early is not mistaken for a bad value; log-uniform parameters are drawn on a log
axis, listed values (choice, grid) at evenly spaced positions.
"""
import math
from pathlib import Path


def _axis_values(report, path):
    """(position of each row's value, tick positions, tick labels, log scale?) for one parameter."""
    kind = next(iter(report.distributions.get(path, {"uniform": None})))
    values = [row["params"].get(path) for row in report.rows]
    if kind in ("choice", "grid") or not all(isinstance(v, (int, float)) for v in values):
        listed = list(report.distributions[path][kind]) if kind in ("choice", "grid") else sorted(set(map(str, values)))
        labels = [str(v) for v in listed]
        positions = [labels.index(str(v)) if str(v) in labels else 0 for v in values]
        return positions, list(range(len(labels))), labels, False
    return values, None, None, kind == "log_uniform"


def effects(report, folder):
    """One PNG per parameter: the score of every trial against its value. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r["score"] is not None]
    paths = []
    epochs = sorted({r["epochs"] for r in rows})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for path in report.parameters:
        figure, ax = plt.subplots(figsize=(5.2, 3.6))
        positions, ticks, labels, log = _axis_values(report, path)
        for i, budget in enumerate(epochs):
            x = [p for p, r in zip(positions, report.rows) if r["score"] is not None and r["epochs"] == budget]
            y = [r["score"] for r in rows if r["epochs"] == budget]
            ax.scatter(x, y, s=22, color=colours[i % len(colours)], label=f"{budget} epochs", alpha=0.85)
        if ticks is not None:
            ax.set_xticks(ticks, labels)
        if log:
            ax.set_xscale("log")
        if report.best is not None:
            ax.axhline(report.best["score"], color="grey", lw=0.8, ls=":")
        ax.set_xlabel(path)
        ax.set_ylabel(report.metric)
        ax.set_title(f"{report.metric} against {path}", fontsize=10)
        ax.grid(alpha=0.3)
        if len(epochs) > 1:
            ax.legend(fontsize=7)
        figure.tight_layout()
        name = "effect_" + "".join(c if c.isalnum() or c in "._-" else "_" for c in path) + ".png"
        figure.savefig(Path(folder) / name, dpi=110)
        plt.close(figure)
        paths.append(Path(folder) / name)
    return paths


def parallel_coordinates(report, folder):
    """One PNG: an axis per parameter and one for the score, a line per trial coloured by its
    score (the best drawn thickest). Returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r["score"] is not None]
    axes = report.parameters + [report.metric]
    columns, labels = [], []
    for path in report.parameters:
        positions, ticks, names, log = _axis_values(report, path)
        positions = [p for p, r in zip(positions, report.rows) if r["score"] is not None]
        if log:
            positions = [math.log10(p) for p in positions]
        columns.append(_scaled(positions, ticks))
        labels.append(names)
    scores = [r["score"] for r in rows]
    columns.append(_scaled(scores, None))
    figure, ax = plt.subplots(figsize=(1.9 * len(axes) + 2, 4.2))
    cmap = plt.get_cmap("viridis")
    low, high = (min(scores), max(scores)) if scores else (0, 1)
    order = sorted(range(len(rows)), key=lambda i: scores[i] if report.mode == "max" else -scores[i])
    for i in order:
        shade = 0.5 if high == low else (scores[i] - low) / (high - low)
        shade = shade if report.mode == "max" else 1 - shade
        best = rows[i] is report.best
        ax.plot(range(len(axes)), [c[i] for c in columns], color=cmap(shade), lw=2.6 if best else 1.0,
                alpha=1.0 if best else 0.75)
    for j, path in enumerate(axes):
        ax.axvline(j, color="black", lw=0.6)
        listed = labels[j] if j < len(labels) else None
        ends = _ends(report, path, rows, listed)
        ax.text(j, -0.06, ends[0], ha="center", va="top", fontsize=7)
        ax.text(j, 1.06, ends[1], ha="center", va="bottom", fontsize=7)
        for k, label in enumerate((listed or [])[1:-1], 1):       # the values between the ends
            ax.text(j + 0.03, k / (len(listed) - 1), label, ha="left", va="center", fontsize=7)
    ax.set_xticks(range(len(axes)), axes, fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    ax.set_title(f"{report.name}: {len(rows)} trials (colour: {report.metric}, thick: best)", fontsize=10)
    figure.tight_layout()
    path = Path(folder) / "parallel_coordinates.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _scaled(values, ticks):
    """Values mapped onto 0..1 (listed values by their position among the ticks)."""
    low, high = (0, len(ticks) - 1) if ticks is not None else (min(values, default=0), max(values, default=1))
    if high == low:
        return [0.5 for _ in values]
    return [(v - low) / (high - low) for v in values]


def _ends(report, path, rows, labels):
    """The text at the bottom and the top of one axis."""
    if labels is not None:
        return labels[0], labels[-1]
    values = [r["score"] for r in rows] if path == report.metric else [r["params"][path] for r in rows]
    if not values:
        return "", ""
    return f"{min(values):.3g}", f"{max(values):.3g}"
