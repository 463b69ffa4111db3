"""Text sources, text_vectorization, timeseries windows, and fit/predict/evaluate on raw text."""
import io

import numpy as np
import pytest

from conftest import run_dltrain
from dltrain.errors import ConfigError, DataError
from dltrain.registry import build


def vectorizer(**args):
    return build("preprocessing", {"type": "text_vectorization", **args})


TEXTS = np.array(["The cat sat.", "the CAT ran, the dog sat!", "A dog"], dtype=object)


def test_int_mode_vocabulary_padding_truncation_and_oov():
    v = vectorizer(output_sequence_length=4)
    v.fit(TEXTS)
    assert v.vocabulary[:4] == ["", "[UNK]", "the", "cat"]      # by frequency, ties by token
    out = v.transform(np.array(["the dog flew", "the the the the the"], dtype=object))
    index = {t: i for i, t in enumerate(v.vocabulary)}
    np.testing.assert_array_equal(out, [[index["the"], index["dog"], 1, 0], [index["the"]] * 4])
    assert out.dtype == np.float32


def test_max_tokens_counts_the_reserved_entries():
    v = vectorizer(max_tokens=4, output_sequence_length=3)
    v.fit(TEXTS)
    assert v.vocabulary == ["", "[UNK]", "the", "cat"]


