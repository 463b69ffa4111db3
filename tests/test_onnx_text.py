"""text_vectorization written as ONNX string operators: onnxruntime's output of the step equals
``TextVectorization.transform`` exactly, on tricky texts and on every raw text of the example
datasets, in every mode and standardization; a step that cannot be written so leaves the model
taking token ids, and says so."""
import csv
import json
import string
import numpy as np
import pytest

from conftest import CONFIGS

ort = pytest.importorskip("onnxruntime")
DATA = CONFIGS.parent.parent / "shared" / "data" / "text"        # where the example configs read it

TRICKY = ["Hello, World!", "hello world", "Don't stop... believing", "", "   ", "!!!", "a-b_c", "x",
          "ÉCOLE école Straße İstanbul", "a\tb\nc\u00a0d\u3000e\x85f\x1cg\u2028h", "  leading and trailing  ",
          " ".join(f"w{i}" for i in range(80)), "unknown-words here!!", "£5 prize!!! call now 0800",
          "ü Ü über ÜBER", "鈥 ┾ 〨 emoji 😀 text", "(brackets) [and] {braces}", "tab\tseparated\twords",
          "UPPER lower MiXeD", "w1,w2;w3:w4", string.punctuation, "hello" + string.punctuation + "world",
          "ΟΔΟΣ ΟΔΟΣ. ΣΑ", "o'Σ"]
TRAIN = TRICKY + ["w1 w2 w3 hello world stop", "call now prize", "über straße école"] * 3
MODES = [{"output_mode": "int", "output_sequence_length": 12}, {"output_mode": "int", "output_sequence_length": 3},
         {"output_mode": "multi_hot", "max_tokens": 40}, {"output_mode": "count", "max_tokens": 40},
         {"output_mode": "tf_idf", "max_tokens": 40}, {"output_mode": "multi_hot", "max_tokens": 5}]


def _strings(texts):
    array = np.empty(len(texts), dtype=object)
    array[:] = list(texts)
    return array


def _step(train=TRAIN, **arguments):
    from dltrain.data.text_vectorization import TextVectorization

    step = TextVectorization(**arguments)
    step.fit(_strings(train))
    return step


def _session(build, output_dtype=np.float32, shape=("batch", "width")):
    """An onnxruntime session of a graph from (batch,) strings 'input' to build(g, 'input')."""
    from dltrain.export import onnx_text
    from dltrain.export.onnx_graph import Graph

    g = Graph(np.float32, onnx_text.OPSET)
    y = g.identity(build(g, "input"), "output")
    data = g.serialize("t", [("input", object, ["batch"])], [(y, output_dtype, list(shape))], {}, "0")
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _vectorized(step, texts):
    from dltrain.export import onnx_text

    session = _session(lambda g, x: onnx_text.text_vectorization(g, step, x, "text"))
    return session.run(None, {"input": _strings(texts)})[0]


@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower", "strip_punctuation", None])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: "-".join(map(str, m.values())))
def test_the_onnx_step_equals_transform_on_tricky_texts(mode, standardize):
    step = _step(standardize=standardize, **mode)
    texts = TRICKY + ["never seen words", "HELLO, WORLD", "w79 " * 30]
    got = _vectorized(step, texts)
    expected = step.transform(_strings(texts))
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_a_batch_of_only_empty_texts_of_one_and_of_none():
    step = _step(output_mode="int", output_sequence_length=4)
    for texts in (["", ""], [" \t "], ["Hello"], []):
        np.testing.assert_array_equal(_vectorized(step, texts), step.transform(_strings(texts)))


