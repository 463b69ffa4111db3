"""The time loops of simple_rnn, lstm and gru: forward and backpropagation through time.

Every function works time-major: projected inputs ``xw`` (T, B, G*U) already hold x_t @ kernel +
bias for every step (one product, done by the layer), so a step does one product
``h_{t-1} @ recurrent_kernel`` (B, U) @ (U, G*U) for all gates, then elementwise work in place on
``xw[t]``, which ends up holding the activated gates that backward needs. Backward returns the
gradient of the pre-activations (T, B, G*U); the layer turns it into the kernel, bias and input
gradients with large products after the loop.

Masks: ``mask`` (T, B, 1) is 1.0 for real steps, 0.0 for padding. A masked step carries the state
(``carry``); in backward the gradient of a masked step's state passes straight to the previous
state and the step's own gates get none: with ``dh_new = dh * m`` the gates see ``dh_new`` and the
previous state gets ``dh - dh_new`` in addition.

Sigmoid is 1 / (1 + exp(-z)) in place (an exp costs half a tanh), and the LSTM's tanh gate is
2 * sigmoid(2z) - 1, so one exp covers all four gates. exp overflows to inf for z < -88 (float32),
which gives the correct limit 0; the layer silences that warning.
"""

from dltrain.backend import array_module


def sigmoid_(a, scale=None):
    """a <- sigmoid(a) (or sigmoid(scale * a)), in place; returns a."""
    xp = array_module(a)
    if scale is None:
        xp.negative(a, out=a)
    else:
        xp.multiply(a, scale, out=a)
    xp.exp(a, out=a)
    a += 1
    xp.reciprocal(a, out=a)
    return a


def carry(new, old, m):
    """new <- m * new + (1 - m) * old, in place: padded steps keep the previous state."""
    new -= old
    new *= m
    new += old


def _new_path(dh, mask, t):
    """(gradient into the step's update, gradient passed straight to the previous state)."""
    if mask is None:
        return dh, None
    dh_new = dh * mask[t]
    return dh_new, dh - dh_new


# -- simple_rnn: h_t = tanh(a_t), a_t = xw_t + h_{t-1} R ---------------------------------------

def rnn_forward(xw, recurrent_kernel, mask):
    xp = array_module(xw)
    steps, batch, units = xw.shape
    h = xp.zeros((steps + 1, batch, units), dtype=xw.dtype)          # h[0] = initial state
    for t in range(steps):
        a = xw[t]
        a += h[t] @ recurrent_kernel                                  # (B, U) @ (U, U)
        xp.tanh(a, out=h[t + 1])
        if mask is not None:
            carry(h[t + 1], h[t], mask[t])
    return h


def rnn_backward(grad_h, h, recurrent_kernel, mask):
    """d/d(a_t) = dh_t * (1 - h_t^2); dh_{t-1} = d/d(a_t) @ R^T (+ carried gradient)."""
    xp = array_module(grad_h)
    steps, batch, units = grad_h.shape
    grad_pre = xp.empty_like(grad_h)
    recurrent_t = xp.ascontiguousarray(recurrent_kernel.T)
    dh_next = xp.zeros((batch, units), dtype=grad_h.dtype)
    for t in range(steps - 1, -1, -1):
        dh, passed = _new_path(grad_h[t] + dh_next, mask, t)
        d = grad_pre[t]
        xp.multiply(h[t + 1], h[t + 1], out=d)
        xp.subtract(1, d, out=d)
        d *= dh
        dh_next = d @ recurrent_t                                     # (B, U) @ (U, U)
        if passed is not None:
            dh_next += passed
    return grad_pre


# -- lstm: gates i, f, c~, o as column blocks [0:U], [U:2U], [2U:3U], [3U:4U] -----------------

