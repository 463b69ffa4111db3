"""Which trial to train next, and for how many epochs: grid, random, ASHA, Hyperband, TPE.

A method hands out ``Job``s (a trial's parameters and the epoch it should train to) and is told
each job's result. The runner tells results in the order the jobs were handed out, and decides
job k only from the results of the jobs before k - parallel + 1, so the sequence of jobs — and
with it the sweep's table — depends on the results alone, never on which process finished
first: an interrupted sweep continued from its journal repeats the same decisions.

``next_job()`` returns a Job, ``WAIT`` (it needs more results before it can decide), or None
(it has nothing more to hand out). A promoted ASHA or Hyperband trial is the same trial with a
larger epoch budget: the runner continues it from its checkpoint.
"""
import math

from dltrain.sweep.job import WAIT, Job  # noqa: F401  (methods.WAIT, methods.Job)
from dltrain.sweep.space import trial_id


def budgets(min_epochs, max_epochs, eta):
    """The rungs' epoch budgets: min, min·eta, min·eta², ... below max, then max."""
    if min_epochs >= max_epochs:
        return [max_epochs]
    count = math.floor(math.log(max_epochs / min_epochs) / math.log(eta) + 1e-9)
    return [min_epochs * eta ** k for k in range(count) if min_epochs * eta ** k < max_epochs] + [max_epochs]


def create(sweep):
    """The method a Sweep names, with its configurations drawn (grid, random, asha, hyperband)."""
    if sweep.method == "grid":
        configs = sweep.space.grid()
        return Fixed(configs[:sweep.trials] if sweep.trials else configs, sweep.max_epochs)
    if sweep.method == "random":
        return Fixed(sweep.space.samples(sweep.trials, sweep.seed), sweep.max_epochs)
    if sweep.method == "asha":
        return ASHA(sweep.space.samples(sweep.trials, sweep.seed),
                    budgets(sweep.min_epochs, sweep.max_epochs, sweep.eta), sweep.eta, sweep.sort_key)
    if sweep.method == "hyperband":
        return Hyperband(sweep.space.samples(sweep.trials, sweep.seed), sweep.min_epochs,
                         sweep.max_epochs, sweep.eta, sweep.sort_key)
    from dltrain.sweep.tpe import TPE

    return TPE(sweep)


class Fixed:
    """Grid and random search: every configuration, in order, trained to max_epochs."""

    def __init__(self, configs, epochs):
        self.configs, self.epochs, self.next = configs, epochs, 0

    def next_job(self):
        if self.next == len(self.configs):
            return None
        params = self.configs[self.next]
        self.next += 1
        return Job(trial_id(params), params, self.epochs)

    def tell(self, job, result):
        pass


