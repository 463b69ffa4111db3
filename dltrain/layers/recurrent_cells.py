"""The time loops of simple_rnn, lstm and gru: forward and backpropagation through time.

One concept over ~300 lines: the three cells' loops share one layout and one set of helpers,
and each forward reads best beside its backward (and beside the other cells').

Layout: every step works on contiguous, feature-major blocks: gate ``k`` of step ``t`` is the row
block ``gates[t, k*U:(k+1)*U]`` (U, B) and states are (T+1, U, B). A step does ONE product for
all gates, then a few whole-block ufuncs with ``out=`` (a (B, G*U) row layout would make every
gate a strided column slice, about 4x slower per ufunc call than a contiguous block).

Each step multiplies ``weights`` (width, K) by its block of an ``operand`` (T+1, K, B) =
[h; 1; x] that the layer fills with the inputs and a row of ones: for simple_rnn and lstm the
weights are [R^T | b | W^T] and the product gives the whole pre-activation (recurrence, bias and
input projection) straight into the gate block; gru's rows are arranged for its reset gate (see
gru_forward). The loop writes each new state into the operand's first U rows. The gate blocks
end up holding the activated gates that backward needs. Backward returns the gradient of the pre-activations
(T, G*U, B) in feature-major memory; the layer turns it into the kernel, bias and input
gradients with products over all steps after the loop.

Gate order: the layer hands the cells its parameters with the columns permuted so the sigmoid
gates come first (lstm: o, i, f, c~; gru: z, r, h as Keras) and, for the forward pass only, with
the sigmoid gates' columns halved: sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, so ONE tanh over the
whole (G*U, B) block activates every gate, then one multiply-add on the sigmoid rows (tanh costs
less than exp here, and there is no reciprocal pass).

Masks: ``mask`` (T, 1, B) is 1.0 for real steps, 0.0 for padding. A masked step carries the state
(``carry``); in backward the gradient of a masked step's state passes straight to the previous
state and the step's own gates get none: with ``dh_new = dh * m`` the gates see ``dh_new`` and the
previous state gets ``dh - dh_new`` in addition. Without a mask none of that work runs.

Gradient of the states: ``grad_h`` (T, U, B) when every step's state is an output, else None and
``grad_last`` (U, B) is the gradient of the last state alone.
"""

from dltrain.backend import array_module


def sigmoid_from_tanh_(a):
    """a <- 0.5 * a + 0.5, in place: sigmoid(z) from a = tanh(z / 2)."""
    a *= 0.5
    a += 0.5


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


def feature_major(xp, steps, rows, batch, dtype):
    """An empty (steps, rows, batch) view of (rows, steps, batch) memory.

    Backward writes each step's gradient (rows, B) into it and the layer reads the whole as ONE
    (rows, T*B) matrix for its products over all steps. The loop computes a step in a contiguous
    scratch block and copies it in (a strided block costs more per ufunc than the copy).
    """
    return xp.empty((rows, steps, batch), dtype=dtype).transpose(1, 0, 2)


class _StateGradient:
    """d(loss)/d(h_t) per step, from the next step's product plus the output gradient.

    Two (U, B) buffers alternate: the step reads ``dh`` while its product writes ``next``.
    """

    def __init__(self, xp, grad_h, grad_last, shape, dtype):
        self.grad_h = grad_h
        self.dh = xp.zeros(shape, dtype=dtype)
        self.next = xp.zeros(shape, dtype=dtype)
        if grad_last is not None:
            self.next[...] = grad_last

    def step(self, t):
        """Swap the buffers; returns dh_t (including the output gradient of step t)."""
        self.dh, self.next = self.next, self.dh
        if self.grad_h is not None:
            self.dh += self.grad_h[t]
        return self.dh


# -- simple_rnn: h_{t+1} = tanh([R^T | b | W^T] [h_t; 1; x_t]) -------------------------------

def rnn_forward(weights, operand, units, mask):
    """(h, None): the states h (T+1, U, B), the first U rows of ``operand`` (T+1, K, B): step
    ``t`` (from 0) reads operand[t] = [h_t; 1; x_t] and its ONE product ``weights @ operand[t]``,
    (U, K) @ (K, B), gives the recurrence, the bias and the input projection together."""
    xp = array_module(operand)
    steps = operand.shape[0] - 1
    h = operand[:, :units]                                            # h[0]: the initial state
    for t in range(steps):
        a = h[t + 1]
        xp.matmul(weights, operand[t], out=a)
        xp.tanh(a, out=a)
        if mask is not None:
            carry(a, h[t], mask[t])
    return h, None


