"""The Keras reference cases: what generate.py runs through Keras and test_keras_parity.py
through dltrain. Plain data, no Keras: both sides read it.

A case is a dict:
    kind      layer, loss, optimizer, schedule or metric
    name      the registered dltrain name
    spec      the dltrain spec (Keras takes the same arguments unless generate.py maps them)
    shape     input shape(s) with the batch axis (a list of shapes for merge layers)
    training  layers: call in training mode (batch statistics, the recurrent split)
    mask      layers: the input mask, rows of 0/1 per time step
    ids       layers: integer inputs in [0, ids) (embedding)
    zero_rows layers: (row, step) positions of the input set to 0 (masking, mask_zero)
Losses, optimizers, schedules and metrics say what they need in the same way (see below).
Each case's id is NAME-INDEX, its position among the cases of its name.
"""

MASK_5 = [[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]      # post-, pre-padding, none
MASK_6 = [[1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]


def _layer(name, spec, shape, **extra):
    return {"kind": "layer", "name": name, "spec": {"type": name, **spec}, "shape": shape, **extra}


def _activations():
    functions = ["relu", "elu", "selu", "gelu", "sigmoid", "tanh", "softmax", "softplus", "swish",
                 "linear", "leaky_relu", {"type": "leaky_relu", "negative_slope": 0.1},
                 {"type": "elu", "alpha": 0.5}, {"type": "gelu", "approximate": True}]
    return [_layer("activation", {"activation": f}, [3, 5]) for f in functions] + \
        [_layer("activation", {"activation": "softmax"}, [2, 3, 4])]


def _pooling():
    cases = []
    for name in ("max_pooling1d", "average_pooling1d"):
        for spec, shape in [({}, [3, 6, 2]), ({"pool_size": 3, "strides": 2, "padding": "same"}, [3, 7, 2]),
                            ({"pool_size": 2, "padding": "same"}, [2, 7, 2]),
                            ({"pool_size": 2, "strides": 1}, [2, 5, 3]),
                            ({"pool_size": 3, "padding": "same"}, [2, 8, 1])]:
            cases.append(_layer(name, spec, shape))
    for name in ("max_pooling2d", "average_pooling2d"):
        for spec, shape in [({}, [2, 4, 4, 2]), ({}, [2, 5, 5, 3]),
                            ({"pool_size": 3, "strides": 2, "padding": "same"}, [2, 7, 6, 2]),
                            ({"pool_size": [2, 3], "strides": 1}, [2, 4, 5, 1]),
                            ({"pool_size": 2, "padding": "same"}, [2, 7, 7, 2]),
                            ({"pool_size": 3, "padding": "same"}, [2, 8, 8, 1]),
                            ({"pool_size": 3, "strides": 1, "padding": "same"}, [2, 4, 4, 2]),
                            ({"pool_size": [3, 2], "strides": [2, 1]}, [2, 7, 4, 2])]:
            cases.append(_layer(name, spec, shape))
    for name in ("global_average_pooling1d", "global_max_pooling1d"):
        cases += [_layer(name, {}, [3, 5, 3]), _layer(name, {"keepdims": True}, [2, 4, 2])]
    cases.append(_layer("global_average_pooling1d", {}, [3, 5, 2], mask=MASK_5))
    for name in ("global_average_pooling2d", "global_max_pooling2d"):
        cases += [_layer(name, {}, [2, 3, 4, 2]), _layer(name, {"keepdims": True}, [2, 5, 3, 1])]
    return cases


def _convolutions():
    conv1d = [({"filters": 2, "kernel_size": 3}, [2, 6, 2]),
              ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, [2, 7, 3]),
              ({"filters": 2, "kernel_size": 3, "dilation_rate": 2}, [2, 9, 2]),
              ({"filters": 2, "kernel_size": 4, "padding": "same"}, [2, 8, 2]),
              ({"filters": 3, "kernel_size": 2, "strides": 3, "use_bias": False}, [2, 8, 1]),
              ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, [2, 7, 2])]
    conv2d = [({"filters": 2, "kernel_size": 3}, [2, 5, 5, 2]),
              ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, [2, 7, 6, 2]),
              ({"filters": 2, "kernel_size": 2, "strides": 2}, [2, 6, 5, 1]),
              ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, [2, 6, 6, 2]),
              ({"filters": 3, "kernel_size": [3, 2], "strides": [1, 2]}, [2, 5, 6, 2]),
              ({"filters": 2, "kernel_size": 4, "padding": "same"}, [2, 5, 5, 1]),
              ({"filters": 1, "kernel_size": 1, "use_bias": False}, [2, 3, 4, 3]),
              ({"filters": 2, "kernel_size": 3, "strides": 2}, [2, 8, 8, 2])]
    transpose = [({"filters": 3, "kernel_size": 3}, [2, 3, 3, 2]),
                 ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, [2, 3, 4, 2]),
                 ({"filters": 2, "kernel_size": 2, "strides": 2}, [2, 3, 3, 1]),
                 ({"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"}, [2, 3, 3, 2]),
                 ({"filters": 3, "kernel_size": 3, "strides": 2}, [2, 3, 2, 2]),
                 ({"filters": 2, "kernel_size": 3, "dilation_rate": 2}, [2, 3, 3, 2]),
                 ({"filters": 2, "kernel_size": 3, "strides": 1, "padding": "same", "use_bias": False},
                  [2, 4, 3, 2])]
    depthwise = [({"kernel_size": 3}, [2, 5, 5, 2]),
                 ({"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2}, [2, 6, 7, 2]),
                 ({"kernel_size": 3, "dilation_rate": 2}, [2, 7, 7, 1]),
                 ({"kernel_size": [2, 3], "use_bias": False}, [2, 4, 5, 3])]
    separable = [({"filters": 3, "kernel_size": 3}, [2, 5, 5, 2]),
                 ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2},
                  [2, 6, 6, 2]),
                 ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, [2, 6, 5, 1]),
                 ({"filters": 4, "kernel_size": 2, "use_bias": False}, [2, 4, 4, 3])]
    return ([_layer("conv1d", s, x) for s, x in conv1d] + [_layer("conv2d", s, x) for s, x in conv2d]
            + [_layer("conv2d_transpose", s, x) for s, x in transpose]
            + [_layer("depthwise_conv2d", s, x) for s, x in depthwise]
            + [_layer("separable_conv2d", s, x) for s, x in separable])