class ASHA:
    """Asynchronous successive halving (Li et al., 2018): promote a trial from rung k as soon as
    it is in the top 1/eta of the results rung k has so far; otherwise start a new trial.

    Args:
        configs: the parameter sets, in the order they start.
        budgets: epochs of each rung (the last is max_epochs).
        eta: the reduction factor: one in eta trials of a rung goes on.
        sort_key: score -> a key that sorts the best first (None last).
    """

    def __init__(self, configs, budgets, eta, sort_key, bracket=0):
        self.configs, self.budgets, self.eta, self.sort_key = configs, budgets, eta, sort_key
        self.bracket = bracket
        self.started = 0
        self.rungs = [[] for _ in budgets]           # rung -> [(order, job, score)] as told
        self.promoted = [set() for _ in budgets]
        self.pending = 0
        self.told = 0

    def promotion(self):
        """The best trial a rung may promote and has not, from the top rung down; or None."""
        for k in reversed(range(len(self.budgets) - 1)):
            done = self.rungs[k]
            ranked = sorted(done, key=lambda entry: (self.sort_key(entry[2]), entry[0]))
            for order, job, score in ranked[:len(done) // self.eta]:
                if score is not None and job.trial not in self.promoted[k]:
                    self.promoted[k].add(job.trial)
                    return Job(job.trial, job.params, self.budgets[k + 1], k + 1, self.bracket)
        return None

    def next_job(self):
        job = self.promotion()
        if job is None and self.started < len(self.configs):
            params = self.configs[self.started]
            self.started += 1
            job = Job(trial_id(params), params, self.budgets[0], 0, self.bracket)
        if job is None:
            return WAIT if self.pending else None
        self.pending += 1
        return job

    def tell(self, job, result):
        self.pending -= 1
        self.rungs[job.rung].append((self.told, job, result.get("score")))
        self.told += 1


class Bracket:
    """Synchronous successive halving: every trial of a rung finishes, then the best 1/eta go on."""

    def __init__(self, configs, budgets, eta, sort_key, index):
        self.budgets, self.eta, self.sort_key, self.index = budgets, eta, sort_key, index
        self.members = [(trial_id(p), p) for p in configs]
        self.rung, self.issued, self.scores = 0, 0, {}

    def next_job(self):
        if self.rung == len(self.budgets) or not self.members:
            return None
        if self.issued < len(self.members):
            trial, params = self.members[self.issued]
            self.issued += 1
            return Job(trial, params, self.budgets[self.rung], self.rung, self.index)
        if len(self.scores) < len(self.members):
            return WAIT
        order = {trial: i for i, (trial, _) in enumerate(self.members)}
        ranked = sorted(self.members, key=lambda m: (self.sort_key(self.scores[m[0]]), order[m[0]]))
        self.members = [m for m in ranked[:max(1, len(ranked) // self.eta)] if self.scores[m[0]] is not None]
        self.rung, self.issued, self.scores = self.rung + 1, 0, {}
        return self.next_job()

    def tell(self, job, result):
        self.scores[job.trial] = result.get("score")


class Hyperband:
    """Hyperband (Li et al., 2017): brackets of successive halving that start from different
    budgets, from many trials for few epochs to few trials for max_epochs. Brackets run side by
    side: while one waits for a rung to finish, the next hands out jobs."""

    def __init__(self, configs, min_epochs, max_epochs, eta, sort_key):
        self.brackets = []
        start = 0
        for index, (count, rungs) in enumerate(brackets(len(configs), min_epochs, max_epochs, eta)):
            self.brackets.append(Bracket(configs[start:start + count], rungs, eta, sort_key, index))
            start += count

    def next_job(self):
        waiting = False
        for bracket in self.brackets:
            job = bracket.next_job()
            if job is WAIT:
                waiting = True
            elif job is not None:
                return job
        return WAIT if waiting else None

    def tell(self, job, result):
        self.brackets[job.bracket].tell(job, result)


def brackets(trials, min_epochs, max_epochs, eta):
    """[(trials, budgets)] of Hyperband's brackets, most aggressive first, ``trials`` in all
    (shared in the proportions of the paper's n_s = ceil((s_max+1)/(s+1) · eta^s))."""
    s_max = len(budgets(min_epochs, max_epochs, eta)) - 1
    shapes = []
    for s in range(s_max, -1, -1):
        first = max(min_epochs, round(max_epochs / eta ** s))
        rungs = [first * eta ** i for i in range(s) if first * eta ** i < max_epochs] + [max_epochs]
        shapes.append((math.ceil((s_max + 1) / (s + 1) * eta ** s), rungs))
    total = sum(n for n, _ in shapes)
    counts = [max(1, math.floor(n * trials / total)) for n, _ in shapes]
    for i in range(trials - sum(counts)):        # the remainder to the first brackets
        counts[i % len(counts)] += 1
    if sum(counts) > trials:                     # fewer trials than brackets: the first ones
        counts = [1 if i < trials else 0 for i in range(len(counts))]
    return [(c, rungs) for c, (_, rungs) in zip(counts, shapes) if c]