def test_bag_of_words_modes():
    docs = np.array(["a b b", "b c"], dtype=object)
    hot, count, tfidf = (vectorizer(max_tokens=6, output_mode=m) for m in ("multi_hot", "count", "tf_idf"))
    for v in (hot, count, tfidf):
        v.fit(docs)
    assert hot.vocabulary == ["[UNK]", "b", "a", "c"]
    x = np.array(["b b a zzz"], dtype=object)
    np.testing.assert_array_equal(hot.transform(x), [[1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(count.transform(x), [[1, 2, 1, 0, 0, 0]])
    idf_b, idf_a = np.log1p(2 / 3), np.log1p(2 / 2)
    oov = np.mean([idf_b, idf_a, np.log1p(2 / 2)])
    np.testing.assert_allclose(tfidf.transform(x), [[oov, 2 * idf_b, idf_a, 0, 0, 0]], rtol=1e-6)


def test_character_split_and_standardize_options():
    v = vectorizer(split="character", standardize="lower", output_sequence_length=5)
    v.fit(np.array(["Ab, a"], dtype=object))
    assert set(v.vocabulary[2:]) == {"a", "b", ",", " "}
    assert vectorizer(standardize=None, output_sequence_length=2).tokens("A, b") == ["A,", "b"]


def test_vocabulary_survives_a_pickle_free_checkpoint():
    v = vectorizer(max_tokens=50, output_mode="tf_idf")
    v.fit(np.array(["naïve café", "café ☕ crème"], dtype=object))
    buffer = io.BytesIO()
    np.savez(buffer, **v.state_dict())
    buffer.seek(0)
    loaded = np.load(buffer, allow_pickle=False)
    w = vectorizer(max_tokens=50, output_mode="tf_idf")
    w.load_state_dict({k: loaded[k] for k in loaded.files})
    assert w.vocabulary == v.vocabulary
    x = np.array(["café crème ☕"], dtype=object)
    np.testing.assert_array_equal(w.transform(x), v.transform(x))


def test_config_errors():
    with pytest.raises(ConfigError, match="output_sequence_length"):
        vectorizer()
    with pytest.raises(ConfigError, match="max_tokens"):
        vectorizer(output_mode="multi_hot")
    with pytest.raises(DataError, match="not texts"):
        vectorizer(output_sequence_length=3).fit(np.zeros((2, 3)))


def test_text_lines_labels_blank_lines_and_encoding(tmp_path):
    f = tmp_path / "sms.txt"
    f.write_text("ham\tsee you\n\nspam\tWIN a prize\r\nham\tok\n", encoding="utf-8")
    source = build("source", {"type": "text_lines", "path": str(f), "label": "first"})
    x, y = source.load(tmp_path)
    assert list(x) == ["see you", "WIN a prize", "ok"]
    assert list(y) == [0, 1, 0] and source.class_names == ["ham", "spam"]
    assert source.sample_names == [1, 3, 4]                        # the blank line 2 is skipped
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(DataError, match="line 2: not valid utf-8"):
        build("source", {"type": "text_lines", "path": str(bad)}).load(tmp_path)
    assert list(build("source", {"type": "text_lines", "path": str(bad), "encoding": "latin-1"})
                .load(tmp_path)[0]) == ["fine", "café"]


def test_text_csv_quoting_nel_and_unseen_labels(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('text,label\n"a, ""quoted"" text",pos\nline\u0085same row,neg\n"two\nlines",pos\n',
                 encoding="utf-8")
    train = build("source", {"type": "text_csv", "path": str(f)})
    x, y = train.load(tmp_path)
    assert list(x) == ['a, "quoted" text', "line\u0085same row", "two\nlines"]
    assert list(y) == [1, 0, 1] and train.class_names == ["neg", "pos"]
    other = tmp_path / "other.csv"
    other.write_text("text,label\nhello,pos\nhmm,meh\n", encoding="utf-8")
    test = build("source", {"type": "text_csv", "path": str(other)})
    test.adopt(train)
    with pytest.raises(DataError, match="'meh' was never seen in training"):
        test.load(tmp_path)


def test_text_folder_classes_and_empty_class(tmp_path):
    for cls, texts in {"neg": ["bad", "awful"], "pos": ["good"]}.items():
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "data" / cls / f"{i}.txt").write_text(text)
    source = build("source", {"type": "text_folder", "path": "data"})
    x, y = source.load(tmp_path)
    assert list(x) == ["bad", "awful", "good"] and list(y) == [0, 0, 1]
    (tmp_path / "data" / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .txt files"):
        source.load(tmp_path)


def test_timeseries_windows(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("t,v\n" + "".join(f"{i},{10 * i}\n" for i in range(10)))
    source = build("source", {"type": "timeseries", "path": str(f), "target": "v", "window": 3,
                              "horizon": 2, "stride": 2, "columns": ["v"]})
    x, y = source.load(tmp_path)
    assert x.shape == (3, 3, 1)
    np.testing.assert_array_equal(x[1, :, 0], [20, 30, 40])
    np.testing.assert_array_equal(y[:, 0], [40, 60, 80])       # 2 steps after each window's end


CONFIG = """
name: tiny-text
seed: 3
data:
  train: {type: text_csv, path: train.csv}
  validation: {split: 0.25}
  preprocessing:
    - {type: text_vectorization, max_tokens: 30, output_sequence_length: 6}
model:
  input_shape: [6]
  layers:
    - {type: embedding, input_dim: 30, output_dim: 4, mask_zero: true}
    - {type: gru, units: 4}
    - {type: dense, units: 2, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.05}
metrics: [accuracy]
training: {epochs: 15, batch_size: 8}
"""


def test_fit_predict_evaluate_on_raw_text(tmp_path):
    rows = [("great fun loved it", "pos"), ("awful boring hated it", "neg")] * 12
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
    (tmp_path / "config.yaml").write_text(CONFIG)
    fit = run_dltrain("fit", "config.yaml", "--quiet", "--run-dir", "run", cwd=tmp_path)
    assert fit.returncode == 0, fit.stdout + fit.stderr
    (tmp_path / "new.txt").write_text("loved it, great\n\nboring and awful\n")
    out = run_dltrain("predict", "run", "new.txt", "--format", "json", "--output", "p.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import json

    records = json.loads((tmp_path / "p.json").read_text())
    assert [(r["row"], r["prediction"]) for r in records] == [(1, "pos"), (3, "neg")]
    (tmp_path / "unseen.csv").write_text("text,label\nso so,meh\n")
    bad = run_dltrain("evaluate", "run", "--data", "unseen.csv", cwd=tmp_path)
    assert bad.returncode == 3 and "never seen in training" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "short.yaml").write_text(CONFIG.replace("input_shape: [6]", "input_shape: [7]"))
    wrong = run_dltrain("fit", "short.yaml", "--quiet", "--run-dir", "run2", cwd=tmp_path)
    assert wrong.returncode == 2 and "produces samples of shape (6,)" in wrong.stderr


@pytest.mark.slow
def test_sms_spam_bow_reaches_097(shared_data, tmp_path):
    from pathlib import Path

    from dltrain import api

    config = Path(__file__).resolve().parent.parent / "configs" / "sms_spam_bow.yaml"
    result = api.fit(str(config), run_dir=tmp_path / "run")
    assert result.test["accuracy"] >= 0.97
