"""CSV files as they come: header and delimiter detected, categorical columns, missing values.

What a CSV source learns from the training file (feature columns, categories of string columns,
fill values for missing cells, class names of string labels) is its ``fitted`` record: saved in
the checkpoint and reused, unchanged, for the validation and test files and by ``predict``.
Every problem is a DataError naming the file, the row (and line) and the column; no cell ever
turns into a silent NaN.
"""
import csv

import numpy as np

from dltrain import check
from dltrain.data.arrays import check_finite
from dltrain.errors import ConfigError, DataError

MISSING = ("", "na", "n/a", "nan", "null", "none", "?")
MISSING_POLICIES = ("error", "mean", "median", "constant")


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


class Table:
    """The cells of a CSV file: names (n_columns,), cells (rows, columns) of str, line numbers."""

    def __init__(self, path, delimiter="auto", header="auto", limit=None):
        """``limit``: read only the first rows (the header and a sample: csv_stream.py)."""
        self.path = path
        rows, self.lines, text_end, self.delimiter = _read(path, delimiter, limit)
        if not rows:
            raise DataError(f"{path} is empty", fix="give a CSV file with a header line and rows.")
        self.has_header = _has_header(rows) if header == "auto" else bool(header)
        width = len(rows[0])
        self.names = [c.strip() for c in rows[0]] if self.has_header \
            else [f"c{i}" for i in range(width)]
        if self.has_header:
            rows, self.lines = rows[1:], self.lines[1:]
        widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        wrong = np.flatnonzero(widths != width)
        if wrong.size:
            r = int(wrong[0])
            if r == len(rows) - 1 and widths[r] < width and not text_end and limit is None:
                raise DataError(f"{path} ends mid-row: {self.at(r)} has {widths[r]} of {width} "
                                f"columns and no line end", fix="the file was cut short; "
                                "re-export or re-download it.")
            raise DataError(f"{path}, {self.at(r)} has {widths[r]} columns, the "
                            f"{'header' if self.has_header else 'first row'} has {width}",
                            fix="every row needs one value per column; quote values that "
                                "contain the delimiter.")
        if not rows:
            raise DataError(f"{path} has a header but no rows", fix="add data rows.")
        self.cells = np.char.strip(np.array(rows, dtype=str))

    def at(self, r):
        """'row 7 (line 8)' for data row index r."""
        row = r if self.row_numbers is None else int(self.row_numbers[r])
        return f"row {row + 1} (line {self.lines[r]})"

    row_numbers = None          # a subset's rows in the file (see ``rows``)

    def rows(self, indices):
        """The same table restricted to data rows ``indices`` (messages keep the file's rows)."""
        subset = object.__new__(Table)
        subset.__dict__.update(self.__dict__)
        indices = np.asarray(indices)
        subset.cells = self.cells[indices]
        subset.lines = [self.lines[i] for i in indices]
        subset.row_numbers = indices
        return subset

    def index(self, column, what):
        """Position of a column given by name or 0-based (negative from the end) position."""
        if isinstance(column, int) and not isinstance(column, bool):
            index = column if column >= 0 else len(self.names) + column
            if not 0 <= index < len(self.names):
                raise DataError(f"{self.path} has {len(self.names)} columns, no column {column}",
                                fix=f"set `{what}` to a position below {len(self.names)}.")
            return index
        if column not in self.names:
            from dltrain.registry import suggest

            raise DataError(f"{self.path} has no column {column!r}", expected=", ".join(self.names),
                            fix=suggest(str(column), self.names,
                                        f"set `{what}` to a column of the header."))
        return self.names.index(column)

    def missing(self, c):
        return np.isin(np.char.lower(self.cells[:, c]), MISSING)

    def numbers(self, c, rows=None):
        """The column as float64 (rows: a mask of the cells to convert); names the first bad cell."""
        cells = self.cells[:, c] if rows is None else self.cells[rows, c]
        try:
            return cells.astype(np.float64)
        except ValueError:
            positions = np.arange(len(self.cells)) if rows is None else np.flatnonzero(rows)
            bad = next(i for i, text in zip(positions, cells) if not _is_number(text))
            raise DataError(f"{self.path}, {self.at(bad)}, column {self.names[c]!r}: "
                            f"{str(self.cells[bad, c])!r} is not a number",
                            fix="fix or remove that value, or list the column under `categorical`."
                            ) from None


