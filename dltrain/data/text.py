"""Text sources: a folder of .txt files per class, a CSV text column, one sample per line.

Each yields x as a 1-D object array of Python strings (kept in memory, never saved: the
``text_vectorization`` step turns it into numbers) and y as class indices. String labels and
folder names become classes in sorted order; ``class_names`` keeps them for the checkpoint, and
a source reading evaluation data maps its labels through the training classes (``known_classes``)
so a label never seen in training is a DataError, not a silent wrong index.

Documented behaviours: blank lines of a line file are skipped (predictions name the line number
of each sample); an empty text in a CSV is an empty sample; a class folder with no .txt file and
text that is not valid in ``encoding`` are DataErrors naming the file (and line).
"""
import csv
import io

import numpy as np

from dltrain.data.sources import Source, _is_float
from dltrain.errors import DataError
from dltrain.registry import register, suggest


def _read(path, encoding):
    """The text of a file; a DataError naming the line of the first undecodable byte."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid {encoding} text ({error.reason} at byte "
                        f"{error.start})", fix="convert the file to UTF-8 (e.g. `iconv -f latin1 -t "
                        "utf-8`), or set the source's `encoding` (e.g. latin-1).") from None
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}", fix="use utf-8, latin-1, cp1252, ...") from None


def _strings(texts):
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    return array


class TextSource(Source):
    """Shared label handling: numbers stay numbers, strings become sorted classes."""

    #: classes of the training data, set on sources that read evaluation data
    known_classes = None
    family = "text"
    fallback_rank = 1

    def _labels(self, raw, file):
        if self.known_classes is not None:
            names = [str(n) for n in self.known_classes]
            unknown = sorted(set(raw) - set(names))
            if unknown:
                raise DataError(f"{file}: label {unknown[0]!r} was never seen in training",
                                expected="one of " + ", ".join(names),
                                fix="remove those samples, or retrain with them.")
            self.class_names = names
            index = {name: i for i, name in enumerate(names)}
            return np.array([index[v] for v in raw], dtype=np.int64)
        if raw and all(_is_float(v) for v in raw):
            y = np.array([float(v) for v in raw])
            if np.all(y == np.round(y)):
                return y.astype(np.int64)
            return y.astype(np.float32)
        names = sorted(set(raw))
        self.class_names = names
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in raw], dtype=np.int64)

    @property
    def fitted(self):
        """What the checkpoint keeps of the training source (api saves it as source_state)."""
        return None if self.class_names is None else {"class_names": list(self.class_names)}

    @fitted.setter
    def fitted(self, value):
        self.class_names = (value or {}).get("class_names")

    def adopt(self, train):
        """Read labels through the training classes (for validation, test and predict files)."""
        if getattr(train, "class_names", None):
            self.known_classes = list(train.class_names)

    @classmethod
    def for_prediction(cls, path, train):
        source = cls(path) if train is None else cls._like(path, train)
        if train is not None:
            source.adopt(train)
        return source

    @classmethod
    def _like(cls, path, train):
        return cls(path)


@register("text_folder")
class TextFolder(TextSource):
    """A folder with one subfolder per class, each holding .txt files (the aclImdb layout).

    For predict, a folder of .txt files without subfolders reads each file as one sample.

    Args:
        path: the folder, relative to the config.
        encoding: the files' text encoding.
    """

    reads_folders = True

    def __init__(self, path, encoding="utf-8"):
        self.path, self.encoding = path, encoding

    def _files(self, folder):
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt")

    def load(self, base):
        root = self.resolve(base)
        if not root.is_dir():
            raise DataError(f"{root} is not a folder", fix="text_folder reads a folder of class folders.")
        classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{root} has no class folders",
                            fix="put the .txt files of each class in a subfolder named for it.")
        texts, raw, self.sample_names = [], [], []
        for folder in classes:
            files = self._files(folder)
            if not files:
                raise DataError(f"class folder {folder} holds no .txt files",
                                fix="add its samples, or remove the empty folder.")
            texts += [_read(f, self.encoding) for f in files]
            raw += [folder.name] * len(files)
            self.sample_names += [f"{folder.name}/{f.name}" for f in files]
        return _strings(texts), self._labels(raw, root)

    def load_features(self, base, expected_features=None):
        root = self.resolve(base)
        if root.is_file():
            self.sample_names = [root.name]
            return _strings([_read(root, self.encoding)])
        files = self._files(root)
        if files:
            self.sample_names = [f.name for f in files]
            return _strings([_read(f, self.encoding) for f in files])
        return self.load(base)[0]

    @classmethod
    def _like(cls, path, train):
        return cls(path, encoding=train.encoding)


@register("text_csv")
class TextCsv(TextSource):
    """One text column (and a label column) of a CSV file with a header, read by a real CSV parser.

    Args:
        path: the CSV file.
        text: the text column, by name or 0-based position.
        label: the label column, by name or position; null for texts only.
        delimiter: the field separator.
        encoding: the file's text encoding.
        drop_duplicates: keep only the first row of each distinct text, so repeated messages
            cannot land on both sides of a train/test split.
    """

    extensions = (".csv", ".tsv")

    def __init__(self, path, text="text", label="label", delimiter=",", encoding="utf-8",
                 drop_duplicates=False):
        from dltrain import check

        self.path, self.text, self.label = path, text, label
        self.delimiter, self.encoding = delimiter, encoding
        self.drop_duplicates = check.boolean("drop_duplicates", drop_duplicates)

    def _column(self, header, key, file):
        if isinstance(key, int) and not isinstance(key, bool):
            if not -len(header) <= key < len(header):
                raise DataError(f"{file} has {len(header)} columns, no column {key}")
            return key % len(header)
        if key not in header:
            raise DataError(f"{file} has no column {key!r}", expected=", ".join(header),
                            fix=suggest(key, header, "name a column of the header line."))
        return header.index(key)

    def _table(self, base, need_label):
        path = self.resolve(base)
        try:
            # StringIO splits lines on \n and \r only (str.splitlines would split on U+0085)
            rows = list(csv.reader(io.StringIO(_read(path, self.encoding), newline=""),
                                   delimiter=self.delimiter))
        except csv.Error as error:
            raise DataError(f"{path}: malformed CSV ({error})") from None
        rows = [r for r in rows if r]
        if len(rows) < 2:
            raise DataError(f"{path} has no rows after its header",
                            fix="give a header line, then one sample per row.")
        header, rows = rows[0], rows[1:]
        text = self._column(header, self.text, path)
        label = self._column(header, self.label, path) if need_label and self.label is not None else None
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise DataError(f"row {number} of {path} has {len(row)} columns, the header has "
                                f"{len(header)}", fix="quote texts that contain the delimiter.")
        self.sample_names = list(range(2, len(rows) + 2))
        if self.drop_duplicates and need_label:
            first = {}
            for i, row in enumerate(rows):
                first.setdefault(row[text], i)
            keep = sorted(first.values())
            rows = [rows[i] for i in keep]
            self.sample_names = [self.sample_names[i] for i in keep]
        return path, [r[text] for r in rows], None if label is None else [r[label] for r in rows]

    def load(self, base):
        path, texts, raw = self._table(base, need_label=True)
        return _strings(texts), None if raw is None else self._labels(raw, path)

    def load_features(self, base, expected_features=None):
        return _strings(self._table(base, need_label=False)[1])

    @classmethod
    def _like(cls, path, train):
        return cls(path, text=train.text, label=train.label, delimiter=train.delimiter,
                   encoding=train.encoding)


@register("text_lines")
class TextLines(TextSource):
    """One sample per line of a text file; blank lines are skipped.

    With ``label: first`` or ``label: last`` each line is LABEL<separator>TEXT or
    TEXT<separator>LABEL (the UCI SMS and sentiment files), read without quote handling.

    Args:
        path: the text file.
        label: where each line's label is: null (texts only), first or last.
        separator: what separates the label from the text.
        encoding: the file's text encoding.
    """

    extensions = (".txt", ".text")

    def __init__(self, path, label=None, separator="\t", encoding="utf-8"):
        from dltrain import check

        self.path = path
        self.label = check.one_of("label", label, (None, "first", "last"))
        self.separator, self.encoding = separator, encoding

    def _lines(self, base):
        path = self.resolve(base)
        lines = _read(path, self.encoding).split("\n")
        kept = [(number, line.rstrip("\r")) for number, line in enumerate(lines, start=1)
                if line.strip()]
        if not kept:
            raise DataError(f"{path} holds no text", fix="give one sample per line.")
        self.sample_names = [number for number, _ in kept]
        return path, kept

    def load(self, base):
        path, kept = self._lines(base)
        if self.label is None:
            return _strings([line for _, line in kept]), None
        texts, raw = [], []
        for number, line in kept:
            if self.separator not in line:
                raise DataError(f"{path}, line {number} has no label: no {self.separator!r} in it",
                                fix="write LABEL<separator>TEXT on every line, or set `label: null`.")
            label, text = line.split(self.separator, 1) if self.label == "first" \
                else line.rsplit(self.separator, 1)[::-1]
            texts.append(text)
            raw.append(label.strip())
        return _strings(texts), self._labels(raw, path)

    def load_features(self, base, expected_features=None):
        """Each line is one text (for predict, labels are not expected in the file)."""
        return _strings([line for _, line in self._lines(base)[1]])
