"""SIGINT and SIGTERM during `fit`: finish the batch, write a checkpoint, say how to resume, exit 130.

``Signals`` installs handlers for the duration of training (main thread only; elsewhere it does
nothing). The first signal only sets a flag; the trainer sees it after the batch in flight (or at
an epoch's start, after the callbacks' hooks), writes ``last.npz`` with the batch position and
raises ``Interrupted`` (Trainer._check_signal). A
second signal raises KeyboardInterrupt at once: every file is written to a temporary and
renamed, so stopping anywhere leaves the previous checkpoint whole (cli.py exits 130 for it too).
"""
import signal
import threading


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
