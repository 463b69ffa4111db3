"""text_vectorization as ONNX nodes, so that an exported text model takes raw strings (batch,).

Every step of ``TextVectorization.tokens`` and ``transform`` is written with standard operators
(onnxruntime runs them all), in the same order:

- lower-casing: StringNormalizer (LOWER, locale C.UTF-8). It lowers each character by itself,
  and Python's ``str.lower`` differs from it in two places, both written out first: U+0130 (I
  with a dot above; Python gives i + U+0307), and the Greek capital sigma, which Python lowers to
  the final form where it ends a word (Unicode's Final_Sigma: a cased letter before it and none
  after it, case-ignorable characters skipped): the texts are split at each sigma and joined
  back with the form a RegexFullMatch of the pieces on either side gives. The classes of cased
  and case-ignorable characters are read from this Python's own ``str.lower``.
- punctuation stripping: Python deletes the 32 ASCII punctuation characters. No ONNX operator
  replaces text, so for each of them the texts are split at it (StringSplit) and the pieces
  concatenated back without it (a Loop of StringConcat).
- splitting: ``str.split()`` splits at 29 whitespace characters, StringSplit at spaces only: the
  other 28 are turned into spaces the same way first.
- the vocabulary: LabelEncoder (ai.onnx.ml), a token not in it -> [UNK]'s index.
- int mode: the ids padded with 0 (Pad) and cut to output_sequence_length (Slice); the other
  modes: one ScatterElements (reduction add) of each real token into (batch, max_tokens), then
  Min 1 (multi_hot) or times idf (tf_idf).

``split: character`` has no ONNX equivalent: ``unsupported(step)`` says so, and the exported model
takes the step's output instead (its metadata and ``dltrain export`` say which).
"""
import string
from functools import lru_cache

import numpy as np

from dltrain.export.onnx_graph import Graph

OPSET = 20                         # StringSplit, StringConcat
LOCALE = "C.UTF-8"                 # present on every glibc system; en_US.UTF-8 often is not
#: characters whose str.lower() is not what StringNormalizer gives: replaced by Python's first
LOWER_FIRST = {"\u0130": "i\u0307"}
SIGMA, SMALL, FINAL = "\u03a3", "\u03c3", "\u03c2"


@lru_cache(maxsize=1)
def whitespace():
    """The characters ``str.split()`` splits at (str.isspace), space first."""
    found = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    return [" "] + [c for c in found if c != " "]


def unsupported(step):
    """Why ``step`` cannot be written as ONNX nodes, or None when it can."""
    if step.split != "whitespace":
        return f"text_vectorization with split: {step.split} has no ONNX equivalent"
    if step.vocabulary is None:
        return "text_vectorization was not fitted"
    return None


def _rejoin(g, x, pieces, hint, piece_at):
    """The strings of ``x`` rebuilt from their ``pieces`` (B, K): a Loop over the K columns that
    appends ``piece_at(body, i, count)`` (B,) to each text (``count``: K, for the body)."""
    count = g.op("Squeeze", [g.op("Shape", [pieces], hint, start=1, end=2)], hint)    # K
    empty = g.op("Expand", [g.const(np.array([""], dtype=object), f"{hint}/empty"), g.op("Shape", [x], hint)], hint)
    body = Graph(g.dtype, g.opset, parent=g)
    i, go, text = body.name(f"{hint}/i"), body.name(f"{hint}/go"), body.name(f"{hint}/text")
    joined = body.op("StringConcat", [text, piece_at(body, i, count)], hint)
    go_on = body.op("Identity", [go], hint)
    loop = body.body(f"{hint}/join", [(i, np.int64, []), (go, np.bool_, []), (text, object, ["batch"])],
                     [(go_on, np.bool_, []), (joined, object, ["batch"])])
    return g.op("Loop", [count, "", empty], hint, body=loop)


