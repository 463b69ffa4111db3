"""The graph passes: declared in one module, opted into through Layer methods, listed by
`summary --passes`, and invisible in what the model computes and in how it is shown."""
import inspect
import re

import numpy as np
import pytest

from conftest import CONFIGS
from dltrain.config.validate import validate
from dltrain.layers.base import Layer
from dltrain.model import Model, passes
from dltrain.summary import summarize

CONVNET = validate(CONFIGS / "mnist_convnet.yaml", files=False).document.data["model"]
CAPABILITIES = ("is_relu", "commutes_with_relu", "input_region", "compute_only", "blocks_for",
                "emit_pool_blocks", "take_blocks", "absorb_relu")


def test_every_capability_the_passes_use_is_a_documented_layer_method():
    source = inspect.getsource(passes)
    for name in CAPABILITIES:
        assert callable(getattr(Layer, name)) and getattr(Layer, name).__doc__, name
        assert f".{name}(" in source, name
    used = {word.split("(")[0] for word in source.replace("layer.", " layer.").split()
            if word.startswith("layer.") and "(" in word}
    assert {u.split(".")[1] for u in used} <= set(CAPABILITIES)


def test_a_layer_opts_in_by_overriding_and_out_by_default(monkeypatch):
    from dltrain.layers.max_pooling import MaxPooling2D

    config = {"input_shape": [10, 10, 1], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 2, "activation": "relu"},     # 9x9
        {"type": "max_pooling2d"}, {"type": "flatten"}]}

    def rewrites():
        model = Model.from_config(config)
        model.build(np.random.default_rng(0))
        return sorted({r.pass_name for r in model.rewrites})

    assert rewrites() == ["absorb_relu", "pool_before_relu", "pool_blocks"]
    for name in ("commutes_with_relu", "blocks_for"):          # back to Layer's defaults
        monkeypatch.setattr(MaxPooling2D, name, getattr(Layer, name))
    assert rewrites() == []             # it reads the ReLU, whose compute_only is the default
    monkeypatch.undo()
    config["layers"][1] = {"type": "average_pooling2d"}       # overrides only input_region
    assert rewrites() == []
    del config["layers"][0]["activation"]
    assert rewrites() == ["compute_read_region"]               # the conv computes 8x8 of 9x9
    assert Layer().compute_only((2, 2)) is False and Layer().absorb_relu() is False
    assert Layer().blocks_for((4, 4, 1)) is None and Layer().input_region((4, 4, 1)) is None


def run(model, x):
    y = model.forward(x, training=True)
    grad_x = model.backward(np.ones_like(y) / len(y))
    return y, {"input": grad_x, **{k: g.copy() for k, _, g in model.parameters()}}


@pytest.mark.parametrize("kept", [(), ("pool_before_relu",), ("pool_before_relu", "absorb_relu"),
                                  ("compute_read_region",)])
def test_the_mnist_convnet_computes_the_same_with_and_without_each_pass(kept):
    """pool_before_relu is bit-exact; pool_blocks reorders the rows of the same products and
    compute_read_region leaves out rows of zeros from the weight gradient's sums (float32
    rounding of BLAS's blocking at most)."""
    x = np.random.default_rng(3).random((4, 28, 28, 1), dtype=np.float32)
    full = Model.from_config(CONVNET)
    full.build(np.random.default_rng(0))
    plain = Model.from_config(CONVNET, passes=kept)
    plain.build(np.random.default_rng(0))
    assert len(plain.nodes) > len(full.nodes)             # two ReLUs absorbed into their poolings
    (y, grads), (y_plain, grads_plain) = run(full, x), run(plain, x)
    np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-7)
    for key in grads_plain:
        np.testing.assert_allclose(grads[key], grads_plain[key], rtol=1e-4, atol=1e-7, err_msg=key)
    exact = Model.from_config(CONVNET, passes=("pool_before_relu",))
    exact.build(np.random.default_rng(0))
    unfused = Model.from_config(CONVNET, passes=())
    unfused.build(np.random.default_rng(0))
    (y, grads), (y_plain, grads_plain) = run(exact, x), run(unfused, x)
    np.testing.assert_array_equal(y, y_plain)
    for key in grads_plain:
        np.testing.assert_array_equal(grads[key], grads_plain[key], err_msg=key)


def test_passes_rewrite_the_plan_and_leave_the_graph_and_layers_as_written():
    model = Model.from_config(CONVNET)
    model.build(np.random.default_rng(0))
    written = ["conv2d_1", "conv2d_1_relu", "max_pooling2d_1", "conv2d_2", "conv2d_2_relu",
               "max_pooling2d_2", "conv2d_3", "conv2d_3_relu", "flatten_1", "dense_1", "dense_1_relu",
               "dense_2", "dense_2_softmax"]
    assert [n.name for n in model.graph] == written
    assert [n.name for n in model.nodes] == ["conv2d_1", "max_pooling2d_1", "conv2d_2", "max_pooling2d_2",
                                             "conv2d_3", "conv2d_3_relu", "flatten_1", "dense_1",
                                             "dense_1_relu", "dense_2", "dense_2_softmax"]
    assert [(e.name, e.type, e.activation) for e in model.layers] == [
        ("conv2d_1", "conv2d", "relu"), ("max_pooling2d_1", "max_pooling2d", None),
        ("conv2d_2", "conv2d", "relu"), ("max_pooling2d_2", "max_pooling2d", None),
        ("conv2d_3", "conv2d", "relu"), ("flatten_1", "flatten", None),
        ("dense_1", "dense", "relu"), ("dense_2", "dense", "softmax")]
    assert model.graph[2].inputs == ["conv2d_1_relu"]           # the graph's wiring is untouched
    rewritten = {(r.pass_name, r.nodes) for r in model.rewrites}
    assert ("pool_before_relu", ("max_pooling2d_1", "conv2d_1_relu")) in rewritten
    assert ("pool_blocks", ("conv2d_2", "max_pooling2d_2")) in rewritten
    assert ("absorb_relu", ("max_pooling2d_2", "conv2d_2_relu")) in rewritten


