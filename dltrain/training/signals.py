"""SIGINT and SIGTERM during `fit`: finish the batch, write a checkpoint, say how to resume, exit 130.

``Signals`` installs handlers for the duration of training (main thread only; elsewhere it does
nothing). The first signal only sets a flag; ``StopOnSignal``, the last callback, sees it after
the batch in flight, writes ``last.npz`` with the batch position and raises ``Interrupted``. A
second signal raises KeyboardInterrupt at once: every file is written to a temporary and
renamed, so stopping anywhere leaves the previous checkpoint whole (cli.py exits 130 for it too).
"""
import signal
import threading

from dltrain.errors import Interrupted
from dltrain.training.callbacks import Callback

CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Signals:
    """Context manager: catch SIGINT/SIGTERM into ``received`` (the signal's name)."""

    def __init__(self):
        self.received = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt(f"second signal ({signal.Signals(signum).name})")
        self.received = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in CAUGHT}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}
        return False


class StopOnSignal(Callback):
    """After the batch in flight (or at an epoch's start), checkpoint and raise Interrupted."""

    def __init__(self, signals, run_dir):
        self.signals = signals
        self.run_dir = run_dir

    def on_train_batch_end(self, batch, logs=None):
        if self.signals.received:
            self._stop()

    def on_epoch_begin(self, epoch, logs=None):
        if self.signals.received:
            self._stop()

    def _stop(self):
        trainer = self.trainer
        trainer.save_checkpoint("last.npz", trainer.epoch)
        if trainer.position is not None:
            epoch, batch = trainer.position[0], trainer.position[1]
            where = f"in epoch {epoch} after batch {batch}"
        else:
            where = f"after epoch {trainer.epoch}"
        raise Interrupted(
            f"{self.signals.received} received: stopped {where}; the state is saved in "
            f"{self.run_dir}/checkpoints/last.npz",
            fix=f"continue exactly where it stopped with: dltrain fit --resume {self.run_dir}")