def lstm_forward(xw, recurrent_kernel, mask):
    """h (T+1, B, U) and the cache (gates (T, B, 4U), cells (T+1, B, U), tanh(c_t) (T, B, U))."""
    xp = array_module(xw)
    steps, batch, width = xw.shape
    n = width // 4
    scale = -xp.ones(width, dtype=xw.dtype)
    scale[2 * n:3 * n] = -2                                   # tanh(z) = 2 sigmoid(2z) - 1
    h = xp.zeros((steps + 1, batch, n), dtype=xw.dtype)
    c = xp.zeros((steps + 1, batch, n), dtype=xw.dtype)
    tanh_c = xp.empty((steps, batch, n), dtype=xw.dtype)
    rec = xp.empty((batch, width), dtype=xw.dtype)
    for t in range(steps):
        a = xw[t]
        xp.matmul(h[t], recurrent_kernel, out=rec)            # (B, U) @ (U, 4U)
        a += rec
        sigmoid_(a, scale)
        g = a[:, 2 * n:3 * n]
        g *= 2
        g -= 1
        xp.multiply(a[:, n:2 * n], c[t], out=c[t + 1])        # f * c_{t-1}
        c[t + 1] += a[:, :n] * g                              # + i * c~
        xp.tanh(c[t + 1], out=tanh_c[t])
        xp.multiply(a[:, 3 * n:], tanh_c[t], out=h[t + 1])    # o * tanh(c_t)
        if mask is not None:
            carry(c[t + 1], c[t], mask[t])
            carry(h[t + 1], h[t], mask[t])
    return h, (xw, c, tanh_c)


def lstm_backward(grad_h, h, cache, recurrent_kernel, mask):
    """BPTT for the LSTM.

    With dc = dc_{t+1} + dh * o * (1 - tanh(c_t)^2):
    d(i) = dc * c~, d(f) = dc * c_{t-1}, d(c~) = dc * i, d(o) = dh * tanh(c_t), each times its
    activation's derivative (s * (1 - s) for sigmoid, 1 - c~^2 for tanh);
    dh_{t-1} = d(gates) @ R^T, dc_{t-1} = dc * f.
    """
    xp = array_module(grad_h)
    gates, c, tanh_c = cache
    steps, batch, width = gates.shape
    n = width // 4
    grad_pre = xp.empty_like(gates)
    recurrent_t = xp.ascontiguousarray(recurrent_kernel.T)
    derivative = xp.empty((batch, width), dtype=gates.dtype)
    dh_next = xp.zeros((batch, n), dtype=gates.dtype)
    dc_next = xp.zeros((batch, n), dtype=gates.dtype)
    for t in range(steps - 1, -1, -1):
        a = gates[t]
        i, f, g, o = a[:, :n], a[:, n:2 * n], a[:, 2 * n:3 * n], a[:, 3 * n:]
        dh, passed_h = _new_path(grad_h[t] + dh_next, mask, t)
        dc_in, passed_c = _new_path(dc_next, mask, t)
        dc = tanh_c[t] * tanh_c[t]
        xp.subtract(1, dc, out=dc)
        dc *= o
        dc *= dh
        dc += dc_in                                           # (B, U)
        d = grad_pre[t]
        xp.multiply(dc, g, out=d[:, :n])
        xp.multiply(dc, c[t], out=d[:, n:2 * n])
        xp.multiply(dc, i, out=d[:, 2 * n:3 * n])
        xp.multiply(dh, tanh_c[t], out=d[:, 3 * n:])
        xp.subtract(1, a, out=derivative)
        derivative *= a                                       # s * (1 - s) on every block
        dg = derivative[:, 2 * n:3 * n]
        xp.multiply(g, g, out=dg)
        xp.subtract(1, dg, out=dg)                            # 1 - c~^2 on the tanh block
        d *= derivative
        dh_next = d @ recurrent_t                             # (B, 4U) @ (4U, U)
        dc_next = dc * f
        if mask is not None:
            dh_next += passed_h
            dc_next += passed_c
    return grad_pre


# -- gru: gates z, r, n as column blocks [0:U], [U:2U], [2U:3U] ---------------------------------

