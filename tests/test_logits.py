"""Models that output logits (a loss with from_logits: true): metrics and predict see probabilities."""
import json

import numpy as np

from conftest import CONFIGS


def _fit(cli, tmp_path, config, *overrides):
    run = tmp_path / "run"
    args = ["fit", CONFIGS / config, "--run-dir", run, "--quiet"]
    for override in overrides:
        args += ["--set", override]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return run


def test_accuracy_of_a_logit_output_thresholds_the_probability_not_the_logit():
    from dltrain.data.dataset import Pipeline, Split
    from dltrain.losses import BinaryCrossentropy
    from dltrain.model import Model
    from dltrain.optimizers import SGD
    from dltrain.random import Streams
    from dltrain.training.trainer import Trainer

    streams = Streams(0)
    model = Model.from_config({"input_shape": [2], "layers": [{"type": "dense", "units": 1}]})
    model.build(streams.get("init"), streams)
    model.nodes[0].layer.params["kernel"][...] = 0
    model.nodes[0].layer.params["bias"][...] = 0.3         # logit 0.3: probability 0.574, class 1
    trainer = Trainer(model, BinaryCrossentropy(from_logits=True), SGD(), ["accuracy"], Pipeline(),
                      streams, batch_size=32, target_fn=lambda y: y.astype(np.float32))
    split = Split(np.zeros((4, 2), np.float32), np.ones(4))
    assert trainer.evaluate(split)["accuracy"] == 1.0


def test_binary_logits_give_the_same_accuracy_as_a_sigmoid_output(cli, tmp_path):
    sigmoid = _fit(cli, tmp_path / "a", "breast_cancer_logreg.yaml")
    logits = _fit(cli, tmp_path / "b", "breast_cancer_logreg.yaml",
                  "model.layers[0]={type: dense, units: 1}",
                  "loss={type: binary_crossentropy, from_logits: true}")
    scores = [json.loads(cli("evaluate", run, "--json").output) for run in (sigmoid, logits)]
    # same seed, same arithmetic up to the fused path: accuracy thresholds probabilities at 0.5,
    # which a logit output must be turned into first (a logit of 0.3 is probability 0.57)
    assert scores[1]["accuracy"] > 0.9
    assert abs(scores[0]["accuracy"] - scores[1]["accuracy"]) < 0.02


def test_predict_reports_probabilities_for_a_logit_output(cli, tmp_path):
    run = _fit(cli, tmp_path, "iris_mlp.yaml", "model.layers[-1]={type: dense, units: 3}",
               "loss={type: sparse_categorical_crossentropy, from_logits: true}")
    out = tmp_path / "p.npy"
    result = cli("predict", run, CONFIGS.parent / "datasets" / "iris.csv", "--output", out)
    assert result.exit_code == 0, result.output
    probabilities = np.load(out)
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
