"""The live progress display: a rich bar per epoch with loss, metrics, samples/s and ETA.

The only callback that knows about rich; ``cli/training.py`` adds it to `fit` unless ``--quiet``.
The line always fits the terminal: at narrow widths the metrics go first (the last ones first),
then the rate, then the bar shrinks to its minimum; the bar itself is never dropped.
"""
from dltrain.cli.render import format_value
from dltrain.training.callbacks import Callback


BAR_WIDTH = 40        # the bar's width when the line has room
KEPT_BAR_WIDTH = 20   # metrics and the rate are dropped before the bar gets narrower than this
MIN_BAR_WIDTH = 10    # and it never gets narrower than this


def layout(width, fixed, rate, metrics):
    """(bar width, rate text, metrics text) of a progress line ``width`` cells wide.

    ``fixed`` is the width of what is always shown (epoch, count, time left and the gaps between
    columns); ``metrics`` are "name value" strings in the order the user listed them."""
    room = width - fixed
    for shown in range(len(metrics), -1, -1):
        text = "  ".join(metrics[:shown])
        if room - len(text) - len(rate) >= KEPT_BAR_WIDTH:
            return min(BAR_WIDTH, room - len(text) - len(rate)), rate, text
    return max(MIN_BAR_WIDTH, min(BAR_WIDTH, room)), "", ""


class ProgressDisplay(Callback):
    """A progress bar per epoch (when the console is a terminal) and one line per epoch."""

    def __init__(self, console, live=True):
        self.console = console
        self.live = live and console.is_terminal
        self.progress = None

    def on_download(self, file, done, total):
        """A dataset file arriving before training (``api.fit`` calls this while loading)."""
        if self.live:
            if getattr(self, "downloads", None) is None:
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                self.downloads = Progress("downloading {task.description}", BarColumn(),
                                          DownloadColumn(), TransferSpeedColumn(),
                                          console=self.console, transient=False)
                self.downloads.start()
                self.download_tasks = {}
            if file not in self.download_tasks:
                self.download_tasks[file] = self.downloads.add_task(file, total=total)
            self.downloads.update(self.download_tasks[file], completed=done, total=total)
            if total is not None and done >= total and all(
                    t.finished for t in self.downloads.tasks):
                self.downloads.stop()
                self.downloads = None
        elif total is not None and done >= total:
            self.console.print(f"downloaded {file} ({done / 1e6:.1f} MB)", highlight=False)

    def on_train_begin(self, logs=None):
        if getattr(self, "downloads", None) is not None:      # a download that ended early
            self.downloads.stop()
            self.downloads = None
        self.epochs = logs["epochs"]
        self.steps = logs["steps"]
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            from rich.table import Column

            def text(template):     # never wrapped: `layout` makes the line fit instead
                return TextColumn(template, table_column=Column(no_wrap=True))

            self.bar = BarColumn(bar_width=BAR_WIDTH)
            self.progress = Progress(
                text("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), self.bar,
                text("{task.completed}/{task.total}"), text("{task.fields[metrics]}"),
                text("{task.fields[rate]}"), TimeRemainingColumn(table_column=Column(no_wrap=True)),
                console=self.console, transient=True)
            self.progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        if self.progress:
            self.task = self.progress.add_task("", total=self.steps, epoch=epoch, epochs=self.epochs,
                                               metrics="", rate="")

    def on_train_batch_end(self, batch, logs=None):
        if self.progress and (batch % 5 == 0 or batch + 1 == self.steps):
            metrics = [f"{k} {format_value(v)}" for k, v in logs.items() if k not in ("samples", "seconds")]
            rate = f"{logs['samples'] / max(logs['seconds'], 1e-9):,.0f} samples/s"
            # epoch 3/10 + count 101/1875 + time left 0:00:12 + one space between six columns
            fixed = len(f"epoch {self.epochs}/{self.epochs}") + 2 * len(str(self.steps)) + 1 + 7 + 5
            self.bar.bar_width, rate, shown = layout(self.console.width - 1, fixed, rate, metrics)
            self.progress.update(self.task, completed=batch + 1, metrics=shown, rate=rate)

    def on_epoch_end(self, epoch, logs=None):
        if self.progress:
            self.progress.remove_task(self.task)
        shown = "  ".join(f"{k} {format_value(v)}" for k, v in logs.items() if k not in ("epoch", "seconds"))
        self.console.print(f"epoch {epoch}/{self.epochs}  {shown}  ({logs['seconds']:.1f}s)", soft_wrap=True,
                           highlight=False)

    def on_train_end(self, logs=None):
        if self.progress:
            self.progress.stop()
