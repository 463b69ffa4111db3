"""Metrics: ``reset()``, ``update(pred, target)`` per batch, ``result()`` for the epoch.

A metric's state is sums and counts (arrays of them, or the lists of scores AUC ranks), named in
``state_names``: ``state()`` returns them, ``load_state()`` puts them back (a mid-epoch resume)
and ``merge(state)`` adds another state to this one, so the states of several processes, or of the
halves of a batch, combine into exactly the state of the whole.

``accuracy`` is resolved from the loss as Keras does: sparse labels for
sparse_categorical_crossentropy, one-hot rows for categorical_crossentropy, a 0.5 threshold for
binary_crossentropy or a single output unit.

The package holds one module per family: base.py (the Metric base, metric_name, the label
helpers), accuracy.py, confusion.py (precision, recall, f1), auc.py, regression.py.
"""
from dltrain.metrics import accuracy, auc, confusion, regression  # noqa: F401  (each @register runs)
from dltrain.metrics.accuracy import (Accuracy, BinaryAccuracy, CategoricalAccuracy,  # noqa: F401
                                      SparseCategoricalAccuracy, TopKAccuracy)
from dltrain.metrics.auc import AUC  # noqa: F401
from dltrain.metrics.base import Metric, labels_of, metric_name, one_hot_like  # noqa: F401
from dltrain.metrics.confusion import F1, Confusion, Precision, Recall  # noqa: F401
from dltrain.metrics.regression import MAE, MSE, R2, RMSE, Regression  # noqa: F401
