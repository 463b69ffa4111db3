"""TPE (tree-structured Parzen estimator) through optuna's ask/tell interface: optuna proposes
the values, dltrain runs the trial and owns its run directory, then tells optuna the score.

Optional: `pip install 'dltrain[optuna]'`. Each trial trains for max_epochs (no pruning). The
sampler is seeded with the sweep's seed and told results in the runner's fixed order, so a
sweep — and a continued one — asks for the same values every time. Listed values (choice,
grid) are asked as positions in the list, so any YAML value (a layer spec) can be a choice.
"""
from dltrain.sweep.job import WAIT, Job
from dltrain.sweep.space import trial_id


def distribution(optuna, d):
    """The optuna distribution of one of ours."""
    kinds = optuna.distributions
    if d.kind in ("choice", "grid"):
        return kinds.CategoricalDistribution(list(range(len(d.args))))
    if d.kind == "int_uniform":
        return kinds.IntDistribution(d.args[0], d.args[1])
    if d.kind == "quantized":
        low, high, step = d.args
        if all(isinstance(a, int) for a in d.args):
            return kinds.IntDistribution(low, low + (high - low) // step * step, step=step)
        return kinds.FloatDistribution(low, high)          # rounded to the step by d.quantize
    return kinds.FloatDistribution(d.args[0], d.args[1], log=d.kind == "log_uniform")


def value(d, asked):
    """Our value for what optuna asked."""
    if d.kind in ("choice", "grid"):
        return d.args[asked]
    if d.kind == "quantized":
        return d.quantize(asked)
    return int(asked) if d.kind == "int_uniform" else float(asked)


class TPE:
    def __init__(self, sweep):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize" if sweep.mode == "max" else "minimize",
                                         sampler=optuna.samplers.TPESampler(seed=sweep.seed))
        self.space = sweep.space
        self.distributions = {d.path: distribution(optuna, d) for d in sweep.space.distributions}
        self.trials, self.epochs, self.asked = sweep.trials, sweep.max_epochs, 0
        self.open = {}                   # trial id -> optuna trials asked for it, oldest first
        self.state = optuna.trial.TrialState

    def next_job(self):
        if self.asked == self.trials:
            return WAIT if any(self.open.values()) else None
        asked = self.study.ask(self.distributions)
        self.asked += 1
        params = {d.path: value(d, asked.params[d.path]) for d in self.space.distributions}
        job = Job(trial_id(params), params, self.epochs)
        self.open.setdefault(job.trial, []).append(asked)
        return job

    def tell(self, job, result):
        asked = self.open[job.trial].pop(0)
        score = result.get("score")
        if score is None:
            self.study.tell(asked, state=self.state.FAIL)
        else:
            self.study.tell(asked, score)
