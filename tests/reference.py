"""Independent float64 references: the course's formulas, and the torch-style layer
(``xplstm.LSTM``: stacked, bidirectional, variable lengths), written out as plain per-step loops.

Nothing here imports xplstm; every test compares the library against these.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def as64(parameters):
    return {key: np.asarray(value, dtype=np.float64) for key, value in parameters.items()}


def rnn_cell_forward(xt, a_prev, p):
    a_next = np.tanh(p["Wax"] @ xt + p["Waa"] @ a_prev + p["ba"])
    return a_next, softmax(p["Wya"] @ a_next + p["by"])


def rnn_forward(x, a0, p):
    n_x, m, steps = x.shape
    a = np.zeros((p["Waa"].shape[0], m, steps))
    y = np.zeros((p["Wya"].shape[0], m, steps))
    a_prev = a0
    for t in range(steps):
        a_prev, y[:, :, t] = rnn_cell_forward(x[:, :, t], a_prev, p)
        a[:, :, t] = a_prev
    return a, y


def rnn_cell_backward(da_next, a_next, a_prev, xt, p):
    dz = (1.0 - a_next**2) * da_next
    return {
        "dxt": p["Wax"].T @ dz,
        "da_prev": p["Waa"].T @ dz,
        "dWax": dz @ xt.T,
        "dWaa": dz @ a_prev.T,
        "dba": dz.sum(axis=1, keepdims=True),
    }


def rnn_backward(da, x, a0, p):
    a, _ = rnn_forward(x, a0, p)
    steps = x.shape[2]
    grads = {key: np.zeros_like(p[key[1:]]) for key in ("dWax", "dWaa", "dba")}
    dx = np.zeros_like(x)
    carried = np.zeros_like(a0)
    for t in reversed(range(steps)):
        a_prev = a0 if t == 0 else a[:, :, t - 1]
        step = rnn_cell_backward(da[:, :, t] + carried, a[:, :, t], a_prev, x[:, :, t], p)
        dx[:, :, t] = step["dxt"]
        carried = step["da_prev"]
        for key in grads:
            grads[key] += step[key]
    return {"dx": dx, "da0": carried, **grads}


def lstm_cell_forward(xt, a_prev, c_prev, p):
    concat = np.concatenate([a_prev, xt], axis=0)
    ft = sigmoid(p["Wf"] @ concat + p["bf"])
    it = sigmoid(p["Wi"] @ concat + p["bi"])
    cct = np.tanh(p["Wc"] @ concat + p["bc"])
    c_next = ft * c_prev + it * cct
    ot = sigmoid(p["Wo"] @ concat + p["bo"])
    a_next = ot * np.tanh(c_next)
    yt = softmax(p["Wy"] @ a_next + p["by"])
    return a_next, c_next, yt, (ft, it, cct, ot)


def lstm_forward(x, a0, p):
    n_x, m, steps = x.shape
    n_a = a0.shape[0]
    a = np.zeros((n_a, m, steps))
    c = np.zeros((n_a, m, steps))
    y = np.zeros((p["Wy"].shape[0], m, steps))
    a_prev, c_prev = a0, np.zeros_like(a0)
    for t in range(steps):
        a_prev, c_prev, y[:, :, t], _ = lstm_cell_forward(x[:, :, t], a_prev, c_prev, p)
        a[:, :, t], c[:, :, t] = a_prev, c_prev
    return a, y, c


def lstm_cell_backward(da_next, dc_next, xt, a_prev, c_prev, p):
    n_a = a_prev.shape[0]
    _, c_next, _, (ft, it, cct, ot) = lstm_cell_forward(xt, a_prev, c_prev, p)
    concat = np.concatenate([a_prev, xt], axis=0)
    tanh_c = np.tanh(c_next)
    dc = dc_next + da_next * ot * (1.0 - tanh_c**2)
    pre = {
        "f": dc * c_prev * ft * (1.0 - ft),
        "i": dc * cct * it * (1.0 - it),
        "c": dc * it * (1.0 - cct**2),
        "o": da_next * tanh_c * ot * (1.0 - ot),
    }
    grads = {}
    dconcat = np.zeros_like(concat)
    for gate, dz in pre.items():
        grads[f"dW{gate}"] = dz @ concat.T
        grads[f"db{gate}"] = dz.sum(axis=1, keepdims=True)
        dconcat += p[f"W{gate}"].T @ dz
    grads["da_prev"] = dconcat[:n_a]
    grads["dxt"] = dconcat[n_a:]
    grads["dc_prev"] = dc * ft
    return grads


def lstm_backward(da, x, a0, p):
    a, _, c = lstm_forward(x, a0, p)
    steps = x.shape[2]
    keys = [f"{kind}{gate}" for gate in "fico" for kind in ("dW", "db")]
    grads = {key: np.zeros_like(p[key[1:]]) for key in keys}
    dx = np.zeros_like(x)
    da_carried, dc_carried = np.zeros_like(a0), np.zeros_like(a0)
    for t in reversed(range(steps)):
        a_prev = a0 if t == 0 else a[:, :, t - 1]
        c_prev = np.zeros_like(a0) if t == 0 else c[:, :, t - 1]
        step = lstm_cell_backward(
            da[:, :, t] + da_carried, dc_carried, x[:, :, t], a_prev, c_prev, p
        )
        dx[:, :, t] = step["dxt"]
        da_carried, dc_carried = step["da_prev"], step["dc_prev"]
        for key in keys:
            grads[key] += step[key]
    return {"dx": dx, "da0": da_carried, **grads}


def random_rnn_parameters(rng, n_x, n_a, n_y, scale=0.5):
    return {
        "Wax": scale * rng.standard_normal((n_a, n_x)),
        "Waa": scale * rng.standard_normal((n_a, n_a)),
        "Wya": scale * rng.standard_normal((n_y, n_a)),
        "ba": scale * rng.standard_normal((n_a, 1)),
        "by": scale * rng.standard_normal((n_y, 1)),
    }


def random_lstm_parameters(rng, n_x, n_a, n_y, scale=0.5):
    parameters = {}
    for gate in "fico":
        parameters[f"W{gate}"] = scale * rng.standard_normal((n_a, n_a + n_x))
        parameters[f"b{gate}"] = scale * rng.standard_normal((n_a, 1))
    parameters["Wy"] = scale * rng.standard_normal((n_y, n_a))
    parameters["by"] = scale * rng.standard_normal((n_y, 1))
    return parameters


# ------------------------------------------------------------ the torch-style layer (xplstm.LSTM)


def _suffix(layer, direction):
    return f"l{layer}" + ("_reverse" if direction else "")


def _layer_weights(params, layer, direction):
    suffix = _suffix(layer, direction)
    bias = params.get(f"bias_ih_{suffix}", 0.0) + params.get(f"bias_hh_{suffix}", 0.0)
    return params[f"weight_ih_{suffix}"], params[f"weight_hh_{suffix}"], bias


LN_EPSILON = 1e-5  # Ba, Kiros and Hinton's epsilon, as torch's LayerNorm


def layer_norm(v, gain, shift):
    """``gain * (v - mean(v)) / sqrt(var(v) + eps) + shift`` over the whole vector ``v``."""
    return gain * (v - v.mean()) / np.sqrt(v.var() + LN_EPSILON) + shift


def layer_norm_vjp(dy, v, gain):
    """``J^T dy`` for ``y = layer_norm(v, gain, .)``, with the Jacobian written out:
    ``J_ij = gain_i / s * (delta_ij - 1/n - x_i x_j / n)``, ``x = (v - mean) / s``."""
    n, s = v.size, np.sqrt(v.var() + LN_EPSILON)
    x = (v - v.mean()) / s
    jacobian = gain[:, None] / s * (np.eye(n) - 1.0 / n - np.outer(x, x) / n)
    return jacobian.T @ dy


def _layer_norms(params, suffix):
    """The six gains and shifts of a LayerNorm LSTM direction by part, or None."""
    if f"layer_norm_weight_ih_{suffix}" not in params:
        return None
    parts = ("weight_ih", "bias_ih", "weight_hh", "bias_hh", "weight_c", "bias_c")
    return {part: params[f"layer_norm_{part}_{suffix}"] for part in parts}


def _layer_norm_cell(w_ih, w_hh, bias, xt, h, c, ln):
    """One LayerNorm LSTM step (Ba, Kiros and Hinton 2016, section 3.1): ``z = LN(W_ih x) +
    LN(W_hh h) + bias``, ``c' = f c + i g``, cell output ``o tanh(LN(c'))``."""
    hidden = c.shape[0]
    u_x, u_h = w_ih @ xt, w_hh @ h
    z = layer_norm(u_x, ln["weight_ih"], ln["bias_ih"])
    z = z + layer_norm(u_h, ln["weight_hh"], ln["bias_hh"]) + bias
    i, f = sigmoid(z[:hidden]), sigmoid(z[hidden : 2 * hidden])
    g, o = np.tanh(z[2 * hidden : 3 * hidden]), sigmoid(z[3 * hidden :])
    c_next = f * c + i * g
    output = o * np.tanh(layer_norm(c_next, ln["weight_c"], ln["bias_c"]))
    return output, c_next, (i, f, g, o), (u_x, u_h)


def _layer_cell(w_ih, w_hh, bias, xt, h, c, peephole=None):
    """One step of one sequence, gates in torch order ``(i, f, g, o)``; returns the cell
    output ``o * tanh(c_next)`` (before any projection), ``c_next`` and the gates.

    With ``peephole`` ``(3, H)`` (Gers, Schraudolph and Schmidhuber 2002, rows w_ci, w_cf,
    w_co): ``i = sigmoid(z_i + w_ci c)``, ``f = sigmoid(z_f + w_cf c)``, ``o = sigmoid(z_o + w_co
    c_next)``.
    """
    hidden = c.shape[0]
    p = np.zeros((3, hidden)) if peephole is None else peephole
    z = w_ih @ xt + w_hh @ h + bias
    i = sigmoid(z[:hidden] + p[0] * c)
    f = sigmoid(z[hidden : 2 * hidden] + p[1] * c)
    g = np.tanh(z[2 * hidden : 3 * hidden])
    c_next = f * c + i * g
    o = sigmoid(z[3 * hidden :] + p[2] * c_next)
    return o * np.tanh(c_next), c_next, (i, f, g, o)


def _noise_at(noise, layer, direction, step, b, hidden, out):
    """The zoneout keeps ``(k_c, k_h)`` and recurrent-dropout mask of one step of sequence
    ``b`` (``step``: the how-manieth step its direction runs); no noise: ``0, 0, 1``."""
    masks = (noise or {}).get((layer, direction), {})

    def keep(name, width):
        array = masks.get(name)
        if array is None:
            return np.zeros(width)
        return np.asarray(array[step, b] if array.ndim == 3 else array[b], dtype=np.float64)

    recurrent = masks.get("recurrent_mask")
    scale = np.ones(out) if recurrent is None else np.asarray(recurrent[b], dtype=np.float64)
    return keep("zoneout_c", hidden), keep("zoneout_h", out), scale


def layer_forward(
    params, x, h0, c0, lengths, num_layers, bidirectional, hidden, proj_size=0, masks=None,
    noise=None,
):  # fmt: skip
    """``torch.nn.LSTM`` as plain loops, one sequence and one step at a time, time-major
    ``x (T, m, in)``; ``params`` are float64 arrays named as in its ``state_dict``.

    Sequence ``b`` runs steps ``0 .. L_b - 1`` (the reverse direction from ``L_b - 1`` back to 0);
    its outputs past ``L_b`` are zero. With ``proj_size = P > 0`` (LSTMP) the output and the
    recurrent input are ``h_t = W_hr (o * tanh(c_t))`` of size ``P``. ``masks``, one per layer
    but the last, multiply that layer's outputs before the next layer reads them (inverted
    dropout, already scaled). ``noise`` maps ``(layer, direction)`` to that direction's
    ``zoneout_c``, ``zoneout_h`` (Krueger et al. 2016: ``c_t = k_c c_{t-1} + (1 - k_c) c~_t``,
    the same for ``h``; indexed by the direction's own step count, or one row per sequence for
    every step) and ``recurrent_mask`` (Gal and Ghahramani 2016: ``h_{t-1} * mask`` enters
    ``W_hh``). Returns ``y (T, m, D * out)``, ``h_n``, ``c_n`` and the tape
    :func:`layer_backward` reads.
    """
    steps, batch, _ = x.shape
    directions = 2 if bidirectional else 1
    out = proj_size or hidden
    lengths = [steps] * batch if lengths is None else [int(n) for n in lengths]
    shape = (num_layers * directions, batch, hidden)
    h_shape = (num_layers * directions, batch, out)
    h0 = np.zeros(h_shape) if h0 is None else np.asarray(h0, dtype=np.float64)
    c0 = np.zeros(shape) if c0 is None else np.asarray(c0, dtype=np.float64)
    h_n, c_n = np.zeros(h_shape), np.zeros(shape)
    tape = []  # per layer: its input and, per (direction, sequence), the steps taken
    layer_input = np.asarray(x, dtype=np.float64)
    for layer in range(num_layers):
        output = np.zeros((steps, batch, directions * out))
        taken = {}
        for direction in range(directions):
            weights = _layer_weights(params, layer, direction)
            w_hr = params.get(f"weight_hr_{_suffix(layer, direction)}")
            peephole = params.get(f"weight_peephole_{_suffix(layer, direction)}")
            ln = _layer_norms(params, _suffix(layer, direction))
            row = layer * directions + direction
            columns = slice(direction * out, (direction + 1) * out)
            for b in range(batch):
                h, c = h0[row, b], c0[row, b]
                order = range(lengths[b]) if direction == 0 else range(lengths[b] - 1, -1, -1)
                taken[direction, b] = []
                for count, t in enumerate(order):
                    h_prev, c_prev = h, c
                    keep_c, keep_h, scale = _noise_at(
                        noise, layer, direction, count, b, hidden, out
                    )
                    h_in = h_prev * scale
                    products = None
                    if ln is None:
                        cell_output, c_tilde, gates = _layer_cell(
                            *weights, layer_input[t, b], h_in, c_prev, peephole
                        )
                    else:
                        cell_output, c_tilde, gates, products = _layer_norm_cell(
                            *weights, layer_input[t, b], h_in, c_prev, ln
                        )
                    h_tilde = cell_output if w_hr is None else w_hr @ cell_output
                    c = keep_c * c_prev + (1.0 - keep_c) * c_tilde
                    h = keep_h * h_prev + (1.0 - keep_h) * h_tilde
                    taken[direction, b].append(
                        (t, h_in, c_prev, c_tilde, gates, cell_output, (keep_c, keep_h, scale),
                         products)
                    )  # fmt: skip
                    output[t, b, columns] = h
                h_n[row, b], c_n[row, b] = h, c
        tape.append((layer_input, taken))
        layer_input = output
        if masks is not None and layer < num_layers - 1:
            layer_input = output * masks[layer]
    return output, h_n, c_n, tape


def layer_backward(params, tape, dy, dh_n, dc_n, hidden, proj_size=0, masks=None):
    """Gradients of ``sum(y * dy) + sum(h_n * dh_n) + sum(c_n * dc_n)`` for the forward that
    wrote ``tape`` (with the same ``proj_size`` and ``masks``; its ``noise`` is on the tape),
    back through each sequence's steps one at a time (``dh_n``/``dc_n`` may be None). Returns
    ``dx``, ``dh0``, ``dc0`` and the parameter gradients keyed like ``params``.
    """
    grads = {name: np.zeros(np.shape(value)) for name, value in params.items()}
    directions = 1 + max(direction for direction, _ in tape[0][1])
    out = proj_size or hidden
    shape = (len(tape) * directions, np.shape(dy)[1], hidden)
    h_shape = (len(tape) * directions, np.shape(dy)[1], out)
    dh_n = np.zeros(h_shape) if dh_n is None else np.asarray(dh_n, dtype=np.float64)
    dc_n = np.zeros(shape) if dc_n is None else np.asarray(dc_n, dtype=np.float64)
    dh0, dc0 = np.zeros(h_shape), np.zeros(shape)
    d_output = np.asarray(dy, dtype=np.float64)
    for layer in reversed(range(len(tape))):
        layer_input, taken = tape[layer]
        d_input = np.zeros_like(layer_input)
        for (direction, b), steps in taken.items():
            suffix = _suffix(layer, direction)
            w_ih, w_hh, _ = _layer_weights(params, layer, direction)
            w_hr = params.get(f"weight_hr_{suffix}")
            peephole = params.get(f"weight_peephole_{suffix}")
            p = np.zeros((3, hidden)) if peephole is None else peephole
            row = layer * directions + direction
            columns = slice(direction * out, (direction + 1) * out)
            dh, dc = dh_n[row, b], dc_n[row, b]
            ln = _layer_norms(params, suffix)
            for t, h_in, c_prev, c, (i, f, g, o), cell_output, noise, products in reversed(steps):
                if ln is not None:  # the LayerNorm step has its own chain rule
                    dh, dc = _layer_norm_step_backward(
                        grads, suffix, ln, params, layer_input[t, b], d_output[t, b, columns] + dh,
                        dc, h_in, c_prev, c, (i, f, g, o), noise, products, d_input[t, b],
                    )  # fmt: skip
                    continue
                keep_c, keep_h, scale = noise
                dh = dh + d_output[t, b, columns]
                dh, dh_kept = (1.0 - keep_h) * dh, keep_h * dh  # zoneout: to h~_t and h_{t-1}
                dc, dc_kept = (1.0 - keep_c) * dc, keep_c * dc
                if w_hr is not None:
                    grads[f"weight_hr_{suffix}"] += np.outer(dh, cell_output)
                    dh = w_hr.T @ dh  # now the gradient at o * tanh(c_t)
                tanh_c = np.tanh(c)
                dz_o = dh * tanh_c * o * (1.0 - o)
                dc = dc + dh * o * (1.0 - tanh_c**2) + dz_o * p[2]  # o sees c_t
                dz_i, dz_f = dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f)
                dz = np.concatenate([dz_i, dz_f, dc * i * (1.0 - g**2), dz_o])
                if peephole is not None:
                    grads[f"weight_peephole_{suffix}"] += np.stack(
                        [dz_i * c_prev, dz_f * c_prev, dz_o * c]
                    )
                grads[f"weight_ih_{suffix}"] += np.outer(dz, layer_input[t, b])
                grads[f"weight_hh_{suffix}"] += np.outer(dz, h_in)
                for name in (f"bias_ih_{suffix}", f"bias_hh_{suffix}"):
                    if name in grads:
                        grads[name] += dz
                d_input[t, b] += w_ih.T @ dz
                dh = scale * (w_hh.T @ dz) + dh_kept
                dc = dc * f + dz_i * p[0] + dz_f * p[1] + dc_kept
            dh0[row, b], dc0[row, b] = dh, dc
        d_output = d_input
        if masks is not None and layer > 0:
            d_output = d_input * masks[layer - 1]
    return d_output, dh0, dc0, grads


def _layer_norm_step_backward(
    grads, suffix, ln, params, xt, dh, dc, h_in, c_prev, c, gates, noise, products, d_xt
):
    """Back through one LayerNorm LSTM step (after zoneout's split): adds to ``grads`` and to
    ``d_xt`` in place, returns the gradients at ``h_{t-1}`` and ``c_{t-1}``."""
    (i, f, g, o), (keep_c, keep_h, scale), (u_x, u_h) = gates, noise, products
    w_ih, w_hh = params[f"weight_ih_{suffix}"], params[f"weight_hh_{suffix}"]
    dh, dh_kept = (1.0 - keep_h) * dh, keep_h * dh
    dc, dc_kept = (1.0 - keep_c) * dc, keep_c * dc
    n = layer_norm(c, ln["weight_c"], ln["bias_c"])
    dz_o = dh * np.tanh(n) * o * (1.0 - o)
    dn = dh * o * (1.0 - np.tanh(n) ** 2)
    grads[f"layer_norm_weight_c_{suffix}"] += dn * layer_norm(c, np.ones_like(c), 0.0)
    grads[f"layer_norm_bias_c_{suffix}"] += dn
    dc = dc + layer_norm_vjp(dn, c, ln["weight_c"])
    dz = np.concatenate(
        [dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g**2), dz_o]
    )
    for side, u in (("ih", u_x), ("hh", u_h)):
        unit_gain = np.ones_like(u)
        grads[f"layer_norm_weight_{side}_{suffix}"] += dz * layer_norm(u, unit_gain, 0.0)
        grads[f"layer_norm_bias_{side}_{suffix}"] += dz
    for name in (f"bias_ih_{suffix}", f"bias_hh_{suffix}"):
        if name in grads:
            grads[name] += dz
    du_x = layer_norm_vjp(dz, u_x, ln["weight_ih"])
    du_h = layer_norm_vjp(dz, u_h, ln["weight_hh"])
    grads[f"weight_ih_{suffix}"] += np.outer(du_x, xt)
    grads[f"weight_hh_{suffix}"] += np.outer(du_h, h_in)
    d_xt += w_ih.T @ du_x
    return scale * (w_hh.T @ du_h) + dh_kept, dc * f + dc_kept