def rnn_backward(grad_h, grad_last, h, cache, mask, recurrent_kernel, out=None):
    """d/d(a_t) = dh_t * (1 - h_t^2); dh_{t-1} = R d/d(a_t) (+ carried gradient). ``cache`` is
    unused (the states are all it needs); ``out``, if given, receives the result."""
    xp = array_module(h)
    steps, units, batch = h.shape[0] - 1, h.shape[1], h.shape[2]
    grad_pre = feature_major(xp, steps, units, batch, h.dtype) if out is None else out
    d = xp.empty((units, batch), dtype=h.dtype)
    state = _StateGradient(xp, grad_h, grad_last, (units, batch), h.dtype)
    for t in range(steps - 1, -1, -1):
        dh, passed = _new_path(state.step(t), mask, t)
        xp.multiply(h[t + 1], h[t + 1], out=d)
        xp.subtract(1, d, out=d)
        d *= dh
        xp.matmul(recurrent_kernel, d, out=state.next)                # (U, U) @ (U, B)
        grad_pre[t] = d
        if passed is not None:
            state.next += passed
    return grad_pre


# -- lstm: internal gate blocks o, i, f, c~ as rows [0:U], [U:2U], [2U:3U], [3U:4U] -------------
# (the sigmoid gates o, i, f first, for the one sigmoid pass; the gates whose gradient scales
# with the cell's, i, f, c~, last, for the one product with it in backward)

#: steps whose state-independent backward factors are computed together (lstm_backward)
LSTM_CHUNK = 32


def lstm_forward(weights, operand, units, mask):
    """h (T+1, U, B), the first U rows of ``operand`` (as rnn_forward), and the cache (gates
    (T, 4U, B), cells (T+1, U, B), tanh(c_t) (T, U, B)).

    ``weights`` (4U, K) come with the sigmoid rows halved (see the module docstring); the step's
    product writes the pre-activations straight into its gate block.
    """
    xp = array_module(operand)
    steps, batch = operand.shape[0] - 1, operand.shape[2]
    n = units
    h = operand[:, :n]
    gates = xp.empty((steps, 4 * n, batch), dtype=operand.dtype)
    c = xp.zeros((steps + 1, n, batch), dtype=operand.dtype)
    tanh_c = xp.empty((steps, n, batch), dtype=operand.dtype)
    input_cell = xp.empty((n, batch), dtype=operand.dtype)
    for t in range(steps):
        a = gates[t]                                          # (4U, B)
        xp.matmul(weights, operand[t], out=a)                 # (4U, K) @ (K, B)
        xp.tanh(a, out=a)
        sigmoid_from_tanh_(a[:3 * n])
        xp.multiply(a[2 * n:3 * n], c[t], out=c[t + 1])       # f * c_{t-1}
        xp.multiply(a[n:2 * n], a[3 * n:], out=input_cell)    # i * c~
        c[t + 1] += input_cell
        xp.tanh(c[t + 1], out=tanh_c[t])
        xp.multiply(a[:n], tanh_c[t], out=h[t + 1])           # o * tanh(c_t)
        if mask is not None:
            carry(c[t + 1], c[t], mask[t])
            carry(h[t + 1], h[t], mask[t])
    return h, (gates, c, tanh_c)


def _lstm_factors(gates, c, tanh_c, n, out, cell_out):
    """The state-independent factors of a run of steps (k, 4U, B), written into ``out``:
    d(gates) = [dh * out_o, dc * out_i, dc * out_f, dc * out_c~] with
    out_o = tanh(c_t) o (1 - o), out_i = c~ i (1 - i), out_f = c_{t-1} f (1 - f),
    out_c~ = i (1 - c~^2); and ``cell_out`` = o (1 - tanh(c_t)^2), dc's share of dh."""
    xp = array_module(gates)
    sig, cand = gates[:, :3 * n], gates[:, 3 * n:]
    xp.subtract(1, sig, out=out[:, :3 * n])
    out[:, :3 * n] *= sig                                     # s (1 - s)
    xp.multiply(cand, cand, out=out[:, 3 * n:])
    xp.subtract(1, out[:, 3 * n:], out=out[:, 3 * n:])        # 1 - c~^2
    out[:, :n] *= tanh_c
    out[:, n:2 * n] *= cand
    out[:, 2 * n:3 * n] *= c
    out[:, 3 * n:] *= gates[:, n:2 * n]
    xp.multiply(tanh_c, tanh_c, out=cell_out)
    xp.subtract(1, cell_out, out=cell_out)
    cell_out *= gates[:, :n]


