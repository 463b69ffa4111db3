"""The control object: what a callback may ask of the training loop.

A callback sees ``logs`` in its hooks and ``self.control`` (set by the trainer before training):

    control.stop()                       stop after this batch or epoch
    control.learning_rate                the rate the next step uses
    control.set_learning_rate(value)     change it (refused when the optimizer follows a schedule)
    control.save(name, epoch, keep=None) write checkpoints/NAME.npz now, through the run writer
    control.weights() / control.restore_weights(weights, epoch)
    control.epoch                        epochs completed

The loop reads ``stop_requested`` at batch and epoch boundaries. Callbacks never see the trainer,
the optimizer or the file system.
"""
from dltrain.errors import ConfigError


class Control:
    def __init__(self, model, optimizer, save, saves_best=False):
        self._model = model
        self._optimizer = optimizer
        self._save = save                # save(name, epoch, keep): the trainer's, via its writer
        #: a callback of the run (model_checkpoint) decides what best.npz holds
        self.saves_best = saves_best
        self.stop_requested = False
        self.epoch = 0
        self.restored_epoch = None       # the epoch whose weights restore_weights put back

    def stop(self):
        self.stop_requested = True

    @property
    def learning_rate(self):
        return self._optimizer.current_learning_rate

    @property
    def scheduled(self):
        """Whether the optimizer's learning_rate is a schedule (then no callback may set it)."""
        return self._optimizer.schedule is not None

    def set_learning_rate(self, value):
        if self.scheduled:
            raise ConfigError("a callback sets the learning rate, but the optimizer's learning_rate "
                              "is a schedule", fix="give the optimizer a number as learning_rate, "
                                                  "or drop the callback.")
        self._optimizer.set_rate(value)

    def save(self, name, epoch, keep=None):
        self._save(name, epoch, keep)

    def weights(self):
        """A copy of every array of the model (parameters and moving statistics)."""
        return {k: v.copy() for k, v in self._model.state_dict().items()}

    def restore_weights(self, weights, epoch):
        self._model.load_state_dict(weights)
        self.restored_epoch = epoch
