"""Independent float64 references: the course's formulas written out as plain per-step loops.

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