def _replace(g, x, old, new, hint):
    """Every ``old`` in the strings ``x`` replaced by ``new`` (StringSplit at it, then the pieces
    concatenated with ``new`` between them)."""
    pieces, counts = g.op("StringSplit", [x], hint, outputs=2, delimiter=old)       # (B, K) and (B,)

    def piece_at(body, i, count):
        piece = body.op("Gather", [pieces, i], hint, axis=1)                       # (B,)
        if not new:
            return piece
        # a separator before each of a text's pieces but its first
        between = body.op("And", [body.op("Greater", [i, body.ints(0, f"{hint}/zero")], hint),
                                  body.op("Less", [i, counts], hint)], hint)                  # (B,)
        separator = body.op("Gather", [body.const(np.array(["", new], dtype=object), f"{hint}/separators"),
                                       body.op("Cast", [between], hint, to=7)], hint, axis=0)
        return body.op("StringConcat", [separator, piece], hint)

    return _rejoin(g, x, pieces, hint, piece_at)


@lru_cache(maxsize=1)
def _sigma_classes():
    """RE2 classes (cased and not case-ignorable, case-ignorable), as this Python's str.lower
    decides a sigma's form: 'cΣ' ends in the final form iff c is cased and not ignorable, and
    'AcΣ' iff c is that or ignorable (skipped back to the cased A)."""
    cased, ignorable = [], []
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        c = chr(code)
        if (c + SIGMA).lower()[-1] == FINAL:
            cased.append(code)
        elif ("A" + c + SIGMA).lower()[-1] == FINAL:
            ignorable.append(code)
    return _regex_class(cased), _regex_class(ignorable)


def _regex_class(codes):
    ranges, start = [], codes[0]
    for previous, code in zip(codes, codes[1:] + [None]):
        if code is None or code != previous + 1:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{previous:x}}}" if previous != start else ""))
            start = code
    return "[" + "".join(ranges) + "]"


def _final_sigma(g, x, hint):
    """Every capital sigma of ``x`` as str.lower writes it: final where it ends a word, else small."""
    cased, ignorable = _sigma_classes()
    pieces, counts = g.op("StringSplit", [x], hint, outputs=2, delimiter=SIGMA)       # (B, K), (B,)
    ends = g.op("RegexFullMatch", [pieces], hint, pattern=f"(?s).*{cased}{ignorable}*")   # cased before
    starts = g.op("RegexFullMatch", [pieces], hint, pattern=f"{ignorable}*{cased}(?s).*")  # cased after
    only = g.op("RegexFullMatch", [pieces], hint, pattern=f"{ignorable}*")           # skipped whole

    def piece_at(body, i, count):
        one = body.ints(1, f"{hint}/one")
        after = body.op("Min", [body.op("Add", [i, one], hint), body.op("Sub", [count, one], hint)], hint)

        def at(tensor, index):                                                          # (B,)
            return body.op("Gather", [tensor, index], hint, axis=1)

        last = body.op("Sub", [counts, one], hint)                                      # (B,) last piece
        before = body.op("Or", [at(ends, i), body.op("And", [at(only, i), body.op("Greater", [
            i, body.ints(0, f"{hint}/zero")], hint)], hint)], hint)    # a piece, or the sigma before it
        next_cased = body.op("Or", [at(starts, after), body.op("And", [at(only, after), body.op("Less", [
            body.op("Add", [i, one], hint), last], hint)], hint)], hint)   # a piece, or the sigma after it
        final = body.op("And", [before, body.op("Not", [next_cased], hint)], hint)
        between = body.op("Cast", [body.op("Less", [i, last], hint)], hint, to=7)     # a sigma follows
        form = body.op("Mul", [between, body.op("Add", [one, body.op("Cast", [final], hint, to=7)], hint)], hint)
        sigma = body.op("Gather", [body.const(np.array(["", SMALL, FINAL], dtype=object), f"{hint}/forms"), form],
                        hint, axis=0)
        return body.op("StringConcat", [at(pieces, i), sigma], hint)

    return _rejoin(g, x, pieces, hint, piece_at)


