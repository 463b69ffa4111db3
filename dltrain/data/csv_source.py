"""The ``csv`` source: rows of a CSV file, its header, delimiter and column kinds learned from the
training file and applied to every later one (validation, test, evaluate --data, predict).

The cells are read by ``table.Table``; later files whose features are all numeric are parsed by
numpy's C reader instead (``csv_stream``), with the same results.
"""
from typing import Optional, Union

from dltrain.data import csv_columns, csv_labels, csv_stream, table
from dltrain.data.sources import Source
from dltrain.errors import ConfigError
from dltrain.registry import register


@register("csv")
class Csv(Source):
    """Rows of a CSV file: header and delimiter detected, string columns one-hot encoded.

    Args:
        path: the CSV file.
        label: the label column, by name or 0-based position (-1, the last, by default);
            null for a file of features only. String labels become class names.
        features: the feature columns (names or positions); null for every other column.
        delimiter: the field separator, or auto to detect it (, ; tab |).
        header: auto (detected), true or false; without one, columns are named c0, c1, ...
        categorical: auto (every column of strings), a list of columns, or null (none).
            Categories are learned from the training rows (held-out fractions excluded) and
            one-hot encoded.
        missing: empty or NA cells: error, or fill by mean, median or constant (fill_value),
            with the value learned from the training rows.
        fill_value: the constant for ``missing: constant``.
        allow_nonfinite: accept inf values instead of rejecting the file.
    """

    family = "table"

    def __init__(self, path, label: Union[int, str, None] = -1, features: Optional[list] = None,
                 delimiter="auto", header: Union[bool, str] = "auto",
                 categorical: Union[str, list, None] = "auto", missing="error",
                 fill_value: Union[float, str] = 0.0, allow_nonfinite=False):
        self.path, self.label, self.features = path, label, features
        self.delimiter, self.header, self.categorical = delimiter, header, categorical
        self.missing, self.fill_value, self.allow_nonfinite = missing, fill_value, allow_nonfinite
        table.check_settings(self)
        #: what the training file taught: columns, kinds, categories, fill values, class names
        self.fitted = None

    @property
    def class_names(self):
        return (self.fitted or {}).get("class_names")

    def adopt(self, train):
        """Use what the training source learned (for validation, test and predict files)."""
        if isinstance(train, Csv) and train.fitted is not None:
            self.fitted = train.fitted

    def _columns(self, data, label):
        if self.features is None:
            return [i for i in range(len(data.names)) if i != label]
        if not isinstance(self.features, list):
            raise ConfigError("features must be a list of column names or positions")
        return [data.index(f, "features") for f in self.features]

    def load(self, base):
        path = self.resolve(base)
        learning = self.fitted is None
        streamed = None if learning else csv_stream.labelled(self, path)   # numeric: no cell strings
        if streamed is not None:
            self._learned_from = None
            return streamed
        data = table.Table(path, self.delimiter, self.header)
        if learning:
            label = None if self.label is None else data.index(self.label, "label")
            self.fitted = table.fit_columns(self, data, self._columns(data, label))
            self.fitted.update(class_names=None, label=None if label is None else data.names[label],
                               label_index=label)
            columns = [data.index(name, "features") for name in self.fitted["columns"]]
        else:                  # a later file: columns by the training header's names, or position
            label = csv_columns.label_column(data, self.fitted, self.label, needed=True)
            columns = csv_columns.feature_columns(data, self.fitted, label)
        x = table.features(self, data, self.fitted, columns)
        self._learned_from = (data, columns) if learning else None
        return x, (None if label is None else csv_labels.labels(data, label, self.fitted, learning))

    def fit_rows(self, rows):
        """Learn categories and fill values again from the training ``rows`` of the file only
        (validation/test fractions were held out of it); the re-encoded features of every row,
        or None when there is nothing to redo."""
        learned, self._learned_from = getattr(self, "_learned_from", None), None
        if learned is None or len(rows) == len(learned[0].cells):
            return None
        return table.refit(self, *learned, rows)

    def load_features(self, base, expected_features=None):
        """The features of a CSV, with or without its label column (found by name or width)."""
        path = self.resolve(base)
        streamed = csv_stream.features(self, path)       # numeric files: in chunks, no cell strings
        if streamed is not None:
            return streamed
        data = table.Table(path, self.delimiter, self.header)
        if self.fitted is None:
            label = data.index(self.label, "label") if self.label is not None and \
                len(data.names) == (expected_features or 0) + 1 else None
            columns = self._columns(data, label)
            self.fitted = table.fit_columns(self, data, columns)
        else:
            label = csv_columns.label_column(data, self.fitted, self.label, needed=False)
            columns = csv_columns.feature_columns(data, self.fitted, label)
        return table.features(self, data, self.fitted, columns)

    @classmethod
    def for_prediction(cls, path, train):
        if train is None:
            return cls(path)
        source = cls(path, label=train.label, features=train.features, delimiter=train.delimiter,
                     header=train.header, categorical=train.categorical, missing=train.missing,
                     fill_value=train.fill_value, allow_nonfinite=train.allow_nonfinite)
        source.adopt(train)
        return source


Csv.extensions = (".csv", ".tsv")