def _recurrent():
    cases = []
    variants = [{}, {"return_sequences": True}, {"go_backwards": True},
                {"return_sequences": True, "go_backwards": True}]
    for name, extra in [("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}),
                        ("lstm", {"unit_forget_bias": False})]:
        for i, variant in enumerate(variants):
            units = 3 if i % 2 == 0 else 4
            spec = {"units": units, **extra, **variant}
            cases.append(_layer(name, spec, [3, 5, 2], training=True))
            cases.append(_layer(name, spec, [3, 5, 2], training=True, mask=MASK_5))
        cases.append(_layer(name, {"units": 5, **extra, "return_sequences": True, "zero_output_for_mask": True},
                            [3, 6, 3], training=True, mask=MASK_6))
    bidirectional = [
        ({"layer": {"type": "lstm", "units": 3}}, None),
        ({"layer": {"type": "lstm", "units": 3, "return_sequences": True}}, MASK_5),
        ({"layer": {"type": "gru", "units": 2, "return_sequences": True}, "merge_mode": "sum"}, MASK_5),
        ({"layer": {"type": "simple_rnn", "units": 2}, "merge_mode": "mul"}, MASK_5),
        ({"layer": {"type": "lstm", "units": 2, "return_sequences": True}, "merge_mode": "ave"}, None),
        ({"layer": {"type": "gru", "units": 3, "return_sequences": True}}, MASK_5),
        ({"layer": {"type": "gru", "units": 2, "reset_after": False}, "merge_mode": "concat"}, MASK_5),
    ]
    cases += [_layer("bidirectional", s, [3, 5, 3], training=True, mask=m) for s, m in bidirectional]
    return cases


def _others():
    return [
        _layer("dense", {"units": 3}, [3, 4]),
        _layer("dense", {"units": 4, "use_bias": False}, [2, 5]),
        _layer("add", {}, [[3, 4], [3, 4]]),
        _layer("add", {}, [[2, 3, 2], [2, 3, 2], [2, 3, 2]]),
        _layer("multiply", {}, [[3, 4], [3, 4]]),
        _layer("multiply", {}, [[2, 2, 3], [2, 2, 3], [2, 2, 3]]),
        _layer("concatenate", {}, [[3, 4], [3, 3]]),
        _layer("concatenate", {"axis": 1}, [[2, 2, 3], [2, 4, 3]]),
        _layer("concatenate", {}, [[2, 3, 3, 1], [2, 3, 3, 2], [2, 3, 3, 1]]),
        _layer("batch_normalization", {}, [4, 4], training=True),
        _layer("batch_normalization", {}, [4, 4]),
        _layer("batch_normalization", {"momentum": 0.9, "center": False}, [2, 3, 3, 2], training=True),
        _layer("batch_normalization", {"scale": False, "epsilon": 0.01}, [3, 2, 3], training=True),
        _layer("batch_normalization", {"momentum": 0.5}, [2, 3, 3, 2]),
        _layer("layer_normalization", {}, [3, 8]),
        _layer("layer_normalization", {"center": False}, [2, 3, 5]),
        _layer("layer_normalization", {"scale": False, "epsilon": 0.1}, [2, 2, 3, 4]),
        _layer("dropout", {"rate": 0.3}, [3, 6]),
        _layer("spatial_dropout2d", {"rate": 0.5}, [2, 3, 3, 2]),
        _layer("embedding", {"input_dim": 7, "output_dim": 3}, [3, 5], ids=7),
        _layer("embedding", {"input_dim": 6, "output_dim": 4, "mask_zero": True}, [3, 6], ids=6,
               zero_rows=[[0, 4], [0, 5], [1, 0], [2, 2]]),
        _layer("flatten", {}, [2, 2, 3, 2]),
        _layer("flatten", {}, [3, 5]),
        _layer("masking", {}, [3, 4, 3], zero_rows=[[0, 3], [1, 0], [1, 1]]),
        _layer("masking", {"mask_value": -1.0}, [2, 3, 2], zero_rows=[[1, 2]]),
        _layer("rescaling", {"scale": 0.5}, [3, 3]),
        _layer("rescaling", {"scale": 2.0, "offset": -1.0}, [2, 2, 2, 3]),
        _layer("reshape", {"target_shape": [3, 2]}, [2, 6]),
        _layer("reshape", {"target_shape": [2, 6]}, [2, 3, 2, 2]),
        _layer("time_distributed", {"layer": {"type": "dense", "units": 3}}, [3, 4, 2]),
        _layer("time_distributed", {"layer": {"type": "conv1d", "filters": 2, "kernel_size": 2}}, [2, 3, 5, 2]),
        _layer("up_sampling2d", {}, [2, 2, 3, 2]),
        _layer("up_sampling2d", {"size": [2, 3]}, [2, 2, 2, 1]),
        _layer("zero_padding2d", {}, [2, 2, 3, 2]),
        _layer("zero_padding2d", {"padding": [1, 2]}, [2, 2, 2, 1]),
        _layer("zero_padding2d", {"padding": [[1, 0], [2, 1]]}, [2, 3, 2, 2]),
    ]


def _losses():
    def loss(name, spec, shape, target, **extra):
        return {"kind": "loss", "name": name, "spec": {"type": name, **spec}, "shape": shape,
                "target": target, **extra}

    return [
        loss("mean_squared_error", {}, [3, 4], "real"),
        loss("mean_squared_error", {}, [3, 2, 3], "real"),
        loss("mean_squared_error", {}, [4, 3], "real", sample_weight=True),
        loss("mean_absolute_error", {}, [3, 4], "real"),
        loss("mean_absolute_error", {}, [2, 3], "real", sample_weight=True),
        loss("huber", {}, [4, 3], "real"),
        loss("huber", {"delta": 0.5}, [3, 5], "real", sample_weight=True),
        loss("binary_crossentropy", {}, [4, 1], "binary"),
        loss("binary_crossentropy", {}, [3, 3], "binary", clip=True),          # issue 17, 5
        loss("binary_crossentropy", {"from_logits": True}, [4, 2], "binary"),
        loss("binary_crossentropy", {"label_smoothing": 0.1}, [3, 2], "binary", sample_weight=True),
        loss("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, [3, 1], "binary"),
        loss("categorical_crossentropy", {}, [3, 4], "onehot"),                 # rows sum to 1
        loss("categorical_crossentropy", {}, [3, 4], "onehot", unnormalised=True),   # issue 17, 4
        loss("categorical_crossentropy", {}, [3, 3], "soft", clip=True),
        loss("categorical_crossentropy", {"from_logits": True}, [3, 5], "onehot"),
        loss("categorical_crossentropy", {"label_smoothing": 0.1}, [4, 3], "onehot", unnormalised=True),
        loss("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, [2, 4], "soft",
             sample_weight=True),
        loss("categorical_crossentropy", {}, [2, 3, 4], "onehot"),
        loss("sparse_categorical_crossentropy", {}, [3, 4], "sparse"),
        loss("sparse_categorical_crossentropy", {}, [3, 4], "sparse", unnormalised=True),   # issue 17, 4
        loss("sparse_categorical_crossentropy", {}, [3, 3], "sparse", clip=True),
        loss("sparse_categorical_crossentropy", {"from_logits": True}, [4, 5], "sparse", sample_weight=True),
        loss("sparse_categorical_crossentropy", {"from_logits": True}, [2, 3, 4], "sparse"),
        # Keras's sparse loss has no label_smoothing: the categorical one on one-hot labels is it
        loss("sparse_categorical_crossentropy", {"label_smoothing": 0.1}, [3, 4], "sparse", unnormalised=True),
        loss("sparse_categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, [3, 4], "sparse"),
    ]


def _optimizers():
    def opt(name, **spec):
        return {"kind": "optimizer", "name": name, "spec": {"type": name, **spec}, "steps": 10,
                "shapes": [[3, 2], [4]]}

    schedule = {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}
    return [
        opt("sgd"), opt("sgd", learning_rate=0.1, momentum=0.9), opt("sgd", momentum=0.5, nesterov=True),
        opt("sgd", learning_rate=schedule, momentum=0.9),
        opt("rmsprop"), opt("rmsprop", learning_rate=0.01, rho=0.8, momentum=0.5, centered=True),
        opt("rmsprop", centered=True),
        opt("adam"), opt("adam", learning_rate=0.01, beta_1=0.8, beta_2=0.99, amsgrad=True),
        opt("adam", learning_rate=0.01, clipnorm=0.5), opt("adam", clipvalue=0.1),
        opt("adam", learning_rate=0.01, global_clipnorm=0.3),
        opt("adamw"), opt("adamw", learning_rate=0.01, weight_decay=0.1, amsgrad=True),
        opt("adagrad"), opt("adagrad", learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-5),
        opt("nadam"), opt("nadam", learning_rate=0.01, beta_1=0.7, beta_2=0.9),
    ]


def _schedules():
    def sched(name, **spec):
        return {"kind": "schedule", "name": name, "spec": {"type": name, **spec}, "steps": 40}

    return [
        sched("exponential_decay", initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5),
        sched("exponential_decay", initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True),
        sched("piecewise_constant", boundaries=[5, 12], values=[1.0, 0.5, 0.1]),       # issue 17, 6
        sched("piecewise_constant", boundaries=[0, 1, 30], values=[0.3, 0.2, 0.1, 0.05]),
        sched("cosine_decay", initial_learning_rate=0.2, decay_steps=25),
        sched("cosine_decay", initial_learning_rate=0.2, decay_steps=25, alpha=0.1),
        sched("cosine_decay", initial_learning_rate=0.0, decay_steps=20, alpha=0.05, warmup_target=0.5,
              warmup_steps=10),
        sched("polynomial_decay", initial_learning_rate=0.1, decay_steps=30),
        sched("polynomial_decay", initial_learning_rate=0.1, decay_steps=12, end_learning_rate=0.01,
              power=2.0),
        sched("polynomial_decay", initial_learning_rate=0.1, decay_steps=12, end_learning_rate=0.01,
              power=0.5, cycle=True),
    ]


def _metrics():
    def metric(name, target, shape, keras, **spec):
        """``keras``: the Keras metric class and its arguments that the dltrain spec equals."""
        return {"kind": "metric", "name": name, "spec": {"type": name, **spec}, "target": target,
                "shape": shape, "batches": 3, "keras": keras}

    return [
        metric("accuracy", "sparse", [20, 4], ["SparseCategoricalAccuracy", {}]),
        metric("accuracy", "onehot", [20, 3], ["CategoricalAccuracy", {}]),
        metric("accuracy", "binary", [20, 1], ["BinaryAccuracy", {}]),
        metric("binary_accuracy", "binary", [20, 3], ["BinaryAccuracy", {}]),
        metric("binary_accuracy", "binary", [20, 2], ["BinaryAccuracy", {"threshold": 0.7}], threshold=0.7),
        metric("categorical_accuracy", "onehot", [20, 4], ["CategoricalAccuracy", {}]),
        metric("sparse_categorical_accuracy", "sparse", [20, 4], ["SparseCategoricalAccuracy", {}]),
        metric("top_k_accuracy", "sparse", [20, 6], ["SparseTopKCategoricalAccuracy", {"k": 3}], k=3),
        metric("top_k_accuracy", "onehot", [20, 6], ["TopKCategoricalAccuracy", {"k": 2}], k=2),
        metric("precision", "binary", [20, 1], ["Precision", {}]),
        metric("precision", "onehot", [20, 4], ["Precision", {"thresholds": 0.4}], thresholds=0.4),
        metric("precision", "sparse", [20, 4], ["Precision", {"class_id": 2}], class_id=2),
        metric("recall", "binary", [20, 1], ["Recall", {}]),
        metric("recall", "onehot", [20, 3], ["Recall", {"thresholds": 0.3}], thresholds=0.3),
        metric("recall", "sparse", [20, 4], ["Recall", {"class_id": 1, "thresholds": 0.2}], class_id=1,
               thresholds=0.2),
        metric("f1", "sparse", [20, 4], ["F1Score", {"average": "macro"}]),
        metric("f1", "onehot", [20, 3], ["F1Score", {"average": "micro"}], average="micro"),
        metric("f1", "onehot", [20, 4], ["F1Score", {"average": "weighted", "threshold": 0.3}],
               average="weighted", threshold=0.3),
        metric("f1", "onehot", [20, 3], ["F1Score", {"average": "macro", "threshold": 0.4}], threshold=0.4),
        metric("auc", "binary", [20, 1], ["AUC", {}], num_thresholds=200),
        metric("auc", "onehot", [30, 3], ["AUC", {}], num_thresholds=200, multi_label=False),
        metric("auc", "sparse", [30, 3], ["AUC", {"multi_label": True, "num_thresholds": 50}],
               num_thresholds=50),
        metric("mae", "real", [20, 3], ["MeanAbsoluteError", {}]),
        metric("mse", "real", [20, 3], ["MeanSquaredError", {}]),
        metric("rmse", "real", [20, 2], ["RootMeanSquaredError", {}]),
        metric("r2", "real", [20, 1], ["R2Score", {}]),
        metric("r2", "real", [20, 3], ["R2Score", {}]),
    ]


def all_cases():
    """Every case, each with its ``id``."""
    cases = (_others() + _activations() + _pooling() + _convolutions() + _recurrent() + _losses()
             + _optimizers() + _schedules() + _metrics())
    seen = {}
    for case in cases:
        index = seen.get(case["name"], 0)
        seen[case["name"]] = index + 1
        case["id"] = f"{case['kind']}-{case['name']}-{index}"
    return cases


#: registered names with no Keras fixture, and why
EXEMPT = {
    "schedule": {
        "one_cycle": "not a Keras schedule (PyTorch's OneCycleLR); test_schedules.py checks its formula",
    },
}
