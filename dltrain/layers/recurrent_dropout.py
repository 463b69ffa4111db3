"""``recurrent_dropout``: the recurrent layers' training pass with a dropout mask on the state.

As Keras: one mask per sample and unit, drawn once per batch and kept over every step, scales
the previous state where it enters the recurrent product, h_{t-1} * m with m in {0, 1/(1-rate)};
the state itself (GRU's z * h_{t-1}, the carried state of masked steps) is not dropped. The
fast time loops (recurrent_cells) read the state from the operand they write it into, so this
pass is its own, plainer loop, batch-major (B, U) per step, with the parameters in Keras's
layout; it runs only in training with a rate above 0 (inference never drops).

    rnn:  h = tanh(x W + (h m) R + b)
    lstm: [i f c~ o] = x W + (h m) R + b;  c = f c + i c~;  h = o tanh(c)
    gru:  z, r = sigmoid(x W_zr + (h m) R_zr + b_zr [+ rb_zr]);  h = z h + (1 - z) n, with
          n = tanh(x W_h + b_h + r ((h m) R_h + rb_h))   (reset_after)
          n = tanh(x W_h + b_h + (r (h m)) R_h)          (without)

Masks of padded steps (``seq_mask`` (B, T), 1.0 real) carry the state, as the fast loops do.
"""
from dltrain.backend import array_module


def _sigmoid(z):
    return 0.5 * array_module(z).tanh(0.5 * z) + 0.5


def forward(layer, x, seq_mask, drop):
    """(states (B, T, U) after every step, cache) for x (B, T, F) in reading order."""
    p, units = layer.params, layer.units
    kind, np = layer.cell, array_module(x)                         # numpy, or cupy on a GPU
    batch, steps, _ = x.shape
    xw = x @ p["kernel"] + p["bias"]                                   # (B, T, G*U)
    h = np.zeros((batch, units), dtype=x.dtype)
    c = np.zeros_like(h)
    states, caches = np.empty((batch, steps, units), dtype=x.dtype), []
    for t in range(steps):
        hd = h * drop
        a = xw[:, t]
        if kind == "simple_rnn":
            new = np.tanh(a + hd @ p["recurrent_kernel"])
            cache = (h, hd, new)
        elif kind == "lstm":
            z = a + hd @ p["recurrent_kernel"]
            i, f, o = (_sigmoid(z[:, k * units:(k + 1) * units]) for k in (0, 1, 3))
            g = np.tanh(z[:, 2 * units:3 * units])
            c_new = f * c + i * g
            tanh_c = np.tanh(c_new)
            new = o * tanh_c
            cache = (h, hd, c, i, f, g, o, tanh_c)
        else:
            new, cache = _gru_step(layer, a, h, hd)
        if seq_mask is not None:
            m = seq_mask[:, t, None]
            new = m * new + (1 - m) * h
            if kind == "lstm":
                c_new = m * c_new + (1 - m) * c
        if kind == "lstm":
            c = c_new
        h = new
        states[:, t] = h
        caches.append(cache)
    return states, caches


def _gru_step(layer, a, h, hd):
    p, n, np = layer.params, layer.units, array_module(a)
    recurrent = p["recurrent_kernel"]
    if layer.reset_after:
        hr = hd @ recurrent + p["recurrent_bias"]                      # (B, 3U)
        z = _sigmoid(a[:, :n] + hr[:, :n])
        r = _sigmoid(a[:, n:2 * n] + hr[:, n:2 * n])
        cand = np.tanh(a[:, 2 * n:] + r * hr[:, 2 * n:])
        return z * h + (1 - z) * cand, (h, hd, hr[:, 2 * n:], z, r, cand)
    hr = hd @ recurrent[:, :2 * n]
    z = _sigmoid(a[:, :n] + hr[:, :n])
    r = _sigmoid(a[:, n:2 * n] + hr[:, n:])
    reset_h = r * hd
    cand = np.tanh(a[:, 2 * n:] + reset_h @ recurrent[:, 2 * n:])
    return z * h + (1 - z) * cand, (h, hd, reset_h, z, r, cand)