def gru_forward(xw, recurrent_kernel, recurrent_bias, mask):
    """h (T+1, B, U) and the cache (gates (T, B, 3U), and per step either h R_h + rb_h
    (reset_after, ``recurrent_bias`` given) or r * h_{t-1})."""
    xp = array_module(xw)
    steps, batch, width = xw.shape
    n = width // 3
    reset_after = recurrent_bias is not None
    h = xp.zeros((steps + 1, batch, n), dtype=xw.dtype)
    extra = xp.empty((steps, batch, n), dtype=xw.dtype)
    if reset_after:
        rec = xp.empty((batch, width), dtype=xw.dtype)
    else:
        gate_kernel = xp.ascontiguousarray(recurrent_kernel[:, :2 * n])
        candidate_kernel = xp.ascontiguousarray(recurrent_kernel[:, 2 * n:])
        rec = xp.empty((batch, 2 * n), dtype=xw.dtype)
    for t in range(steps):
        a = xw[t]
        z, r, cand = a[:, :n], a[:, n:2 * n], a[:, 2 * n:]
        if reset_after:
            xp.matmul(h[t], recurrent_kernel, out=rec)        # (B, U) @ (U, 3U)
            rec += recurrent_bias
            a[:, :2 * n] += rec[:, :2 * n]
            sigmoid_(a[:, :2 * n])
            extra[t] = rec[:, 2 * n:]
            cand += r * extra[t]
        else:
            xp.matmul(h[t], gate_kernel, out=rec)             # (B, U) @ (U, 2U)
            a[:, :2 * n] += rec
            sigmoid_(a[:, :2 * n])
            xp.multiply(r, h[t], out=extra[t])
            cand += extra[t] @ candidate_kernel               # (B, U) @ (U, U)
        xp.tanh(cand, out=cand)
        hn = h[t + 1]
        xp.subtract(h[t], cand, out=hn)                       # h_t = n + z * (h_{t-1} - n)
        hn *= z
        hn += cand
        if mask is not None:
            carry(hn, h[t], mask[t])
    return h, (xw, extra)


def gru_backward(grad_h, h, cache, recurrent_kernel, mask, reset_after):
    """BPTT for the GRU: (d/d(input pre-activations), d/d(recurrent products) or None).

    d(n) = dh (1 - z) (1 - n^2); d(z) = dh (h_{t-1} - n) z (1 - z);
    reset_after: d(r) = d(n) * (h R_h + rb_h) * r (1 - r), the recurrent product's gradient is
    [d(z), d(r), d(n) * r] and dh_{t-1} = dh z + that @ R^T;
    otherwise d(r h) = d(n) @ R_h^T, d(r) = d(r h) h_{t-1} r (1 - r) and
    dh_{t-1} = dh z + d(r h) r + [d(z), d(r)] @ R_zr^T.
    """
    xp = array_module(grad_h)
    gates, extra = cache
    steps, batch, width = gates.shape
    n = width // 3
    grad_pre = xp.empty_like(gates)
    grad_rec = xp.empty_like(gates) if reset_after else None
    recurrent_t = xp.ascontiguousarray(recurrent_kernel.T)            # (3U, U)
    dh_next = xp.zeros((batch, n), dtype=gates.dtype)
    for t in range(steps - 1, -1, -1):
        a = gates[t]
        z, r, cand = a[:, :n], a[:, n:2 * n], a[:, 2 * n:]
        dh, passed = _new_path(grad_h[t] + dh_next, mask, t)
        d = grad_pre[t]
        dz, dr, dn = d[:, :n], d[:, n:2 * n], d[:, 2 * n:]
        xp.multiply(cand, cand, out=dn)
        xp.subtract(1, dn, out=dn)
        dn *= dh
        dn *= 1 - z
        xp.subtract(h[t], cand, out=dz)
        dz *= dh
        dz *= z * (1 - z)
        if reset_after:
            xp.multiply(dn, extra[t], out=dr)
            dr *= r * (1 - r)
            rec = grad_rec[t]
            rec[:, :2 * n] = d[:, :2 * n]
            xp.multiply(dn, r, out=rec[:, 2 * n:])
            dh_next = rec @ recurrent_t                               # (B, 3U) @ (3U, U)
        else:
            d_reset_h = dn @ recurrent_t[2 * n:]                      # (B, U) @ (U, U)
            xp.multiply(d_reset_h, h[t], out=dr)
            dr *= r * (1 - r)
            dh_next = d[:, :2 * n] @ recurrent_t[:2 * n]              # (B, 2U) @ (2U, U)
            dh_next += d_reset_h * r
        dh_next += dh * z
        if passed is not None:
            dh_next += passed
    return grad_pre, grad_rec