def lower(g, x, hint):
    """``str.lower`` of every string of ``x``."""
    x = _final_sigma(g, x, f"{hint}/sigma")
    for old, new in LOWER_FIRST.items():
        x = _replace(g, x, old, new, f"{hint}/lower_first")
    # onnxruntime's StringNormalizer refuses an empty batch: one "" more, taken off after
    padded = g.op("Concat", [x, g.const(np.array([""], dtype=object), f"{hint}/one_more")], hint, axis=0)
    lowered = g.op("StringNormalizer", [padded], f"{hint}/lower", case_change_action="LOWER", locale=LOCALE)
    return g.op("Slice", [lowered, g.ints([0], f"{hint}/start"), g.ints([-1], f"{hint}/end")], hint)


def standardized(g, step, x, hint):
    """The strings ``x`` as ``step.tokens`` splits them, with spaces for every whitespace."""
    if step.standardize in ("lower", "lower_and_strip_punctuation"):
        x = lower(g, x, hint)
    if step.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
        for character in string.punctuation:
            x = _replace(g, x, character, "", f"{hint}/strip")
    for character in whitespace()[1:]:
        x = _replace(g, x, character, " ", f"{hint}/whitespace")
    return x


def text_vectorization(g, step, x, hint):
    """(B,) strings -> the step's (B, output_sequence_length) ids or (B, max_tokens) vectors."""
    tokens, lengths = g.op("StringSplit", [standardized(g, step, x, hint)], hint, outputs=2)   # (B, K), (B,)
    vocabulary = list(step.vocabulary)
    oov = vocabulary.index("[UNK]")
    ids = g.op("LabelEncoder", [tokens], f"{hint}/vocabulary", domain="ai.onnx.ml", keys_strings=vocabulary,
               values_int64s=list(range(len(vocabulary))), default_int64=oov)            # (B, K) int64
    if step.output_mode == "int":           # pads are "" -> index 0 (padding) in int mode
        length = step.output_sequence_length
        padded = g.op("Pad", [ids, g.ints([0, 0, 0, length], f"{hint}/pads")], hint)
        ids = g.op("Slice", [padded, g.ints([0], f"{hint}/start"), g.ints([length], f"{hint}/end"),
                             g.ints([1], f"{hint}/axis")], hint)
        return _as_float(g, ids, hint)
    width = step.max_tokens
    steps = g.op("Range", [g.const(np.int64(0), f"{hint}/zero"), g.op("Squeeze", [g.op("Shape", [tokens], hint,
                 start=1, end=2)], hint), g.const(np.int64(1), f"{hint}/step")], hint)      # (K,)
    real = g.op("Less", [g.op("Unsqueeze", [steps, g.ints([0], f"{hint}/row")], hint),
                         g.op("Unsqueeze", [lengths, g.ints([1], f"{hint}/column")], hint)], hint)   # (B, K)
    ones = g.op("Cast", [real], hint, to=1)
    shape = g.op("Concat", [g.op("Shape", [x], hint), g.ints([width], f"{hint}/width")], hint, axis=0)
    zeros = g.op("ConstantOfShape", [shape], hint, value=np.zeros(1, dtype=np.float32))
    counts = g.op("ScatterElements", [zeros, ids, ones], hint, axis=1, reduction="add")   # (B, max_tokens)
    if step.output_mode == "multi_hot":
        counts = g.op("Min", [counts, g.const(np.float32(1), f"{hint}/one", dtype=np.float32)], hint)
    elif step.output_mode == "tf_idf":
        idf = np.ones(width, dtype=np.float32)
        idf[:len(step.idf)] = step.idf
        counts = g.op("Mul", [counts, g.const(idf, f"{hint}/idf", dtype=np.float32)], hint)
    return _as_float(g, counts, hint)


def _as_float(g, x, hint):
    """float32 as transform gives, then the model's dtype."""
    x = g.op("Cast", [x], hint, to=1)
    return x if g.dtype == np.float32 else g.op("Cast", [x], hint, to=g.type_code)
