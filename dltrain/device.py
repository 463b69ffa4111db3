"""A run on a device: what moves between the host and the device, and when.

- Parameters are created on the host (numpy) and moved once, after any checkpoint is loaded
  (``place``): every layer's params and state, the arrays its ``build`` made (gate orders,
  masks), nested layers too, arrays shared between layers staying shared; the optimizer's slots.
- Data batches are read and preprocessed on the host and moved once per step (``Batches``).
- Checkpoints move to the host only when written (the trainer's ``to_host`` before writing).
- Everything in between stays on the device: layers, losses, metrics and optimizers take their
  array module from their input (backend.array_module).

On the CPU every function here is the identity. Where a GPU backend would fuse kernels: see
README ("On a GPU").
"""
from collections.abc import Mapping

import numpy as np

from dltrain.backend import array_module, device_module, resolve_device, to_host
from dltrain.errors import ConfigError


def _move(value, xp, memo):
    key = id(value)
    if key not in memo:
        memo[key] = (to_host(value) if xp is np else xp.asarray(value), value)   # keep value alive
    return memo[key][0]


def _is_array(value):
    return isinstance(value, np.ndarray) or array_module(value) is not np     # a device array


def move_layer(layer, xp, memo=None):
    """Every array a built layer holds, on array module ``xp`` (numpy: back to the host)."""
    from dltrain.layers.base import Layer

    memo = {} if memo is None else memo
    for store in (layer.params, layer.state):
        for key, value in store.items():
            store[key] = _move(value, xp, memo)
    for name, value in list(vars(layer).items()):
        if name in ("params", "grads", "state"):
            continue
        if isinstance(value, Layer):
            move_layer(value, xp, memo)
        elif _is_array(value):
            setattr(layer, name, _move(value, xp, memo))
    layer.grads = {}                     # filled again by the next backward, on the device


def move_model(model, xp):
    memo = {}
    for node in model.nodes:
        move_layer(node.layer, xp, memo)


def move_optimizer(optimizer, xp):
    memo = {}
    for slots in optimizer.slots.values():
        for name, value in slots.items():
            slots[name] = _move(value, xp, memo)


class Batches:
    """Moves each batch (x, y) from the host to the device once per step; identity on the CPU."""

    def __init__(self, xp):
        self.xp = xp

    def __call__(self, x, y):
        if self.xp is np:
            return x, y
        return self.xp.asarray(x), (None if y is None else self.xp.asarray(y))


def place(trainer, device):
    """Put a trainer's model and optimizer on ``device`` (resolved: cpu or cuda); after this, every
    batch moves to it as it is taken and every checkpoint comes back as it is written."""
    xp = device_module(device)
    trainer.device = device
    if xp is np:
        return trainer
    move_model(trainer.model, xp)
    move_optimizer(trainer.optimizer, xp)
    stages = getattr(trainer, "step_stages", trainer)       # the training step holds the weights
    if getattr(stages, "class_weight", None) is not None:
        stages.class_weight = xp.asarray(stages.class_weight)
    trainer.to_device = Batches(xp)
    return trainer


class BatchLogs(Mapping):
    """A batch's logs whose metric values are read from the device only when a callback reads
    them (the progress display: every 5th batch), then kept; the loss and counts are floats."""

    def __init__(self, fixed, metrics):
        self._fixed, self._metrics, self._read = fixed, metrics, {}

    def __getitem__(self, key):
        if key in self._fixed:
            return self._fixed[key]
        if key not in self._read:
            self._read[key] = self._metrics[key].result()      # KeyError for an unknown key
        return self._read[key]

    def __iter__(self):
        yield "loss"
        yield from self._metrics
        yield from (k for k in self._fixed if k != "loss")

    def __len__(self):
        return len(self._fixed) + len(self._metrics)


def batch_logs(trainer, loss, metrics, samples, seconds):
    """The logs of one training batch: a dict on the CPU; on a device, metric values are read
    back only when something reads them (``BatchLogs``), not once per batch."""
    fixed = {"loss": loss, "samples": samples, "seconds": seconds}
    if getattr(trainer, "device", "cpu") == "cpu":
        return {"loss": loss, **{k: m.result() for k, m in metrics.items()}, "samples": samples,
                "seconds": seconds}
    return BatchLogs(fixed, metrics)


def predict(model, x, batch_size, xp=np):
    """The model's outputs for every sample of host array x, batch by batch, as a host array:
    each batch moves to the device and its output back (model.predict on the CPU)."""
    if xp is np:
        return model.predict(x, batch_size=batch_size)
    outputs = [to_host(model.forward(xp.asarray(x[i:i + batch_size].astype(model.dtype, copy=False))))
               for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, *model.output_shape), model.dtype)


def describe(device):
    """What run.json records: {"type": cpu|cuda, and for cuda the GPU's name and CuPy's version}."""
    if device != "cuda":
        return {"type": "cpu"}
    xp = device_module(device)
    record = {"type": "cuda", "cupy": getattr(xp, "__version__", None)}
    try:
        properties = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = properties.get("name", b"")
        record["name"] = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:                      # only a description: never fail a run over it
        pass
    return record


#: environment variables an MPI launcher sets to the number of ranks
RANK_COUNTS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")


def refuse_with_workers(device, workers=None, environ=None):
    """cuda with data parallelism (--workers N, or several MPI ranks) is not supported yet: a
    ConfigError (exit 2) instead of N processes sharing one GPU or silently training on CPUs."""
    import os

    if device != "cuda":
        return
    environ = os.environ if environ is None else environ
    ranks = max([int(environ[k]) for k in RANK_COUNTS if str(environ.get(k, "")).isdigit()] or [1])
    if (workers and workers > 1) or ranks > 1:
        how = f"--workers {workers}" if workers and workers > 1 else f"{ranks} MPI ranks"
        raise ConfigError(f"--device cuda cannot be combined with data parallelism ({how}) yet",
                          fix="train on one GPU (one process, no --workers), or data-parallel on "
                              "CPUs with --device cpu; one GPU per rank is not implemented.")


def choose(requested, config_device=None, where=None):
    """The device a command runs on: the command line's choice, else the config's ``device:``,
    else cpu; resolved (auto -> cuda or cpu) and checked (cuda must be usable)."""
    if requested is not None:
        device = resolve_device(requested, "--device")
    else:
        device = resolve_device(config_device, where)
    refuse_with_workers(device)
    return device


