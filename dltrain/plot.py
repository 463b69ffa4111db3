"""Learning curves from runs' metrics.csv: a PNG with matplotlib, or a chart in the terminal.

One panel per logged quantity (loss, then each metric), training solid and validation dashed,
one colour per run, and a last panel for the learning rate, all against the epoch. matplotlib is
the optional extra ``plot``; without it ``text_chart`` draws the same panels with characters.
"""
import csv
import math
from pathlib import Path

from dltrain.errors import ConfigError, DataError

NOT_PANELS = ("epoch", "lr", "seconds")


def read_history(run):
    """(name, rows) of a run directory's metrics.csv; each row maps column to float (None if blank)."""
    run = Path(run)
    path = run / "metrics.csv" if run.is_dir() else run
    if not path.exists():
        raise ConfigError(f"{str(run)!r} has no metrics.csv",
                          fix="give a run directory written by `dltrain fit` (after one epoch).")
    with open(path, newline="") as f:
        rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        raise DataError(f"{path} has no epochs yet")
    name = run.name if run.is_dir() else run.parent.name
    return name, rows


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def panels(histories):
    """Panel names in order: loss, the metrics (without val_), then lr."""
    names = []
    for _, rows in histories:
        for key in rows[0]:
            base = key.removeprefix("val_")
            if base not in NOT_PANELS and base not in names:
                names.append(base)
    names.sort(key=lambda n: (n != "loss",))
    if any("lr" in rows[0] for _, rows in histories):
        names.append("lr")
    return names


def series(rows, key):
    """(epochs, values) of one column, leaving out blank cells."""
    points = [(r["epoch"], r.get(key)) for r in rows if r.get(key) is not None and r.get("epoch") is not None]
    return [p[0] for p in points], [p[1] for p in points]


def draw_png(histories, output, format=None):
    """Write the learning curves of every run to ``output`` (PNG or SVG, by extension or
    ``format``; ``output`` may be an open binary file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = panels(histories)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.flat, names):
        for i, (run, history) in enumerate(histories):
            colour = colours[i % len(colours)]
            for key, style, label in ((name, "-", "train"), (f"val_{name}", "--", "validation")):
                x, y = series(history, key)
                if x and (name != "lr" or key == name):
                    shown = label if name != "lr" else "learning rate"
                    ax.plot(x, y, style, color=colour, marker="o" if len(x) < 30 else None,
                            markersize=3, label=f"{run} {shown}" if len(histories) > 1 else shown)
        ax.set_title("learning rate" if name == "lr" else name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if name == "lr":
            values = [v for _, h in histories for v in series(h, "lr")[1] if v and v > 0]
            if values and max(values) > 10 * min(values):
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.suptitle(" vs ".join(run for run, _ in histories))
    figure.tight_layout()
    figure.savefig(output, dpi=110, format=format)
    plt.close(figure)
    return output


def text_chart(histories, width=60, height=10):
    """The learning curves as text: one block per panel, a letter per run (upper case train,
    lower case validation)."""
    blocks = []
    for name in panels(histories):
        lines_of = []
        for i, (run, history) in enumerate(histories):
            mark = chr(ord("A") + i % 26)
            for key, symbol in ((name, mark), (f"val_{name}", mark.lower())):
                x, y = series(history, key)
                if x:
                    lines_of.append((f"{symbol}: {run} {'validation' if symbol.islower() else 'train'}",
                                     symbol, x, y))
        if not lines_of:
            continue
        xs = [v for _, _, x, _ in lines_of for v in x]
        ys = [v for _, _, _, y in lines_of for v in y if math.isfinite(v)]
        if not ys:
            continue
        lo, hi, x0, x1 = min(ys), max(ys), min(xs), max(xs)
        grid = [[" "] * width for _ in range(height)]
        for _, symbol, x, y in lines_of:
            for a, b in zip(x, y):
                if not math.isfinite(b):
                    continue
                col = 0 if x1 == x0 else round((a - x0) / (x1 - x0) * (width - 1))
                row = 0 if hi == lo else round((hi - b) / (hi - lo) * (height - 1))
                grid[row][col] = symbol
        label = "learning rate" if name == "lr" else name
        out = [f"{label}  (epochs {x0:g}..{x1:g})"]
        for r, cells in enumerate(grid):
            tick = f"{hi:10.4g}" if r == 0 else f"{lo:10.4g}" if r == height - 1 else " " * 10
            out.append(f"{tick} |{''.join(cells)}")
        out.append(" " * 11 + "+" + "-" * width)
        out.append("   " + "   ".join(legend for legend, _, _, _ in lines_of))
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(runs, output=None, terminal=False):
    """Draw the runs' curves: (path of the image, None) or (None, text) without matplotlib."""
    histories = [read_history(run) for run in runs]
    if terminal or not have_matplotlib():
        return None, text_chart(histories)
    if output is None and len(runs) == 1:            # RUN/curves.png: through the run's writer
        from dltrain.training.writer import RunWriter

        first = Path(runs[0])
        writer = RunWriter(first if first.is_dir() else first.parent)
        return writer.curves(lambda file: draw_png(histories, file, "png")), None
    return Path(draw_png(histories, Path(output or "curves.png"))), None
