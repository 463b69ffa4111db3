"""The live progress display: a rich bar per epoch with loss, metrics, samples/s and ETA.

The only callback that knows about rich; ``cli/training.py`` adds it to `fit` unless ``--quiet``.
"""
import math

from dltrain.training.callbacks import Callback


def format_value(value):
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


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

            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[metrics]}"), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), console=self.console, transient=True)
            self.progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        if self.progress:
            self.task = self.progress.add_task("", total=self.steps, epoch=epoch, epochs=self.epochs,
                                               metrics="", rate="")

    def on_train_batch_end(self, batch, logs=None):
        if self.progress and (batch % 5 == 0 or batch + 1 == self.steps):
            shown = "  ".join(f"{k} {format_value(v)}" for k, v in logs.items()
                              if k not in ("samples", "seconds"))
            rate = f"{logs['samples'] / max(logs['seconds'], 1e-9):,.0f} samples/s"
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
