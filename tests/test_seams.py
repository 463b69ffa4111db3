"""The seams of the training step: loss sums, metric merges, the communicator, the control object,
the run writer, and one construction per layer."""
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from dltrain import api, plot as plotting
from dltrain.parallel.threads import ThreadGroup
from dltrain.registry import build, registry
from dltrain.training.callbacks import Callback
from dltrain.training.writer import NullWriter, RunWriter
from training_helpers import digits_config, metrics_rows, same_state, state

#: no dropout (a rank's dropout stream is its own) and plain sgd (rounding does not compound)
DENSE = ["flatten", {"type": "dense", "units": 24, "activation": "relu"},
         {"type": "dense", "units": 10, "activation": "softmax"}]
SGD = {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9}


# -- sums and counts ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "mse", "huber", "binary_crossentropy"])
def test_loss_sums_and_gradients_of_halves_add_up_to_the_whole_batch(name):
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.05, 0.95, (8, 3)).astype(np.float64)
    target = rng.integers(0, 3, 8) if name.startswith("sparse") else rng.uniform(0, 1, (8, 3))
    weights = rng.uniform(0.5, 2, 8)
    loss = build("loss", name)
    whole = loss.sum(pred, target, weights)
    grad = loss.backward()
    assert whole.mean == pytest.approx(loss.forward(pred, target, weights), rel=1e-15)
    halves = [loss.sum(pred[s], target[s], weights[s]) for s in (slice(0, 5), slice(5, 8))]
    assert halves[0].total + halves[1].total == pytest.approx(whole.total, rel=1e-12)
    assert halves[0].count + halves[1].count == whole.count == 8
    parts = []
    for s in (slice(0, 5), slice(5, 8)):
        loss.sum(pred[s], target[s], weights[s])
        parts.append(loss.backward(count=8))         # the gradient of total / (global count)
    np.testing.assert_allclose(np.concatenate(parts), grad, rtol=1e-12)


@pytest.mark.parametrize("spec", ["accuracy", "precision", "recall", "f1", "auc", "mae", "rmse", "r2",
                                  {"type": "top_k_accuracy", "k": 2}])
def test_merged_metric_states_equal_the_state_of_the_whole(spec):
    rng = np.random.default_rng(1)
    pred = rng.dirichlet(np.ones(4), 40)
    target = rng.integers(0, 4, 40)
    if spec in ("mae", "rmse", "r2"):
        target = rng.normal(size=(40, 4))
    whole, merged = build("metric", spec), build("metric", spec)
    whole.update(pred, target)
    for s in (slice(0, 13), slice(13, 40)):
        part = build("metric", spec)
        part.update(pred[s], target[s])
        merged.merge(part.state())
    assert merged.result() == pytest.approx(whole.result(), rel=1e-12)


# -- the communicator seam ---------------------------------------------------------------------

def test_two_simulated_processes_train_the_same_parameters_as_one(tmp_path):
    """Each rank takes half of every global batch; one allreduce sums the gradients, the loss
    sum and the count; metric states merge at the epoch's end; only rank 0 writes."""
    registry("layer")                                # load the catalogue before the threads start
    config = digits_config(tmp_path, epochs=3, optimizer=SGD, layers=DENSE)
    single = api.fit(config, run_dir=tmp_path / "single")

    def rank_fit(comm):
        run = tmp_path / ("ranked" if comm.rank == 0 else "rank1")
        return api.fit(config, run_dir=run, comm=comm)

    ranks = ThreadGroup(2).run(rank_fit)
    assert not (tmp_path / "rank1").exists()         # the rank-1 writer wrote nothing
    for rank in ranks:
        for (key, a, _), (_, b, _) in zip(single.trainer.model.parameters(), rank.trainer.model.parameters()):
            np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6, err_msg=key)
    for plain, ranked in zip(metrics_rows(tmp_path / "single"), metrics_rows(tmp_path / "ranked")):
        assert ranked.keys() == plain.keys()
        for key in plain:
            assert float(ranked[key]) == pytest.approx(float(plain[key]), rel=1e-5, abs=1e-7), key
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in r.history] for r in ranks]
    assert untimed[0] == untimed[1]                  # every rank logs the same (merged) numbers


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step():
    from dltrain.errors import DivergedError
    from dltrain.model import Model
    from dltrain.random import Streams
    from dltrain.training.step import Step

    def rank_step(comm):
        streams = Streams(0)
        model = Model.from_config({"input_shape": [3], "layers": [{"type": "dense", "units": 2,
                                                                    "activation": "softmax"}]})
        model.build(streams.get("init"), streams)
        step = Step(model, build("loss", "sparse_categorical_crossentropy"), build("optimizer", "sgd"), comm)
        x, y = np.ones((2, 3), np.float32), np.array([0, 1])
        step.run(x, y, 4, {}, 1, 0, signalled=comm.rank == 0)
        assert step.signalled_processes == 1            # either rank's signal reaches both
        if comm.rank == 1:
            x[0, 0] = np.nan
        with pytest.raises(DivergedError) as caught:
            step.run(x, y, 4, {}, 1, 1)
        return caught.value.message

    messages = ThreadGroup(2).run(rank_step)
    assert "on another process at epoch 1, batch 2" in messages[0]
    assert "the input batch holds NaN or Inf" in messages[1]