def lstm_backward(grad_h, grad_last, h, cache, mask, recurrent_kernel, out=None):
    """BPTT for the LSTM; recurrent_kernel is R (U, 4U) in the internal order, not halved;
    ``out`` (T, 4U, B), if given, receives the result.

    With dc = dc_{t+1} + dh * o * (1 - tanh(c_t)^2):
    d(o) = dh * tanh(c_t), d(i) = dc * c~, d(f) = dc * c_{t-1}, d(c~) = dc * i, each times its
    activation's derivative (s * (1 - s) for sigmoid, 1 - c~^2 for tanh);
    dh_{t-1} = R d(gates), dc_{t-1} = dc * f.

    Everything that does not depend on dh and dc is computed LSTM_CHUNK steps at a time, into a
    buffer (k, 4U, B) that the steps then scale in place by dh and dc and that goes into the
    feature-major gradient in one copy per chunk: a step is five small ufuncs and its product.
    """
    xp = array_module(h)
    gates, c, tanh_c = cache
    steps, width, batch = gates.shape
    n = width // 4
    chunk = min(LSTM_CHUNK, steps)
    grad_pre = feature_major(xp, steps, width, batch, gates.dtype) if out is None else out
    factors = xp.empty((chunk, width, batch), dtype=gates.dtype)
    cell_factors = xp.empty((chunk, n, batch), dtype=gates.dtype)
    state = _StateGradient(xp, grad_h, grad_last, (n, batch), gates.dtype)
    dc = xp.empty((n, batch), dtype=gates.dtype)
    dc_next = xp.zeros((n, batch), dtype=gates.dtype)
    for end in range(steps, 0, -chunk):
        start = max(0, end - chunk)
        d_run, cell_run = factors[:end - start], cell_factors[:end - start]
        _lstm_factors(gates[start:end], c[start:end], tanh_c[start:end], n, d_run, cell_run)
        for t in range(end - 1, start - 1, -1):
            d = d_run[t - start]                              # (4U, B), becomes d(gates)
            dh, passed_h = _new_path(state.step(t), mask, t)
            dc_in, passed_c = _new_path(dc_next, mask, t)
            xp.multiply(dh, cell_run[t - start], out=dc)
            dc += dc_in                                       # (U, B)
            d[:n] *= dh
            scaled_by_cell = d[n:].reshape(3, n, batch)       # the i, f, c~ rows: one call
            scaled_by_cell *= dc
            xp.matmul(recurrent_kernel, d, out=state.next)    # (U, 4U) @ (4U, B)
            xp.multiply(dc, gates[t, 2 * n:3 * n], out=dc_next)
            if mask is not None:
                state.next += passed_h
                dc_next += passed_c
        grad_pre[start:end] = d_run
    return grad_pre


# -- gru: gate blocks z, r as rows [0:U], [U:2U], then the candidate's parts --------------------
# reset_after: rows [2U:3U] = R_h^T h + rb_h (kept for backward), [3U:4U] = W_h^T x + b_h, which
# becomes the candidate n; otherwise rows [2U:3U] = W_h^T x + b_h, becoming n, and a second
# product R_h^T (r * h) per step.

#: steps whose gate gradients are gathered before going into the feature-major array (gru_backward)
GRU_CHUNK = 32


def gru_forward(weights, operand, units, mask, candidate_t=None):
    """h (T+1, U, B), the first U rows of ``operand`` (as rnn_forward), and the cache (gates
    (T, width, B), and without reset_after the products' operands r * h_t (T, U, B) in
    feature-major memory, else None).

    reset_after: ``weights`` (4U, K) give [z, r, R_h^T h + rb_h, W_h^T x + b_h] in one product
    and n = tanh(W_h^T x + b_h + r * (R_h^T h + rb_h)). Otherwise (``candidate_t`` = R_h^T given)
    ``weights`` (3U, K) give [z, r, W_h^T x + b_h] and n = tanh(W_h^T x + b_h + R_h^T (r * h)).
    z and r rows come halved (see the module docstring). h_{t+1} = n + z * (h_t - n).
    """
    xp = array_module(operand)
    steps, batch = operand.shape[0] - 1, operand.shape[2]
    n = units
    width = weights.shape[0]
    h = operand[:, :n]
    gates = xp.empty((steps, width, batch), dtype=operand.dtype)
    reset_h = None if candidate_t is None else feature_major(xp, steps, n, batch, operand.dtype)
    scratch = xp.empty((n, batch), dtype=operand.dtype)
    for t in range(steps):
        a = gates[t]
        xp.matmul(weights, operand[t], out=a)                 # (width, K) @ (K, B)
        z, r, cand = a[:n], a[n:2 * n], a[width - n:]
        xp.tanh(a[:2 * n], out=a[:2 * n])
        sigmoid_from_tanh_(a[:2 * n])
        if candidate_t is None:
            xp.multiply(r, a[2 * n:3 * n], out=scratch)       # r * (R_h^T h + rb_h)
        else:
            xp.multiply(r, h[t], out=reset_h[t])
            xp.matmul(candidate_t, reset_h[t], out=scratch)   # (U, U) @ (U, B)
        cand += scratch
        xp.tanh(cand, out=cand)
        hn = h[t + 1]
        xp.subtract(h[t], cand, out=hn)                       # h_{t+1} = n + z * (h_t - n)
        hn *= z
        hn += cand
        if mask is not None:
            carry(hn, h[t], mask[t])
    return h, (gates, reset_h)


