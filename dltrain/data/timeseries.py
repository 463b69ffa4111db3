"""timeseries: a CSV of numeric columns cut into (input window -> future target) pairs.

Windows follow Keras's ``timeseries_dataset_from_array``: sample i holds rows
[i * stride, i * stride + window) of the feature columns, and its target is the target column
``horizon`` rows after the window's last row. Windows are gathered with one index array, with no
Python loop over samples.
"""
import numpy as np

from dltrain import check
from dltrain.data import table
from dltrain.data.sources import Source
from dltrain.errors import DataError
from dltrain.registry import register


@register("timeseries")
class Timeseries(Source):
    """Sliding windows over the rows of a CSV time series, for forecasting.

    Args:
        path: the CSV file (a header, one row per time step, oldest first).
        target: the column to forecast, by name or 0-based position.
        window: time steps in each input window.
        horizon: how many steps after the window's last step the target lies (1 = the next).
        stride: steps between the starts of consecutive windows.
        columns: the feature columns (names or positions); null for every column, target included.
        delimiter: the field separator, or auto to detect it.
        start, stop: use only rows [start, stop) of the file (0-based; null for the ends), so a
            later stretch of the same file can be the test split, as forecasting needs.

    Shapes: x (samples, window, features), y (samples, 1)
    """

    def __init__(self, path, target, window, horizon=1, stride=1, columns=None, delimiter="auto",
                 start=None, stop=None):
        self.path, self.target, self.delimiter = path, target, delimiter
        self.start = None if start is None else check.non_negative_int("start", start)
        self.stop = None if stop is None else check.positive_int("stop", stop)
        self.window = check.positive_int("window", window)
        self.horizon = check.positive_int("horizon", horizon)
        self.stride = check.positive_int("stride", stride)
        if columns is not None and not isinstance(columns, list):
            check._fail("columns", columns, "a list of column names or positions, or null")
        self.columns = columns

    def load(self, base):
        path = self.resolve(base)
        data = table.Table(path, self.delimiter, "auto")
        target = data.index(self.target, "target")
        features = range(len(data.names)) if self.columns is None else \
            [data.index(c, "columns") for c in self.columns]
        series = np.stack([data.numbers(c) for c in features], axis=1).astype(np.float32)  # (rows, F)
        goal = data.numbers(target).astype(np.float32)                                    # (rows,)
        series, goal = series[self.start:self.stop], goal[self.start:self.stop]
        if not (np.isfinite(series).all() and np.isfinite(goal).all()):
            raise DataError(f"{path} holds a missing or non-finite value",
                            fix="fill the gaps in the series before windowing it.")
        starts = np.arange(0, len(goal) - self.window - self.horizon + 1, self.stride)
        if len(starts) == 0:
            raise DataError(f"{path} has {len(goal)} rows, too few for a window of {self.window} "
                            f"and a horizon of {self.horizon}",
                            fix="use a shorter window or horizon, or a longer series.")
        steps = starts[:, None] + np.arange(self.window)                  # (samples, window)
        x = series[steps]                                                 # (samples, window, F)
        y = goal[starts + self.window + self.horizon - 1][:, None]         # (samples, 1)
        return x, y

    def load_features(self, base, expected_features=None):
        return self.load(base)[0]

    extensions = (".csv", ".tsv")     # chosen for predict only when the run trained on one
    family = "series"
    fallback_rank = 2

    @classmethod
    def for_prediction(cls, path, train):
        if train is None:
            raise DataError(f"{path}: windowing a series needs the settings of a run trained on "
                            "the timeseries source")
        return cls(path, train.target, train.window, train.horizon, train.stride, train.columns,
                   train.delimiter)
