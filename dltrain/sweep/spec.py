"""A sweep file: a base config, a method and a search space, checked all at once.

```yaml
base: ../digits_mlp.yaml        # relative to this file
sweep:
  method: asha                  # grid | random | asha | hyperband | tpe
  metric: val_accuracy
  mode: max
  trials: 24
  parallel: 2
  max_epochs: 30
  parameters:
    optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
```

``load`` reports every problem it finds in one ConfigErrors: the sweep's own settings, each
distribution, the base config, and the base config with each parameter at both ends of its range
(or at each listed value), so a path that does not exist or a value a layer refuses is known
before the first trial starts.
"""
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.config.loader import format_path, load as load_yaml
from dltrain.errors import ConfigError, join_errors
from dltrain.registry import suggest
from dltrain.sweep import space as spaces

METHODS = ("grid", "random", "asha", "hyperband", "tpe")
TOP_KEYS = ("base", "name", "sweep")
KEYS = ("method", "metric", "mode", "trials", "parallel", "max_epochs", "min_epochs", "eta", "seed",
        "parameters")
EPOCHS = ("training", "epochs")


@dataclass
class Sweep:
    file: Path
    name: str
    base: Path
    method: str
    metric: str
    mode: str
    trials: int
    parallel: int
    max_epochs: int
    min_epochs: int
    eta: int
    seed: int
    space: spaces.Space
    base_config: dict = field(repr=False, default=None)   # the resolved base config

    def settings(self):
        """What the journal keeps to notice a changed sweep: everything but the file's place."""
        return {"method": self.method, "metric": self.metric, "mode": self.mode, "trials": self.trials,
                "parallel": self.parallel, "max_epochs": self.max_epochs, "min_epochs": self.min_epochs,
                "eta": self.eta, "seed": self.seed, "parameters": self.space.spec()}

    @property
    def default_dir(self):
        """runs/NAME, as `dltrain fit` writes runs/NAME."""
        return Path("runs") / self.name

    def rungs(self):
        """The epoch budgets of ASHA's and Hyperband's rungs ([max_epochs] for the others)."""
        from dltrain.sweep.methods import budgets

        if self.method in ("asha", "hyperband"):
            return budgets(self.min_epochs, self.max_epochs, self.eta)
        return [self.max_epochs]

    def describe(self):
        """'24 trials, rungs at 3, 9, 30 epochs' or '6 trials of 30 epochs'."""
        if self.method in ("asha", "hyperband"):
            return f"{self.trials} trials, rungs at {', '.join(map(str, self.rungs()))} epochs"
        count = self.trials or self.space.grid_size()
        if self.method == "grid":
            count = min(count, self.space.grid_size())
        return f"{count} trials of {self.max_epochs} epochs"

    def better(self, a, b):
        """True when score ``a`` beats ``b`` (None loses to everything)."""
        if a is None:
            return False
        return b is None or (a > b if self.mode == "max" else a < b)

    def sort_key(self, score):
        """A key that sorts the best score first and None last."""
        if score is None:
            return (1, 0.0)
        return (0, -score if self.mode == "max" else score)


def load(path):
    """The checked Sweep of a sweep file; ConfigErrors listing every problem."""
    path = Path(path)
    document = load_yaml(path)
    errors = []
    data = document.data if isinstance(document.data, dict) else {}
    if not isinstance(document.data, dict) or not isinstance(data.get("sweep"), dict):
        raise ConfigError("a sweep file is a mapping with `base:` (a config) and `sweep:` (its settings)",
                          where=str(path), expected="base: ../config.yaml\nsweep: {method: random, "
                          "metric: val_accuracy, trials: 10, parameters: {...}}")
    for key in data:
        if key not in TOP_KEYS:
            errors.append(ConfigError(f"unknown key {key!r} in a sweep file", where=document.where((key,)),
                                      expected=", ".join(TOP_KEYS), fix=suggest(key, TOP_KEYS)))
    section = data["sweep"]
    for key in section:
        if key not in KEYS:
            errors.append(ConfigError(f"unknown sweep setting {key!r}", where=document.where(("sweep", key)),
                                      expected=", ".join(KEYS), fix=suggest(key, KEYS)))
    base, checked = _base(document, path, errors)
    settings = _settings(document, section, checked, errors)
    space = _space(document, section.get("parameters"), settings["method"], errors)
    if checked is not None:
        _metric(document, settings["metric"], checked, errors)
        if space.distributions:
            _values(document, base, space, errors)
    join_errors(errors)
    name = data.get("name") or path.stem.replace("_", "-")
    return Sweep(file=path, name=str(name), base=base, space=space, base_config=checked.document.data,
                 **settings)


def _base(document, path, errors):
    """(path of the base config, its validate() result), or (None, None) after an error."""
    from dltrain.config.validate import validate

    name = document.data.get("base")
    if not isinstance(name, str):
        errors.append(ConfigError("the sweep file has no `base:` config", where=document.where(("base",)),
                                  fix="add `base: path/to/config.yaml` (relative to the sweep file)."))
        return None, None
    base = (path.parent / name)
    if not base.is_file():
        errors.append(ConfigError(f"base config {name!r} does not exist", where=document.where(("base",)),
                                  expected=f"a file at {base}", fix="the path is relative to the sweep file."))
        return None, None
    try:
        return base, validate(base)
    except ConfigError as error:
        errors.append(error)
        return base, None