class _ThreadSignals:
    """Stands in for training/signals.Signals in threads (handlers are the main thread's)."""

    local = threading.local()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def received(self):
        return getattr(self.local, "received", None)


class _SignalAt(Callback):
    def __init__(self, batch):
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            _ThreadSignals.local.received = "SIGTERM"


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_batch(tmp_path, monkeypatch):
    from dltrain.errors import Interrupted
    from dltrain.training import checkpoint, signals

    registry("layer")
    monkeypatch.setattr(signals, "Signals", _ThreadSignals)
    config = digits_config(tmp_path, epochs=2, optimizer=SGD, layers=DENSE)

    def rank_fit(comm):
        callbacks = [_SignalAt(2)] if comm.rank == 1 else []
        with pytest.raises(Interrupted) as caught:
            api.fit(config, run_dir=tmp_path / f"rank{comm.rank}", comm=comm, callbacks=callbacks)
        return caught.value.message

    messages = ThreadGroup(2).run(rank_fit)
    # rank 1 flags it after batch 3 (index 2); the flag rides in the next step's allreduce
    assert "SIGTERM received: stopped in epoch 1 after batch 4" in messages[1]
    assert "a signal on another process received: stopped in epoch 1 after batch 4" in messages[0]
    _, meta = checkpoint.load(tmp_path / "rank0" / "checkpoints" / "last.npz")
    assert (meta["position"]["epoch"], meta["position"]["batch"]) == (1, 4)
    assert not (tmp_path / "rank1").exists()


def test_one_process_never_packs_the_gradient_buffer(tmp_path):
    result = api.fit(digits_config(tmp_path, epochs=1, layers=DENSE), run_dir=tmp_path / "run")
    assert result.trainer.step_stages.buffer is None


# -- callbacks through the control object ------------------------------------------------------

