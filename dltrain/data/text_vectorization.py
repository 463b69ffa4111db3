"""text_vectorization: raw strings -> token ids or bag-of-words vectors, as Keras's TextVectorization.

The vocabulary is learned on the training split (``Pipeline.fit``) and saved in the checkpoint as
a JSON-encoded uint8 array (no pickle), so ``predict`` tokenizes new text exactly as ``fit`` did.
Tokenizing is per string (Python's str methods); turning tokens into the output array is one
vectorized scatter over all tokens of the batch.
"""
import json
import re
import string
from collections import Counter

import numpy as np

from dltrain import check
from dltrain.data.preprocessing import Preprocessing
from dltrain.errors import ConfigError, DataError
from dltrain.registry import register

PAD, OOV = "", "[UNK]"
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WHITESPACE = re.compile(r"\s+")


@register("text_vectorization")
class TextVectorization(Preprocessing):
    """Standardize, split and index text; the vocabulary is the training split's most frequent tokens.

    Vocabulary layout (Keras's): in ``int`` mode index 0 is padding and 1 the out-of-vocabulary
    token [UNK]; in the other modes index 0 is [UNK]. ``max_tokens`` counts those reserved
    entries. Non-int outputs are always ``max_tokens`` wide, so the model's input_shape is
    [max_tokens] whatever the vocabulary's size.

    Args:
        max_tokens: largest vocabulary size, reserved entries included (required unless
            output_mode is int).
        standardize: lower_and_strip_punctuation, lower, strip_punctuation, or null.
        split: whitespace (words) or character.
        output_mode: int (ids padded with 0 or truncated to output_sequence_length), multi_hot
            (1 where a token occurs), count (occurrences), or tf_idf (count * idf).
        output_sequence_length: length of each int sequence (required in int mode).

    Shapes: (batch,) strings -> (batch, output_sequence_length) or (batch, max_tokens)
    """

    changes_shape = True

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace",
                 output_mode="int", output_sequence_length=None):
        self.max_tokens = None if max_tokens is None else check.positive_int("max_tokens", max_tokens)
        self.standardize = check.one_of("standardize", standardize,
                                        ("lower_and_strip_punctuation", "lower", "strip_punctuation", None))
        self.split = check.one_of("split", split, ("whitespace", "character"))
        self.output_mode = check.one_of("output_mode", output_mode, ("int", "multi_hot", "count", "tf_idf"))
        if output_mode == "int":
            if output_sequence_length is None:
                raise ConfigError("text_vectorization in int mode needs output_sequence_length",
                                  fix="add `output_sequence_length: 200` (sequences are padded or "
                                      "cut to it); the model's input_shape is [that length].")
            self.output_sequence_length = check.positive_int("output_sequence_length",
                                                             output_sequence_length)
        else:
            if self.max_tokens is None:
                raise ConfigError(f"text_vectorization with output_mode {output_mode} needs max_tokens",
                                  fix="add `max_tokens: 10000`; the model's input_shape is [max_tokens].")
            self.output_sequence_length = output_sequence_length
        reserved = 2 if output_mode == "int" else 1
        if self.max_tokens is not None and self.max_tokens <= reserved:
            check._fail("max_tokens", max_tokens, f"an integer > {reserved} (reserved entries included)")
        self.vocabulary = None
        self.idf = None

    # -- tokens --------------------------------------------------------------------------------

    def tokens(self, text):
        """The tokens of one string after standardization."""
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.lower()
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = text.translate(_PUNCTUATION)
        if self.split == "character":
            return list(_WHITESPACE.sub(" ", text).strip())
        return text.split()

    def _strings(self, x):
        x = np.asarray(x)
        if x.ndim != 1 or not (x.dtype == object or x.dtype.kind == "U"):
            raise DataError(f"text_vectorization got {x.dtype} inputs of shape {x.shape[1:]} per "
                            "sample, not texts", fix="use a text source (text_csv, text_lines, "
                            "text_folder), or remove text_vectorization for numeric data.")
        bad = next((i for i, v in enumerate(x) if not isinstance(v, str)), None)
        if bad is not None:
            raise DataError(f"text_vectorization: sample {bad} is {type(x[bad]).__name__}, not text")
        return x

    # -- fit / transform -----------------------------------------------------------------------

    def fit(self, x):
        documents = [self.tokens(text) for text in self._strings(x)]
        counts = Counter(token for tokens in documents for token in tokens)
        reserved = [PAD, OOV] if self.output_mode == "int" else [OOV]
        ranked = sorted((t for t in counts if t not in reserved), key=lambda t: (-counts[t], t))
        if self.max_tokens is not None:
            ranked = ranked[:self.max_tokens - len(reserved)]
        self.vocabulary = reserved + ranked
        self._index = None
        if self.output_mode == "tf_idf":
            frequency = Counter(token for tokens in documents for token in set(tokens))
            df = np.array([frequency.get(t, 0) for t in ranked], dtype=np.float64)
            idf = np.log1p(len(documents) / (1 + df))
            oov = idf.mean() if len(idf) else 0.0          # Keras: [UNK] gets the mean weight
            self.idf = np.concatenate([[oov], idf]).astype(np.float32)

    def _ids(self, texts):
        """(ids of every token of every text, concatenated; token count of each text)."""
        if self.vocabulary is None:
            raise DataError("text_vectorization was used before it was fitted")
        if getattr(self, "_index", None) is None:
            self._index = {token: i for i, token in enumerate(self.vocabulary)}
        oov = self._index[OOV]
        lists = [[self._index.get(t, oov) for t in self.tokens(text)] for text in texts]
        lengths = np.array([len(ids) for ids in lists], dtype=np.int64)
        flat = np.fromiter((i for ids in lists for i in ids), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def transform(self, x):
        texts = self._strings(x)
        flat, lengths = self._ids(texts)
        rows = np.repeat(np.arange(len(texts)), lengths)                 # sample of each token
        if self.output_mode == "int":
            length = self.output_sequence_length
            starts = np.cumsum(lengths) - lengths
            position = np.arange(len(flat)) - np.repeat(starts, lengths)  # index within its text
            keep = position < length
            out = np.zeros((len(texts), length), dtype=np.float32)
            out[rows[keep], position[keep]] = flat[keep]
            return out
        width = self.max_tokens
        counts = np.bincount(rows * width + flat, minlength=len(texts) * width)
        out = counts.reshape(len(texts), width).astype(np.float32)
        if self.output_mode == "multi_hot":
            np.minimum(out, 1, out=out)
        elif self.output_mode == "tf_idf":
            out[:, :len(self.idf)] *= self.idf
        return out

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self):
        if self.vocabulary is None:
            return {}
        encoded = np.frombuffer(json.dumps(self.vocabulary).encode("utf-8"), dtype=np.uint8)
        return {"vocabulary": encoded, "idf": self.idf}

    def load_state_dict(self, state):
        if "vocabulary" in state:
            self.vocabulary = json.loads(np.asarray(state["vocabulary"], dtype=np.uint8).tobytes())
            self._index = None
        if "idf" in state:
            self.idf = np.asarray(state["idf"], dtype=np.float32)

    def output_shape(self):
        return (self.output_sequence_length,) if self.output_mode == "int" else (self.max_tokens,)