def backward(layer, x, seq_mask, drop, caches, grad_states):
    """(grad of x (B, T, F), {param: grad}) from d(loss)/d(states) (B, T, U)."""
    p, units = layer.params, layer.units
    kind, np = layer.cell, array_module(x)
    batch, steps, _ = x.shape
    recurrent = p["recurrent_kernel"]
    grad_pre = np.zeros((batch, steps, recurrent.shape[1]), dtype=x.dtype)    # d(x W + b) per step
    grad_recurrent = np.zeros_like(recurrent)
    grad_recurrent_bias = np.zeros(recurrent.shape[1], dtype=x.dtype) if "recurrent_bias" in p else None
    dh_next = np.zeros((batch, units), dtype=x.dtype)
    dc_next = np.zeros_like(dh_next)
    for t in reversed(range(steps)):
        dh = dh_next + grad_states[:, t]
        dc = dc_next
        if seq_mask is not None:
            m = seq_mask[:, t, None]
            dh_carry, dh, dc_carry, dc = dh * (1 - m), dh * m, dc * (1 - m), dc * m
        else:
            dh_carry = dc_carry = 0
        cache = caches[t]
        if kind == "simple_rnn":
            h, hd, new = cache
            da = dh * (1 - new * new)
            grad_pre[:, t] = da
            grad_recurrent += hd.T @ da
            dh_prev = (da @ recurrent.T) * drop
        elif kind == "lstm":
            h, hd, c, i, f, g, o, tanh_c = cache
            dc_total = dc + dh * o * (1 - tanh_c * tanh_c)
            dz = np.concatenate([dc_total * g * i * (1 - i), dc_total * c * f * (1 - f),
                                 dc_total * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=1)
            grad_pre[:, t] = dz
            grad_recurrent += hd.T @ dz
            dh_prev = (dz @ recurrent.T) * drop
            dc_next = dc_total * f + dc_carry
        else:
            dh_prev = _gru_backward(layer, cache, dh, drop, grad_pre, t, grad_recurrent, grad_recurrent_bias)
        dh_next = dh_prev + dh_carry
    if not layer.trainable:          # frozen: no weight gradients (the per-step sums are small)
        return grad_pre @ p["kernel"].T, {}
    flat_x, flat_pre = x.reshape(-1, x.shape[-1]), grad_pre.reshape(-1, grad_pre.shape[-1])
    grads = {"kernel": flat_x.T @ flat_pre, "recurrent_kernel": grad_recurrent, "bias": flat_pre.sum(axis=0)}
    if grad_recurrent_bias is not None:
        grads["recurrent_bias"] = grad_recurrent_bias
    return grad_pre @ p["kernel"].T, grads


def _gru_backward(layer, cache, dh, drop, grad_pre, t, grad_recurrent, grad_recurrent_bias):
    n, recurrent, np = layer.units, layer.params["recurrent_kernel"], array_module(dh)
    h, hd, part, z, r, cand = cache
    d_cand = dh * (1 - z) * (1 - cand * cand)                       # d of n's pre-activation
    dz = dh * (h - cand) * z * (1 - z)
    if layer.reset_after:
        hr_h = part
        dr = d_cand * hr_h * r * (1 - r)
        d_hr = np.concatenate([dz, dr, d_cand * r], axis=1)           # d(hd R + rb)
        grad_recurrent += hd.T @ d_hr
        grad_recurrent_bias += d_hr.sum(axis=0)
        d_hd = d_hr @ recurrent.T
    else:
        reset_h = part
        d_reset_h = d_cand @ recurrent[:, 2 * n:].T
        dr = d_reset_h * hd * r * (1 - r)
        grad_recurrent[:, 2 * n:] += reset_h.T @ d_cand
        d_zr = np.concatenate([dz, dr], axis=1)
        grad_recurrent[:, :2 * n] += hd.T @ d_zr
        d_hd = d_zr @ recurrent[:, :2 * n].T + d_reset_h * r
    grad_pre[:, t] = np.concatenate([dz, dr, d_cand], axis=1)
    return dh * z + d_hd * drop
