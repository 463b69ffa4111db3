"""Layers, one module per family; importing the package registers every layer."""
from dltrain import activations, initializers  # noqa: F401  (layers build them by name)
from dltrain.layers import core, merge  # noqa: F401
from dltrain.layers import conv, conv_transpose, depthwise, normalization, reshaping  # noqa: F401  (convnets)
from dltrain.layers import global_pooling, max_pooling, pooling  # noqa: F401  (convnets)
from dltrain.layers import bidirectional, embedding, gru, lstm, recurrent, sequence  # noqa: F401  (sequences)