def gru_backward(grad_h, grad_last, h, cache, mask, recurrent_kernel, candidate_kernel=None, out=None):
    """BPTT for the GRU: d/d(the step product's rows) (T, width, B) in feature-major memory.

    d(n) = dh (1 - z) (1 - n^2); d(z) = dh (h_t - n) z (1 - z).
    reset_after: the rows R_h^T h + rb_h get d(n) * r, d(r) = d(n) (R_h^T h + rb_h) r (1 - r),
    and dh_t = dh z + R [d(z), d(r), d(n) r] with ``recurrent_kernel`` R = [R_z, R_r, R_h]
    (U, 3U); otherwise d(r h) = R_h d(n) (``candidate_kernel`` R_h (U, U)),
    d(r) = d(r h) h_t r (1 - r) and dh_t = dh z + d(r h) r + [R_z, R_r] [d(z), d(r)].
    Each chunk of GRU_CHUNK steps is gathered in a contiguous buffer and copied in at once (into
    ``out``, if given).
    """
    xp = array_module(h)
    gates, reset_h = cache
    steps, width, batch = gates.shape
    reset_after = candidate_kernel is None
    n = width // 4 if reset_after else width // 3
    chunk = min(GRU_CHUNK, steps)
    grad_pre = feature_major(xp, steps, width, batch, gates.dtype) if out is None else out
    buffer = xp.empty((chunk, width, batch), dtype=gates.dtype)
    if not reset_after:
        d_reset_h = xp.empty((n, batch), dtype=gates.dtype)
    state = _StateGradient(xp, grad_h, grad_last, (n, batch), gates.dtype)
    one_minus = xp.empty((n, batch), dtype=gates.dtype)
    for end in range(steps, 0, -chunk):
        start = max(0, end - chunk)
        for t in range(end - 1, start - 1, -1):
            a, d = gates[t], buffer[t - start]
            z, r, cand = a[:n], a[n:2 * n], a[width - n:]
            dz, dr, dcand = d[:n], d[n:2 * n], d[width - n:]
            dh, passed = _new_path(state.step(t), mask, t)
            xp.subtract(1, z, out=one_minus)
            xp.multiply(cand, cand, out=dcand)
            xp.subtract(1, dcand, out=dcand)
            dcand *= dh
            dcand *= one_minus
            xp.subtract(h[t], cand, out=dz)
            dz *= dh
            dz *= one_minus
            dz *= z
            xp.subtract(1, r, out=one_minus)
            if reset_after:
                xp.multiply(dcand, a[2 * n:3 * n], out=dr)
                dr *= one_minus
                dr *= r
                xp.multiply(dcand, r, out=d[2 * n:3 * n])
                xp.matmul(recurrent_kernel, d[:3 * n], out=state.next)    # (U, 3U) @ (3U, B)
            else:
                xp.matmul(candidate_kernel, dcand, out=d_reset_h)         # (U, U) @ (U, B)
                xp.multiply(d_reset_h, h[t], out=dr)
                dr *= one_minus
                dr *= r
                xp.matmul(recurrent_kernel, d[:2 * n], out=state.next)    # (U, 2U) @ (2U, B)
                d_reset_h *= r
                state.next += d_reset_h
            dh *= z
            state.next += dh
            if passed is not None:
                state.next += passed
        grad_pre[start:end] = buffer[:end - start]
    return grad_pre


#: per layer type: (forward, backward) of its time loops, as the layer and the helper process
#: call them: forward(weights, operand, units, mask, **kernels) -> (h, cache);
#: backward(grad_h, grad_last, h, cache, mask, out=None, **kernels) -> d(step products)
CELLS = {"simple_rnn": (rnn_forward, rnn_backward), "lstm": (lstm_forward, lstm_backward),
         "gru": (gru_forward, gru_backward)}
