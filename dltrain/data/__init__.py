"""Data: readers (sources), preprocessing fitted on the training split, splits and batches."""
from dltrain.data import csv_source, preprocessing, sources  # noqa: F401
from dltrain.data import datasets  # noqa: F401,E402  (the `dataset` source)
from dltrain.data import text, text_vectorization, timeseries  # noqa: F401,E402  (text, sequences)
from dltrain.data import augmentation, idx, images  # noqa: F401,E402  (images)