def _dataset_texts(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    with open(path, newline="", encoding="utf-8") as f:
        return [row[0] for row in list(csv.reader(f))[1:]]


@pytest.mark.parametrize("name, mode", [("sms_spam.csv", MODES[0]), ("sentiment_sentences.csv", MODES[0]),
                                        ("sentiment_sentences.csv", MODES[2])], ids=["sms-int", "sentiment-int",
                                                                                   "sentiment-multi_hot"])
def test_every_raw_text_of_the_example_datasets(name, mode):
    texts = _dataset_texts(name)
    step = _step(texts, **{**mode, "max_tokens": 10000} if "max_tokens" in mode else mode)
    np.testing.assert_array_equal(_vectorized(step, texts), step.transform(_strings(texts)))


def _standardized(texts, standardize):
    from dltrain.data.text_vectorization import TextVectorization
    from dltrain.export import onnx_text

    step = TextVectorization(standardize=standardize, output_mode="int", output_sequence_length=1)
    session = _session(lambda g, x: onnx_text.standardized(g, step, x, "text"), object, ["batch"])
    return session.run(None, {"input": _strings(texts)})[0]


def test_lower_casing_equals_str_lower_on_every_unicode_character():
    """Each of the 1,112,064 code points alone (onnxruntime lowers U+0130 otherwise: replaced first)."""
    from dltrain.export import onnx_text

    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    session = _session(lambda g, x: onnx_text.lower(g, x, "text"), object, ["batch"])
    got = session.run(None, {"input": _strings(characters)})[0]
    differ = [(hex(ord(c)), c.lower(), g) for c, g in zip(characters, got) if g != c.lower()]
    assert differ == []


def test_whitespace_splits_where_str_split_does():
    from dltrain.export import onnx_text

    spaces = onnx_text.whitespace()
    assert len(spaces) == 29 and spaces[0] == " "
    step = _step(output_mode="int", output_sequence_length=3, standardize=None, train=["a b"])
    texts = [f"a{c}b" for c in spaces] + [f"a{c}{c}b{c}" for c in spaces]
    np.testing.assert_array_equal(_vectorized(step, texts), np.tile([[2, 3, 0]], (len(texts), 1)).astype(np.float32))


def test_a_capital_sigma_is_lowered_in_context_as_str_lower_does():
    """Final form where it ends a word (a cased letter before, none after, case-ignorable
    characters such as ' . U+0301 U+00AD skipped both ways), small form elsewhere; on random
    strings of such characters."""
    import random

    from dltrain.export import onnx_text

    alphabet = ["Σ", "Σ", "Σ", "Α", "a", "'", ".", " ", "ʰ", "\u0301", "1", "İ", "ς", "-", "x", "\u00ad"]
    rng = random.Random(0)
    texts = ["ΟΔΟΣ", "ΣΑ", "Σ", "ΣΣ", "ΑΣ'", "Α'Σ", "ΑΣ'Α", "", "ΑΣ ΑΣ", "ΑΣΣΑ", "'Σ", "1Σ"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(5000)]
    session = _session(lambda g, x: onnx_text.lower(g, x, "text"), object, ["batch"])
    got = session.run(None, {"input": _strings(texts)})[0]
    assert [(t, g) for t, g in zip(texts, got) if g != t.lower()] == []


def _fit_text_run(tmp_path, **vectorization):
    from dltrain import api

    data = tmp_path / "texts.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([[t, i % 2] for i, t in enumerate(TRAIN * 2)])
    config = {"name": "text", "seed": 1,
              "data": {"train": {"type": "text_csv", "path": str(data)},
                       "preprocessing": [{"type": "text_vectorization", "max_tokens": 200, **vectorization}]},
              "model": {"input_shape": [6], "layers": [
                  {"type": "embedding", "input_dim": 200, "output_dim": 4, "mask_zero": True},
                  {"type": "gru", "units": 3}, {"type": "dense", "units": 1, "activation": "sigmoid"}]},
              "loss": "binary_crossentropy", "optimizer": "adam", "training": {"epochs": 1, "batch_size": 8}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))
    api.fit(str(path), run_dir=tmp_path / "run")
    return tmp_path / "run"


def test_predict_and_the_exported_model_agree_on_tricky_raw_texts(tmp_path, cli):
    from dltrain import api

    run = _fit_text_run(tmp_path, output_mode="int", output_sequence_length=6)
    result = cli("export", run, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    assert "input 'input': string (batch): raw texts" in result.output
    texts = tmp_path / "new.csv"
    with open(texts, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text", "label"], *[[t, 0] for t in TRICKY]])
    expected = api.predict(run, [texts]).outputs
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": _strings(TRICKY)})[0]
    assert float(np.abs(got - expected).max()) <= 1e-5


def test_character_split_falls_back_to_token_ids_and_says_so(tmp_path, cli):
    onnx = pytest.importorskip("onnx")
    from dltrain import api

    run = _fit_text_run(tmp_path, output_mode="int", output_sequence_length=6, split="character")
    result = cli("export", run, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    assert "input 'input': float32 (batch, 6): the output of text_vectorization (token ids" in result.output
    assert "split: character has no ONNX equivalent" in result.output
    model = onnx.load(str(tmp_path / "m.onnx"))
    described = json.loads({p.key: p.value for p in model.metadata_props}["input"])
    assert described["dtype"] == "float32" and "split: character" in described["expects"]
    loaded = api.LoadedRun(run)
    texts = _strings(["ab ba", "Hello"])
    ids = loaded.experiment.pipeline.transform(texts)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": ids})[0]
    np.testing.assert_allclose(got, loaded.model.predict(ids), atol=1e-5, rtol=0)


def test_text_input_ids_exports_the_token_id_model(tmp_path, cli):
    from dltrain import api

    run = _fit_text_run(tmp_path, output_mode="int", output_sequence_length=6)
    result = cli("export", run, "-o", tmp_path / "m.onnx", "--text-input", "ids")
    assert result.exit_code == 0, result.output
    assert "input 'input': float32 (batch, 6)" in result.output and "--text-input ids" in result.output
    loaded = api.LoadedRun(run)
    ids = loaded.experiment.pipeline.transform(_strings(TRICKY))
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": ids})[0]
    np.testing.assert_allclose(got, loaded.model.predict(ids), atol=1e-5, rtol=0)
