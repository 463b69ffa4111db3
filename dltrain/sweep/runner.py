"""Run a sweep: hand the method's jobs to ``parallel`` trial processes, journal every result.

The loop tells the method results in the order its jobs were handed out, and before deciding
job k it has told exactly the results of jobs 0 .. k - parallel (waiting for them if need be),
so the jobs a sweep runs are a function of the trials' results, which are exact — not of timing.
A job whose result is in the journal is not run again, which is what makes a sweep resumable:
continuing replays the same decisions and runs only what is missing (an interrupted trial
resumes from its own checkpoint).

A trial that diverges (exit 4) or fails is recorded with its message and the sweep goes on.
Ctrl-C (SIGINT) or SIGTERM stops every trial cleanly (each writes a checkpoint) and raises
Interrupted saying how to continue.
"""
import contextlib
import fcntl
import signal
import time
from pathlib import Path

from dltrain.errors import ConfigError, Interrupted
from dltrain.sweep import journal as journals, methods, trial as trials

POLL = 0.05          # seconds between looks at the running processes


def default_dir(sweep):
    return sweep.default_dir


class Runner:
    """One sweep in its folder. ``on_event(kind, job, record)`` is called for "start",
    "result" and "cached" (a result taken from the journal or from an early-stopped trial)."""

    def __init__(self, sweep, sweep_dir=None, allow_change=False, on_event=None, python=None):
        self.sweep = sweep
        self.folder = Path(sweep_dir) if sweep_dir else default_dir(sweep)
        self.allow_change = allow_change
        self.on_event = on_event or (lambda kind, job, record: None)
        self.python = python
        self.journal = None
        self.running = {}            # job index -> trials.Process
        self.issued = []             # jobs, in the order they were handed out
        self.results = {}            # job index -> result record
        self.latest = {}             # trial id -> its latest result record
        self.duplicates = {}         # running job index -> later job indices with the same trial

    def trial_dir(self, trial):
        return self.folder / "trials" / trial

    def run(self):
        """Run (or continue) the sweep to its end; returns the result records in job order."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder) as self.lock, _sigterm_as_interrupt():
            self.journal = journals.Journal(self.folder)
            self.journal.open(self.sweep, self.allow_change)
            self.known = self.journal.results()
            try:
                self._loop(methods.create(self.sweep))
            except KeyboardInterrupt:
                self._stop_all()
                raise Interrupted(
                    f"sweep stopped: {len(self.results)} jobs done, every running trial checkpointed",
                    where=str(self.folder),
                    fix=f"continue it with: dltrain sweep {self.sweep.file}"
                        + ("" if self.folder == default_dir(self.sweep) else f" --sweep-dir {self.folder}")
                ) from None
        return [self.results[i] for i in range(len(self.issued))]

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self, method):
        parallel, told, done = self.sweep.parallel, 0, False
        while True:
            while not done and len(self.running) < parallel:
                need = max(0, len(self.issued) - parallel + 1)
                while told < need and told in self.results:
                    method.tell(self.issued[told], self.results[told])
                    told += 1
                if told < need:
                    break                          # wait for job `told` to finish
                job = method.next_job()
                if job is methods.WAIT:
                    if told < len(self.issued) and told in self.results:
                        method.tell(self.issued[told], self.results[told])
                        told += 1
                        continue
                    if told < len(self.issued):
                        break
                    job = None
                if job is None:
                    done = True
                    break
                self._issue(job)
            if not self.running:           # nothing runs, so the method has nothing more to hand out
                return
            self._wait_one()

    def _issue(self, job):
        index = len(self.issued)
        self.issued.append(job)
        record = self._known(job)
        if record is not None:
            self._finish(index, record, cached=True)
            return
        same = [i for i, p in self.running.items() if (p.job.trial, p.job.epochs) == (job.trial, job.epochs)]
        if same:                       # asked again while it runs (TPE): its result, once
            self.duplicates.setdefault(same[0], []).append(index)
            return
        run_dir = self.trial_dir(job.trial)
        args = trials.command(self.sweep.base, job, run_dir, self.journal.changed, self.python)
        self.running[index] = trials.Process(job, args, self.folder / "logs", keep_fds=(self.lock.fileno(),))
        self.on_event("start", job, None)

    def _known(self, job):
        """The result of a job that need not run: journalled, a duplicate, or an early-stopped
        trial promoted (it stopped for good; its result at any longer budget is the same)."""
        record = self.known.get((job.trial, job.epochs))
        if record is not None:
            return record
        previous = self.latest.get(job.trial)
        if previous is not None and previous["status"] == "stopped" and previous["epochs"] < job.epochs:
            record = {**previous, "epochs": job.epochs, "rung": job.rung, "bracket": job.bracket,
                      "seconds": 0.0}
            self.journal.append(record)
            return record
        return None

    def _wait_one(self):
        while True:
            for index, process in list(self.running.items()):
                code = process.poll()
                if code is not None:
                    del self.running[index]
                    self._collect(index, process, code)
                    return
            time.sleep(POLL)

    def _collect(self, index, process, code):
        if code == trials.INTERRUPTED:
            raise KeyboardInterrupt            # the trial was stopped from outside: stop the sweep
        job = process.job
        record = trials.result(job, self.trial_dir(job.trial), code, self.sweep.metric, self.sweep.better,
                               time.perf_counter() - process.started, process.message() if code else "")
        self.journal.append(record)
        self.known[(job.trial, job.epochs)] = record
        self._finish(index, record)
        for duplicate in self.duplicates.pop(index, []):
            self._finish(duplicate, record, cached=True)

    def _finish(self, index, record, cached=False):
        self.results[index] = record
        self.latest[record["trial"]] = record
        self.on_event("cached" if cached else "result", self.issued[index], record)

    def _stop_all(self):
        for process in self.running.values():
            process.interrupt()
        for process in self.running.values():
            process.stop()
        self.running.clear()


@contextlib.contextmanager
def _locked(folder):
    """Only one `dltrain sweep` at a time in a folder. The trial processes inherit the lock, so
    a sweep that was killed holds it until its trials have checkpointed and exited."""
    with open(Path(folder) / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"another `dltrain sweep`, or the trials of one that was stopped, is running in {folder}",
                              fix="wait for it to finish, or stop it (Ctrl-C) first.") from None
        yield lock


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the sweep as Ctrl-C does (main thread only; elsewhere nothing changes)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:            # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
