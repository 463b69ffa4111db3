"""Each optimizer against its published update rule (Keras 3's form), written out here from the
formulas, independently of dltrain's code, for several steps on two parameters."""
import numpy as np
import pytest

from dltrain.registry import build

STEPS = 6


# -- reference rules: (state, param, grad, lr, t) -> new param; state is a dict per parameter ---

def sgd(momentum=0.0, nesterov=False):
    def step(s, p, g, lr, t):
        if not momentum:
            return p - lr * g
        s["v"] = momentum * s.get("v", 0) - lr * g
        return p + (momentum * s["v"] - lr * g if nesterov else s["v"])
    return step


def rmsprop(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    def step(s, p, g, lr, t):
        s["v"] = rho * s.get("v", 0) + (1 - rho) * g ** 2
        if centered:
            s["m"] = rho * s.get("m", 0) + (1 - rho) * g
            denominator = s["v"] - s["m"] ** 2 + epsilon
        else:
            denominator = s["v"] + epsilon
        increment = lr * g / np.sqrt(denominator)
        if momentum:
            s["b"] = momentum * s.get("b", 0) + increment
            increment = s["b"]
        return p - increment
    return step


def adam(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=0.0):
    def step(s, p, g, lr, t):
        p = p - lr * weight_decay * p                 # decoupled decay (AdamW), before the step
        s["m"] = beta_1 * s.get("m", 0) + (1 - beta_1) * g
        s["v"] = beta_2 * s.get("v", 0) + (1 - beta_2) * g ** 2
        v = s["v"]
        if amsgrad:
            s["vhat"] = np.maximum(s.get("vhat", 0), s["v"])
            v = s["vhat"]
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        return p - alpha * s["m"] / (np.sqrt(v) + epsilon)
    return step


def adagrad(initial_accumulator_value=0.1, epsilon=1e-7):
    def step(s, p, g, lr, t):
        s["a"] = s.get("a", initial_accumulator_value) + g ** 2
        return p - lr * g / np.sqrt(s["a"] + epsilon)
    return step


def nadam(beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras 3: u_t = beta_1 (1 - 0.5 * 0.96^t), the product of the u's in the corrections."""
    def u(t):
        return beta_1 * (1 - 0.5 * 0.96 ** t)

    def step(s, p, g, lr, t):
        product_t = np.prod([u(i) for i in range(1, t + 1)])
        product_t1 = product_t * u(t + 1)
        s["m"] = beta_1 * s.get("m", 0) + (1 - beta_1) * g
        s["v"] = beta_2 * s.get("v", 0) + (1 - beta_2) * g ** 2
        m_hat = u(t + 1) * s["m"] / (1 - product_t1) + (1 - u(t)) * g / (1 - product_t)
        v_hat = s["v"] / (1 - beta_2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + epsilon)
    return step


CASES = {
    "sgd": ({"type": "sgd", "learning_rate": 0.1}, sgd()),
    "sgd_momentum": ({"type": "sgd", "learning_rate": 0.1, "momentum": 0.9}, sgd(0.9)),
    "sgd_nesterov": ({"type": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
                     sgd(0.9, True)),
    "rmsprop": ({"type": "rmsprop", "learning_rate": 0.01}, rmsprop()),
    "rmsprop_centered": ({"type": "rmsprop", "learning_rate": 0.01, "centered": True, "rho": 0.8},
                         rmsprop(rho=0.8, centered=True)),
    "rmsprop_momentum": ({"type": "rmsprop", "learning_rate": 0.01, "momentum": 0.5},
                         rmsprop(momentum=0.5)),
    "adam": ({"type": "adam", "learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95}, adam(0.8, 0.95)),
    "amsgrad": ({"type": "adam", "learning_rate": 0.01, "amsgrad": True}, adam(amsgrad=True)),
    "adamw": ({"type": "adamw", "learning_rate": 0.01, "weight_decay": 0.1},
              adam(weight_decay=0.1)),
    "adagrad": ({"type": "adagrad", "learning_rate": 0.1}, adagrad()),
    "nadam": ({"type": "nadam", "learning_rate": 0.01}, nadam()),
}


def _problem(seed=0, dtype=np.float64):
    """Two parameters and a gradient sequence whose magnitude varies (so amsgrad's max matters)."""
    rng = np.random.default_rng(seed)
    params = {"dense/kernel": rng.standard_normal((4, 3)).astype(dtype),
              "dense/bias": rng.standard_normal(3).astype(dtype)}
    grads = [{k: (rng.standard_normal(v.shape) * (3.0 if i % 3 == 0 else 0.3)).astype(dtype)
              for k, v in params.items()} for i in range(STEPS)]
    return params, grads


def _run(optimizer, params, grads):
    for g in grads:
        optimizer.apply((k, params[k], g[k]) for k in params)
    return params


@pytest.mark.parametrize("case", list(CASES))
def test_update_matches_the_published_formula(case):
    spec, rule = CASES[case]
    optimizer = build("optimizer", spec)
    params, grads = _problem()
    expected = {k: v.copy() for k, v in params.items()}
    states = {k: {} for k in params}
    lr = spec["learning_rate"]
    for t, g in enumerate(grads, start=1):
        optimizer.apply((k, params[k], g[k]) for k in params)
        for k in expected:
            expected[k] = rule(states[k], expected[k], g[k], lr, t)
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{case}, step {t}, {k}")
    assert optimizer.iterations == STEPS


@pytest.mark.parametrize("case", list(CASES))
def test_float32_parameters_stay_float32_and_close_to_float64(case):
    spec, _ = CASES[case]
    p32, g32 = _problem(dtype=np.float32)
    p64, g64 = _problem(dtype=np.float64)
    _run(build("optimizer", spec), p32, g32)
    _run(build("optimizer", spec), p64, g64)
    for k in p32:
        assert p32[k].dtype == np.float32
        np.testing.assert_allclose(p32[k], p64[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_state_dict_round_trip_continues_identically(case):
    spec, _ = CASES[case]
    params, grads = _problem()
    first = build("optimizer", spec)
    _run(first, params, grads[:3])
    saved = {k: np.array(v) for k, v in first.state_dict().items()}
    resumed_params = {k: v.copy() for k, v in params.items()}
    second = build("optimizer", spec)
    second.load_state_dict(saved)
    _run(first, params, grads[3:])
    _run(second, resumed_params, grads[3:])
    for k in params:
        np.testing.assert_array_equal(params[k], resumed_params[k])
    assert second.iterations == first.iterations


def test_clipping_by_value_norm_and_global_norm():
    g = np.array([3.0, -4.0])                       # norm 5
    for spec, expected in [({"clipvalue": 1.0}, [1.0, -1.0]),
                           ({"clipnorm": 1.0}, [0.6, -0.8]),
                           ({"global_clipnorm": 2.5}, [1.5, -2.0]),
                           ({"clipnorm": 10.0}, [3.0, -4.0])]:
        p = np.zeros(2)
        build("optimizer", {"type": "sgd", "learning_rate": 1.0, **spec}).apply([("p", p, g.copy())])
        np.testing.assert_allclose(-p, expected, rtol=1e-9, err_msg=str(spec))


def test_bad_hyperparameters_are_config_errors():
    from dltrain.errors import ConfigError

    for spec in ({"type": "adam", "beta_1": 1.5}, {"type": "sgd", "learning_rate": -1},
                 {"type": "rmsprop", "rho": "x"}, {"type": "adam", "beta1": 0.9}):
        with pytest.raises(ConfigError):
            build("optimizer", spec)