def _settings(document, section, checked, errors):
    where = lambda key: document.where(("sweep", key))      # noqa: E731
    method = section.get("method", "random")
    if method not in METHODS:
        errors.append(ConfigError(f"unknown sweep method {method!r}", where=where("method"),
                                  expected=", ".join(METHODS), fix=suggest(method, METHODS)))
        method = "random"
    if method == "tpe":
        try:
            import optuna  # noqa: F401
        except ImportError:
            errors.append(ConfigError("method tpe needs optuna, which is not installed", where=where("method"),
                                      fix="pip install 'dltrain[optuna]', or use method random or asha."))
    epochs = (checked.document.data["training"]["epochs"] if checked is not None else 10)

    def integer(key, default, low=1):
        value = section.get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            errors.append(ConfigError(f"sweep {key} must be an integer >= {low}, not {value!r}",
                                      where=where(key)))
            return default if default is not None else low
        return value

    settings = {"method": method, "metric": section.get("metric", "val_loss"),
                "trials": integer("trials", None), "parallel": integer("parallel", 1),
                "max_epochs": integer("max_epochs", epochs), "eta": integer("eta", 3, low=2),
                "seed": integer("seed", 0, low=0)}
    if settings["trials"] is None and method != "grid":
        errors.append(ConfigError(f"method {method} needs `trials:` (how many configurations to try)",
                                  where=document.where(("sweep",)), fix="add e.g. `trials: 20` under sweep."))
        settings["trials"] = 1
    settings["min_epochs"] = integer("min_epochs", _min_epochs(settings["max_epochs"], settings["eta"]))
    if method in ("asha", "hyperband") and settings["min_epochs"] > settings["max_epochs"]:
        errors.append(ConfigError(f"min_epochs {settings['min_epochs']} is above max_epochs "
                                  f"{settings['max_epochs']}", where=where("min_epochs")))
    from dltrain.training.callbacks import Monitor

    mode = section.get("mode", "auto")
    if mode not in ("min", "max", "auto"):
        errors.append(ConfigError(f"sweep mode must be min or max, not {mode!r}", where=where("mode")))
        mode = "auto"
    settings["mode"] = Monitor(str(settings["metric"]), mode).direction
    return settings


def _min_epochs(max_epochs, eta):
    """The first rung: about max_epochs / eta², so a sweep has three rungs."""
    return max(1, max_epochs // (eta * eta))


def parameter_where(document, key):
    """'sweep.parameters["model.layers[1].units"] (file:line)'."""
    return f'sweep.parameters["{key}"] ({document.location(("sweep", "parameters", key))})'


def _space(document, parameters, method, errors):
    """The Space of the distributions that are right (every other one is an error)."""
    where = lambda key: parameter_where(document, key)      # noqa: E731
    if not isinstance(parameters, dict) or not parameters:
        errors.append(ConfigError("the sweep has no parameters", where=document.where(("sweep", "parameters")),
                                  fix="add `parameters:` under sweep, e.g. "
                                      "`optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}`."))
        return spaces.Space([])
    distributions = []
    for key, spec in parameters.items():
        try:
            keys = spaces.parse_path(key)
            if keys == EPOCHS and method in ("asha", "hyperband"):
                raise ConfigError(f"{method} sets training.epochs itself (its rungs)",
                                  fix="remove training.epochs from the parameters; set max_epochs.")
            distribution = spaces.check(key, spec, where(key))
            if method == "grid" and not distribution.finite:
                raise ConfigError(f"grid search needs listed values, but {key!r} is {distribution.kind}",
                                  expected="grid, choice or int_uniform",
                                  fix="list the values: {grid: [a, b, c]}, or use method random.")
            distributions.append(distribution)
        except ConfigError as error:
            error.where = error.where if error.where not in (None, "--set") else where(key)
            errors.append(error)
    return spaces.Space(distributions)


def _metric(document, metric, checked, errors):
    config = checked.document.data
    names = ["loss"] + [s if isinstance(s, str) else s.get("name", s.get("type"))
                        for s in config.get("metrics") or []]
    validation = isinstance(config.get("data"), dict) and config["data"].get("validation") is not None
    produced = names + ([f"val_{n}" for n in names] if validation else [])
    if metric not in produced:
        errors.append(ConfigError(f"the sweep's metric {metric!r} is not logged by the base config",
                                  where=document.where(("sweep", "metric")), expected=", ".join(produced),
                                  fix=suggest(metric, produced, "name a logged quantity.")))


def _values(document, base, space, errors):
    """Validate the base config with the parameters set, the i-th try taking each parameter's
    i-th extreme value; every error is reported at the parameter it names."""
    from dltrain.config.validate import validate

    extremes = [d.extremes() for d in space.distributions]
    seen = set()
    for i in range(max(len(e) for e in extremes)):
        values = {d.path: e[i % len(e)] for d, e in zip(space.distributions, extremes)}
        try:
            validate(base, [spaces.override(p, v) for p, v in values.items()])
        except ConfigError as error:
            for one in getattr(error, "errors", [error]):
                owner = _owner(one, space)
                key = (owner, one.where, one.fix) if owner else one.message
                if key in seen:
                    continue
                seen.add(key)
                value = f" = {values[owner]!r}" if owner else ""
                located = parameter_where(document, owner) if owner else document.where(("sweep",))
                errors.append(ConfigError(
                    f"with {owner or ', '.join(f'{p}={v!r}' for p, v in values.items())}{value}: {one.message}",
                    where=f"{located}; in the config: {one.where}" if one.where not in (None, "--set") else located,
                    expected=one.expected, fix=one.fix))


def _owner(error, space):
    """The parameter an error of the base config is about (its path is the error's prefix)."""
    where = str(error.where or "") + " " + error.message
    for path in sorted(space.paths, key=len, reverse=True):
        keys = format_path(spaces.parse_path(path))
        if keys in where or path in where:
            return path
    return None
