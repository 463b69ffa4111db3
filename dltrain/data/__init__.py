"""Data: readers (sources), preprocessing fitted on the training split, splits and batches."""
from dltrain.data import preprocessing, sources  # noqa: F401