def test_summary_shows_the_layers_as_written_in_order_with_their_names():
    summary = summarize(validate(CONFIGS / "mnist_convnet.yaml", files=False))
    assert [(r.name, r.kind) for r in summary.rows] == [
        ("conv2d_1", "conv2d (relu)"), ("max_pooling2d_1", "max_pooling2d"),
        ("conv2d_2", "conv2d (relu)"), ("max_pooling2d_2", "max_pooling2d"),
        ("conv2d_3", "conv2d (relu)"), ("flatten_1", "flatten"),
        ("dense_1", "dense (relu)"), ("dense_2", "dense (softmax)")]
    assert [r.inputs for r in summary.rows][:3] == [["input"], ["conv2d_1"], ["max_pooling2d_1"]]
    assert [r.output_shape for r in summary.rows][:2] == [(26, 26, 32), (13, 13, 32)]
    assert summary.params == 93322 and summary.passes is None


def test_summary_passes_lists_every_pass_and_what_it_rewrote_in_the_users_names():
    summary = summarize(validate(CONFIGS / "mnist_convnet.yaml", files=False), passes=True)
    assert [p["name"] for p in summary.passes] == list(passes.names())
    by_name = {p["name"]: p for p in summary.passes}
    assert all(p["description"] and p["enabled"] for p in summary.passes)
    assert "'max_pooling2d_1' runs before 'conv2d_1' (its relu activation)" in by_name["pool_before_relu"]["rewrites"]
    assert any("'conv2d_2'" in note for note in by_name["pool_blocks"]["rewrites"])
    assert by_name["compute_read_region"]["rewrites"] == []      # 26 and 11: the blocks cover them


def test_time_rows_are_the_layers_as_written_each_saying_which_passes_rewrote_it():
    from dltrain import api

    rows = api.time_layers(CONFIGS / "mnist_convnet.yaml", batch_size=2, iterations=1).rows
    assert [r.name for r in rows] == [
        "conv2d_1", "conv2d_1 (relu)", "max_pooling2d_1", "conv2d_2", "conv2d_2 (relu)", "max_pooling2d_2",
        "conv2d_3", "conv2d_3 (relu)", "flatten_1", "dense_1", "dense_1 (relu)", "dense_2", "dense_2 (softmax)"]
    by_name = {r.name: r for r in rows}
    folded = by_name["conv2d_1 (relu)"]           # absorb_relu: the pooling applies it
    assert folded.runs_in == "max_pooling2d_1" and "absorb_relu" in folded.passes
    assert (folded.forward_ms, folded.backward_ms) == (0.0, 0.0)
    assert by_name["max_pooling2d_1"].passes == ("pool_before_relu", "pool_blocks", "absorb_relu")
    assert by_name["conv2d_1"].passes == ("pool_blocks",) and by_name["conv2d_1"].runs_in is None
    assert by_name["conv2d_3"].passes == () and by_name["conv2d_3 (relu)"].forward_ms > 0


def test_time_command_shows_the_users_names_and_marks_the_rewritten_layers(cli):
    result = cli("time", CONFIGS / "mnist_convnet.yaml", "--batch-size", "2", "--iterations", "1")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "graph passes" in text and "conv2d_1 (relu)" in text
    assert "computed in max_pooling2d_1 (pool_before_relu, absorb_relu)" in text
    assert not re.search(r"(conv2d|dense)_\d_(relu|softmax)", result.output)    # no plan-internal names


def test_an_unknown_pass_name_is_refused():
    model = Model.from_config(CONVNET, passes=("pool_after_relu",))
    with pytest.raises(ValueError, match="pool_before_relu"):
        model.build(np.random.default_rng(0))


def test_summary_command_lists_the_passes_only_when_asked(cli):
    plain = cli("summary", CONFIGS / "mnist_convnet.yaml")
    assert plain.exit_code == 0, plain.output
    assert "(relu)" in plain.output and "pool_blocks" not in plain.output
    assert "conv2d_1_relu" not in plain.output
    listed = cli("summary", CONFIGS / "mnist_convnet.yaml", "--passes")
    assert listed.exit_code == 0, listed.output
    for name in passes.names():
        assert f"{name}:" in listed.output
    assert "'max_pooling2d_1' runs before 'conv2d_1'" in " ".join(listed.output.split())
