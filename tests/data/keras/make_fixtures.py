"""Writes the .keras fixtures beside this file with Keras 3 (run once, in a venv with keras and
jax: KERAS_BACKEND=jax python make_fixtures.py [NAME ...], all of them without names; the
initial weights are Keras's own random ones, so a rerun writes other numbers). Each NAME.keras comes with NAME.npz holding
the input x it was given and Keras's own predictions y, and NAME.yaml, the same model as a
dltrain `model:` section (same layer names)."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _randomize(model, rng):
    """Weights away from their initial values (biases 0, statistics 0 and 1) so the test sees them."""
    for layer in model.layers:
        for variable in layer.weights:
            value = np.asarray(variable.numpy())
            variable.assign((value + rng.normal(0, 0.2, value.shape)).astype(value.dtype))
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype("float32"))


def convnet(rng):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv"),
        layers.BatchNormalization(name="bn"),
        layers.Activation("relu", name="relu"),
        layers.MaxPooling2D(2, name="pool"),
        layers.SeparableConv2D(6, 3, name="sep", activation="relu"),
        layers.Flatten(name="flat"),
        layers.Dense(8, activation="tanh", name="hidden"),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="tiny_convnet")
    return model, rng.uniform(0, 1, (5, 8, 8, 1)).astype("float32")


def recurrent(rng):
    model = keras.Sequential([
        keras.Input((6,)),
        layers.Embedding(12, 4, name="embed"),
        layers.LSTM(5, return_sequences=True, name="lstm"),
        layers.GRU(3, name="gru"),
        layers.Dense(1, activation="sigmoid", name="out"),
    ], name="tiny_recurrent")
    return model, rng.integers(0, 12, (5, 6)).astype("float32")


def functional(rng):
    """The functional API: a shared hidden layer, two branches and a skip from the input, added."""
    inputs = keras.Input((6,), name="features")
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    left = layers.Dense(5, activation="tanh", name="left")(hidden)
    right = layers.Dense(5, name="right")(hidden)
    skip = layers.Dense(5, use_bias=False, name="skip")(inputs)
    merged = layers.Add(name="merge")([left, right, skip])
    normed = layers.LayerNormalization(name="norm")(merged)
    outputs = layers.Dense(3, activation="softmax", name="out")(normed)
    model = keras.Model(inputs, outputs, name="tiny_functional")
    return model, rng.normal(0, 1, (5, 6)).astype("float32")


BUILDERS = {"tiny_convnet": convnet, "tiny_recurrent": recurrent, "tiny_functional": functional}


if __name__ == "__main__":
    import sys

    rng = np.random.default_rng(0)
    for name, build in BUILDERS.items():
        if sys.argv[1:] and name not in sys.argv[1:]:
            continue
        if name == "tiny_functional":          # written later than the other two, on its own stream
            rng = np.random.default_rng(2)
            keras.utils.set_random_seed(2)
        model, x = build(rng)
        _randomize(model, rng)
        y = np.asarray(model.predict(x, verbose=0))
        model.save(os.path.join(HERE, f"{model.name}.keras"))
        np.savez(os.path.join(HERE, f"{model.name}.npz"), x=x, y=y)
        print(model.name, y.shape, keras.__version__, keras.backend.backend())