def _read(path, delimiter, limit=None):
    """(rows, line numbers, whether the text ends with a line break, the delimiter), blank rows
    dropped; only the first ``limit`` rows when it is given."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(1 << 16)
            f.seek(0)
            if delimiter == "auto":
                delimiter = _sniff(sample, str(path))
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            rows, lines = [], []
            try:
                for row in reader:
                    if any(cell.strip() for cell in row):
                        rows.append(row)
                        lines.append(reader.line_num)
                        if limit is not None and len(rows) >= limit:
                            break
            except csv.Error as error:
                start = (lines[-1] if lines else 0) + 1
                raise DataError(f"{path}: malformed CSV in the row starting at line {start} "
                                f"({error}; a quoted field that is never closed reads to the end)",
                                fix="close the quoted field, or double a quote inside one (\"\")."
                                ) from None
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            ends = size == 0 or (f.seek(size - 1), f.read(1))[1] in (b"\n", b"\r")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})",
                        fix="save the file as UTF-8.") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror})") from None
    return rows, lines, ends, delimiter


def _sniff(sample, path):
    if path.lower().endswith(".tsv"):
        return "\t"
    try:
        return csv.Sniffer().sniff("\n".join(sample.split("\n")[:20]), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _has_header(rows):
    """True when the first row reads as column names rather than data."""
    first, body = rows[0], rows[1:101]
    numeric = [_is_number(c) and c.strip().lower() not in MISSING for c in first]
    if all(numeric):
        return False
    for c, cell in enumerate(first):
        column = [r[c].strip() for r in body if len(r) > c and r[c].strip().lower() not in MISSING]
        if not numeric[c] and cell.strip() and column and all(map(_is_number, column)):
            return True
    return len(set(first)) == len(first) and not any(
        first[c] in {r[c] for r in body if len(r) > c} for c in range(len(first)))


def check_settings(source):
    """ConfigErrors for a Csv source's arguments."""
    check.one_of("missing", source.missing, MISSING_POLICIES)
    if source.header not in ("auto", True, False):
        raise ConfigError(f"header={source.header!r} is not supported", expected="auto, true or false")
    if source.delimiter != "auto" and (not isinstance(source.delimiter, str) or len(source.delimiter) != 1):
        raise ConfigError(f"delimiter={source.delimiter!r} must be one character or auto",
                          fix='write "\\t" (in double quotes) for tabs.')
    if source.categorical not in ("auto", None) and not isinstance(source.categorical, list):
        raise ConfigError("categorical must be auto, null or a list of column names")


def fit_columns(source, table, features):
    """The fitted record of a training table: kinds, categories and fill values per column."""
    kinds, categories, fill = {}, {}, {}
    listed = source.categorical if isinstance(source.categorical, list) else []
    for c in features:
        name = table.names[c]
        missing = table.missing(c)
        present = table.cells[~missing, c]
        numeric = name not in listed and c not in listed
        if numeric:
            try:
                values = present.astype(np.float64)
            except ValueError:
                if source.categorical != "auto" or any(map(_is_number, present)):
                    table.numbers(c, ~missing)           # raises, naming the first bad cell
                numeric = False
        if numeric:
            kinds[name] = "numeric"
            # a fill value even when these rows miss nothing: held-out rows or later files may
            if source.missing != "error":
                if source.missing == "constant":
                    fill[name] = float(source.fill_value)
                elif values.size:
                    fill[name] = float(np.mean(values) if source.missing == "mean" else np.median(values))
        else:
            kinds[name] = "categorical"
            names, counts = np.unique(present, return_counts=True)
            cats = [str(v) for v in names]
            if source.missing != "error":
                fill[name] = str(source.fill_value) if source.missing == "constant" \
                    else cats[int(np.argmax(counts))] if cats else str(source.fill_value)
                cats = sorted(set(cats) | {fill[name]})
            categories[name] = cats
    return {"columns": [table.names[c] for c in features], "kinds": kinds,
            "categories": categories, "fill": fill}


def refit(source, table, columns, rows):
    """Learn the fitted record again from data rows ``rows`` only (the training rows, once
    validation and test fractions are held out of the file) and encode every row with it.

    Categories and fill values then never come from held-out rows: a category seen only there
    is unseen, an error as for any file (see ``features``); the class names stay those of the
    whole file, since they name the model's outputs."""
    fitted = fit_columns(source, table.rows(rows), columns)
    for key in ("class_names", "label", "label_index"):
        fitted[key] = source.fitted.get(key)
    source.fitted = fitted
    return features(source, table, fitted, columns)


def features(source, table, fitted, columns):
    """(rows, width) float32 features of ``columns`` as the fitted record says."""
    blocks = []
    for c in columns:
        name = table.names[c]
        missing = table.missing(c)
        if missing.any() and name not in fitted["fill"]:
            r = int(np.argmax(missing))
            raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: the value is missing",
                            fix="fill it in, or set `missing: mean` (or median, or constant with "
                                "`fill_value`) on the source.")
        if fitted["kinds"][name] == "numeric":
            values = np.empty(len(table.cells), dtype=np.float64)
            values[~missing] = table.numbers(c, ~missing)
            values[missing] = fitted["fill"].get(name, np.nan)
            infinite = np.isinf(values)
            if infinite.any() and not source.allow_nonfinite:
                r = int(np.argmax(infinite))
                raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: "
                                f"{str(table.cells[r, c])!r} is not a finite number",
                                fix="fix that value, or set `allow_nonfinite: true` on the source.")
            blocks.append(values[:, None])
        else:
            cells = np.where(missing, fitted["fill"].get(name, ""), table.cells[:, c])
            cats = np.asarray(fitted["categories"][name], dtype=str)
            codes = np.searchsorted(cats, cells)
            unknown = (codes >= len(cats)) | (cats[np.minimum(codes, len(cats) - 1)] != cells)
            if unknown.any():
                r = int(np.argmax(unknown))
                raise DataError(f"{table.path}, {table.at(r)}, column {name!r}: category "
                                f"{str(cells[r])!r} was not in the training data",
                                expected=", ".join(map(str, cats[:20])),
                                fix="use one of the training categories, or retrain with it (a "
                                    "category only in rows held out of the training file for "
                                    "validation or test is unseen too: give it more rows, or "
                                    "merge it into another).")
            blocks.append(np.eye(len(cats), dtype=np.float64)[codes])
    x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(table.cells), 0))
    check_finite(x, table.path, "the features", allow=source.allow_nonfinite)
    return x.astype(np.float32)