class Steering(Callback):
    """Halves the rate after epoch 1, saves a checkpoint of its own at epoch 2, stops after 3."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.control.set_learning_rate(self.control.learning_rate / 2)
        if epoch == 2:
            self.control.save("steered", epoch)
        if epoch == 3:
            self.control.stop()


def test_a_callback_steers_training_through_the_control_object_alone(tmp_path):
    steering = Steering()
    result = api.fit(digits_config(tmp_path, epochs=6, optimizer={"type": "adam", "learning_rate": 0.004}),
                     run_dir=tmp_path / "run", callbacks=[steering])
    assert [float(r["lr"]) for r in metrics_rows(tmp_path / "run")] == pytest.approx([0.004, 0.002, 0.002])
    assert len(result.history) == 3 and (tmp_path / "run" / "checkpoints" / "steered.npz").exists()
    assert not hasattr(steering, "trainer")
    assert result.trainer.optimizer.learning_rate == 0.004    # the constructor argument is untouched


def test_resume_restores_callback_state_by_name_not_position(tmp_path):
    early = {"type": "early_stopping", "monitor": "val_loss", "mode": "max", "patience": 2}
    plateau = {"type": "reduce_lr_on_plateau", "monitor": "val_loss", "mode": "max", "patience": 1,
               "factor": 0.5}
    adam = {"type": "adam", "learning_rate": 0.003}
    straight = digits_config(tmp_path, epochs=4, optimizer=adam, callbacks=[early, plateau], name="straight")
    api.fit(straight, run_dir=tmp_path / "straight")
    api.fit(digits_config(tmp_path, epochs=2, optimizer=adam, callbacks=[early, plateau], name="first"),
            run_dir=tmp_path / "run")
    swapped = digits_config(tmp_path, epochs=4, optimizer=adam, callbacks=[plateau, early], name="swapped")
    api.fit(swapped, run_dir=tmp_path / "run", resume="auto", allow_config_change=True)
    assert metrics_rows(tmp_path / "run") == metrics_rows(tmp_path / "straight")
    assert same_state(state(tmp_path / "run"), state(tmp_path / "straight"))


# -- the run writer ----------------------------------------------------------------------------

_WRITES = {"os.remove", "os.rename", "os.link", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate"}
_watch = {"root": None, "outside": [], "inside": 0}


def _audit(event, args):
    root = _watch["root"]
    if root is None:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and flags & 0o3)          # O_WRONLY | O_RDWR
        if not writing:
            return
    elif event not in _WRITES:
        return
    else:
        path = args[0]
    if not isinstance(path, (str, bytes, Path)) or not str(Path(str(path) if not isinstance(path, bytes)
                                                              else path.decode())).startswith(root):
        return
    frame, files = sys._getframe(1), []
    while frame is not None:
        files.append(frame.f_code.co_filename)
        frame = frame.f_back
    if not any(f.endswith(str(Path("dltrain", "training", "writer.py"))) for f in files):
        _watch["outside"].append((event, str(path)))
    else:
        _watch["inside"] += 1


sys.addaudithook(_audit)


def test_only_the_writer_writes_in_the_run_directory(tmp_path):
    """Every open-for-writing, rename, link, mkdir and delete under the run directory, through a
    whole fit (fresh, resumed, overwritten; best, epoch files and their retention) and its plot,
    comes from training/writer.py."""
    checkpoint = {"type": "model_checkpoint", "monitor": "val_accuracy", "save_best_only": False,
                  "keep_last": 1}
    config = digits_config(tmp_path, epochs=3, callbacks=[checkpoint])
    run = tmp_path / "run"
    _watch.update(root=str(run), outside=[], inside=0)
    try:
        api.fit(config, ["training.epochs=2"], run_dir=run)
        api.fit(None, ["training.epochs=3"], resume=run)
        api.fit(config, run_dir=run, overwrite=True)
        plotting.plot([run])                                           # RUN/curves.png
        (run / "stray.txt").write_text("written past the writer")      # the hook sees this one
    finally:
        _watch["root"] = None
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["best.npz", "epoch_003.npz", "last.npz", "previous.npz"]
    assert (run / "curves.png").exists()
    assert _watch["inside"] > 50                       # every file, temporary, rename, link...
    assert _watch["outside"] == [("open", str(run / "stray.txt"))]


def test_retention_is_by_epoch_number_and_a_null_writer_writes_nothing(tmp_path):
    writer = RunWriter(tmp_path / "run")
    writer.create()
    arrays = {"model/w": np.zeros(2, np.float32)}
    for epoch in (998, 999, 1000):
        writer.checkpoint(f"epoch_{epoch:03d}", arrays, {"epoch": epoch}, keep=2)
    assert sorted(p.name for p in writer.checkpoints.iterdir()) == ["epoch_1000.npz", "epoch_999.npz"]
    silent = NullWriter(tmp_path / "silent")
    silent.create()
    silent.config("x")
    silent.manifest({})
    silent.metrics([{"epoch": 1, "loss": 1.0}])
    silent.checkpoint("last", arrays, {"epoch": 1})
    assert not (tmp_path / "silent").exists()


# -- one construction path ---------------------------------------------------------------------

def test_each_layer_object_is_constructed_once_per_fit_and_allocated_once(tmp_path, monkeypatch):
    from dltrain.layers.base import SHAPES_ONLY, Layer

    constructed, allocated, placeholders = [], [], []
    init, add_weight = Layer.__init__, Layer.add_weight

    def counting_init(self, *args, **kwargs):
        constructed.append(id(self))
        init(self, *args, **kwargs)

    def counting_add_weight(self, name, shape, initializer, rng, trainable=True):
        (placeholders if rng is SHAPES_ONLY else allocated).append((id(self), name))
        return add_weight(self, name, shape, initializer, rng, trainable)

    monkeypatch.setattr(Layer, "__init__", counting_init)
    monkeypatch.setattr(Layer, "add_weight", counting_add_weight)
    result = api.fit(digits_config(tmp_path, epochs=1), run_dir=tmp_path / "run")
    nodes = result.trainer.model.nodes
    assert len(constructed) == len(nodes) == 6           # flatten, dense, relu, dropout, dense, softmax
    assert sorted(constructed) == sorted(id(node.layer) for node in nodes)
    # two dense layers, kernel and bias: shapes inferred once without arrays, allocated once
    assert len(allocated) == len(set(allocated)) == 4
    assert sorted(placeholders) == sorted(allocated)


def test_the_fit_thread_is_free_of_extra_threads(tmp_path):
    """One process trains on the calling thread alone (no helper thread per step)."""
    before = threading.active_count()
    api.fit(digits_config(tmp_path, epochs=1, layers=DENSE), run_dir=tmp_path / "run")
    assert threading.active_count() == before
