"""A run on a device: what moves between the host and the device, and when.

- Parameters are created on the host (numpy) and moved once, after any checkpoint is loaded
  (``place``): every layer's params and state, the arrays its ``build`` made (gate orders,
  masks), nested layers too, arrays shared between layers staying shared; the optimizer's slots.
- Data batches are read and preprocessed on the host and moved once per step (``Batches``).
- Checkpoints move to the host only when written (the trainer's ``to_host`` before writing).
- Everything in between stays on the device: layers, losses, metrics and optimizers take their
  array module from their input (backend.array_module).
- Under data parallelism each rank takes a GPU of its own (``use_rank_gpu``, by node-local rank;
  ``check_workers`` counts them before ``--workers`` starts the ranks); ranks never share one.

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


# -- data parallelism: one GPU per rank --------------------------------------------------------

SHARING = ("sharing a GPU between ranks is refused: two processes on one GPU contend for it "
           "and each holds a CUDA context and a copy of the model on it")


def gpu_count(device):
    """How many GPUs this process sees (0 on the CPU)."""
    if device != "cuda":
        return 0
    return int(device_module(device).cuda.runtime.getDeviceCount())


def _visible():
    import os

    return os.environ.get("CUDA_VISIBLE_DEVICES")


def gpu_of_rank(local_rank, views):
    """The device ordinal node-local rank ``local_rank`` takes; ``views``: every local rank's
    (CUDA_VISIBLE_DEVICES or None, GPUs it sees), in local-rank order.

    - each rank sees GPUs of its own (a launcher or Slurm's --gpus-per-task gave every rank a
      different CUDA_VISIBLE_DEVICES): its first one, ordinal 0;
    - else every rank sees the same GPUs: rank r takes GPU r, and there must be one per rank.
    A ConfigError (exit 2) when the ranks on this machine would share a GPU."""
    ranks = len(views)
    visible = [v for v, _ in views]
    firsts = [v.split(",")[0].strip() for v in visible if v]
    if len(firsts) == ranks and len(set(firsts)) == ranks and all(count >= 1 for _, count in views):
        return 0
    count = min(count for _, count in views)
    if count >= ranks:
        return local_rank
    seen = f"CUDA_VISIBLE_DEVICES={visible[local_rank]}" if visible[local_rank] is not None else \
        "CUDA_VISIBLE_DEVICES unset"
    raise ConfigError(f"--device cuda with data parallelism takes one GPU per rank, but {ranks} ranks "
                      f"on this machine see {count} GPU(s) ({seen})",
                      fix=f"start at most {count} rank(s) per machine (--workers {max(count, 1)}, or "
                          f"mpiexec -ppn {max(count, 1)}), give each rank its own GPU "
                          f"(CUDA_VISIBLE_DEVICES per rank, Slurm --gpus-per-task=1), or train on "
                          f"CPUs with --device cpu; {SHARING}")


def use_rank_gpu(device, comm):
    """Under data parallelism on cuda, make this rank's GPU (``gpu_of_rank`` of its node-local
    rank, ``comm.local()``) the current device, before anything is allocated on it; its ordinal.
    None on the CPU or on one process."""
    if device != "cuda" or comm.size == 1:
        return None
    local = comm.local()
    views = local.allgather((_visible(), gpu_count(device)))     # every rank decides alike
    index = gpu_of_rank(local.rank, views)
    device_module(device).cuda.Device(index).use()
    return index


def check_workers(device, workers):
    """Before ``--workers N`` starts any rank: on cuda this machine must have a GPU per rank
    (the ranks inherit this process's CUDA_VISIBLE_DEVICES, so they all see the same GPUs)."""
    if device != "cuda" or workers <= 1:
        return
    gpu_of_rank(0, [(_visible(), gpu_count(device))] * workers)


def choose(requested, config_device=None, where=None):
    """The device a command runs on: the command line's choice, else the config's ``device:``,
    else cpu; resolved (auto -> cuda or cpu) and checked (cuda must be usable)."""
    if requested is not None:
        return resolve_device(requested, "--device")
    return resolve_device(config_device, where)


