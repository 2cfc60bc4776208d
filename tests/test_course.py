"""The course API against float64 loops, finite differences and the course's own examples."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, numerical_gradient, to_numpy

import xplstm

SIZES = dict(n_x=3, n_a=5, n_y=2, m=4, T_x=6)


def put(xp, dtype, value):
    if isinstance(value, dict):
        return {key: put(xp, dtype, item) for key, item in value.items()}
    return xp.asarray(np.asarray(value, dtype=dtype))


def lstm_problem(rng, n_x=3, n_a=5, n_y=2, m=4, T_x=6):
    x = rng.standard_normal((n_x, m, T_x))
    a0 = rng.standard_normal((n_a, m))
    return x, a0, ref.random_lstm_parameters(rng, n_x, n_a, n_y)


def rnn_problem(rng, n_x=3, n_a=5, n_y=2, m=4, T_x=6):
    x = rng.standard_normal((n_x, m, T_x))
    a0 = rng.standard_normal((n_a, m))
    return x, a0, ref.random_rnn_parameters(rng, n_x, n_a, n_y)


# ------------------------------------------------------------------ the course's published examples


def test_rnn_cell_forward_matches_the_course_example():
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    parameters = {
        "Waa": np.random.randn(5, 5),
        "Wax": np.random.randn(5, 3),
        "Wya": np.random.randn(2, 5),
        "ba": np.random.randn(5, 1),
        "by": np.random.randn(2, 1),
    }
    a_next, yt_pred, _ = xplstm.rnn_cell_forward(xt, a_prev, parameters)
    # Values printed in the course notebook ("Expected Output").
    np.testing.assert_allclose(
        a_next[4],
        [0.59584544, 0.18141802, 0.61311866, 0.99808218, 0.85016201,
         0.99980978, -0.18887155, 0.99815551, 0.6531151, 0.82872037],
        atol=1e-8,
    )  # fmt: skip
    np.testing.assert_allclose(
        yt_pred[1],
        [0.9888161, 0.01682021, 0.21140899, 0.36817467, 0.98988387,
         0.88945212, 0.36920224, 0.9966312, 0.9982559, 0.17746526],
        atol=1e-8,
    )  # fmt: skip


def test_lstm_cell_forward_matches_the_course_example():
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    c_prev = np.random.randn(5, 10)
    parameters = {}
    for key, shape in [("Wf", (5, 8)), ("bf", (5, 1)), ("Wi", (5, 8)), ("bi", (5, 1)),
                       ("Wo", (5, 8)), ("bo", (5, 1)), ("Wc", (5, 8)), ("bc", (5, 1)),
                       ("Wy", (2, 5)), ("by", (2, 1))]:  # fmt: skip
        parameters[key] = np.random.randn(*shape)
    a_next, c_next, yt, cache = xplstm.lstm_cell_forward(xt, a_prev, c_prev, parameters)
    np.testing.assert_allclose(
        a_next[4],
        [-0.66408471, 0.0036921, 0.02088357, 0.22834167, -0.85575339,
         0.00138482, 0.76566531, 0.34631421, -0.00215674, 0.43827275],
        atol=1e-8,
    )  # fmt: skip
    np.testing.assert_allclose(
        c_next[2],
        [0.63267805, 1.00570849, 0.35504474, 0.20690913, -1.64566718,
         0.11832942, 0.76449811, -0.0981561, -0.74348425, -0.26810932],
        atol=1e-8,
    )  # fmt: skip
    np.testing.assert_allclose(
        yt[1],
        [0.79913913, 0.15986619, 0.22412122, 0.15606108, 0.97057211,
         0.31146381, 0.00943007, 0.12666353, 0.39380172, 0.07828381],
        atol=1e-8,
    )  # fmt: skip
    assert len(cache) == 10


# -------------------------------------------------------------- agreement with the float64 loops


def test_rnn_cell_forward_and_backward(xp, dtype):
    rng = np.random.default_rng(0)
    x, a0, p = rnn_problem(rng)
    xt = x[:, :, 0]
    a_next, yt, cache = xplstm.rnn_cell_forward(
        put(xp, dtype, xt), put(xp, dtype, a0), put(xp, dtype, p)
    )
    want_a, want_y = ref.rnn_cell_forward(xt, a0, p)
    assert_close(a_next, want_a, dtype, name="a_next")
    assert_close(yt, want_y, dtype, name="yt_pred")
    assert len(cache) == 4 and cache[0] is a_next
    da_next = rng.standard_normal(a0.shape)
    grads = xplstm.rnn_cell_backward(put(xp, dtype, da_next), cache)
    want = ref.rnn_cell_backward(da_next, want_a, a0, xt, p)
    assert set(grads) == set(want)
    for key in want:
        assert_close(grads[key], want[key], dtype, name=key)


def test_rnn_forward_and_backward(xp, dtype):
    rng = np.random.default_rng(1)
    x, a0, p = rnn_problem(rng)
    a, y, caches = xplstm.rnn_forward(put(xp, dtype, x), put(xp, dtype, a0), put(xp, dtype, p))
    want_a, want_y = ref.rnn_forward(x, a0, p)
    assert_close(a, want_a, dtype, name="a")
    assert_close(y, want_y, dtype, name="y_pred")
    assert len(caches) == 2 and len(caches[0]) == x.shape[2]
    da = rng.standard_normal(want_a.shape)
    grads = xplstm.rnn_backward(put(xp, dtype, da), caches)
    want = ref.rnn_backward(da, x, a0, p)
    assert set(grads) == set(want)
    for key in want:
        assert_close(grads[key], want[key], dtype, name=key)


def test_lstm_cell_forward_and_backward(xp, dtype):
    rng = np.random.default_rng(2)
    x, a0, p = lstm_problem(rng)
    xt, c_prev = x[:, :, 0], rng.standard_normal(a0.shape)
    a_next, c_next, yt, cache = xplstm.lstm_cell_forward(
        put(xp, dtype, xt), put(xp, dtype, a0), put(xp, dtype, c_prev), put(xp, dtype, p)
    )
    want_a, want_c, want_y, want_gates = ref.lstm_cell_forward(xt, a0, c_prev, p)
    assert_close(a_next, want_a, dtype, name="a_next")
    assert_close(c_next, want_c, dtype, name="c_next")
    assert_close(yt, want_y, dtype, name="yt_pred")
    for name, gate, want_gate in zip(
        ("ft", "it", "cct", "ot"), cache[4:8], want_gates, strict=True
    ):
        assert_close(gate, want_gate, dtype, name=name)
    da_next, dc_next = rng.standard_normal(a0.shape), rng.standard_normal(a0.shape)
    grads = xplstm.lstm_cell_backward(put(xp, dtype, da_next), put(xp, dtype, dc_next), cache)
    want = ref.lstm_cell_backward(da_next, dc_next, xt, a0, c_prev, p)
    assert set(grads) == set(want)
    for key in want:
        assert_close(grads[key], want[key], dtype, name=key)


def test_lstm_forward_and_backward(xp, dtype):
    rng = np.random.default_rng(3)
    x, a0, p = lstm_problem(rng)
    a, y, c, caches = xplstm.lstm_forward(put(xp, dtype, x), put(xp, dtype, a0), put(xp, dtype, p))
    want_a, want_y, want_c = ref.lstm_forward(x, a0, p)
    assert_close(a, want_a, dtype, name="a")
    assert_close(y, want_y, dtype, name="y")
    assert_close(c, want_c, dtype, name="c")
    da = rng.standard_normal(want_a.shape)
    grads = xplstm.lstm_backward(put(xp, dtype, da), caches)
    want = ref.lstm_backward(da, x, a0, p)
    assert set(grads) == set(want)
    for key in want:
        assert_close(grads[key], want[key], dtype, name=key)


def test_lstm_backward_leaves_the_caches_reusable(xp):
    rng = np.random.default_rng(4)
    x, a0, p = lstm_problem(rng)
    _, _, _, caches = xplstm.lstm_forward(xp.asarray(x), xp.asarray(a0), put(xp, np.float64, p))
    da = xp.asarray(rng.standard_normal((5, 4, 6)))
    first = xplstm.lstm_backward(da, caches)
    second = xplstm.lstm_backward(da, caches)
    for key in first:
        np.testing.assert_array_equal(to_numpy(first[key]), to_numpy(second[key]))


# ------------------------------------------------------------------- step by step vs whole sequence


def test_lstm_stepwise_equals_whole_sequence(xp):
    rng = np.random.default_rng(5)
    x, a0, p = lstm_problem(rng)
    x, a0, p = xp.asarray(x), xp.asarray(a0), put(xp, np.float64, p)
    a, y, c, caches = xplstm.lstm_forward(x, a0, p)
    a_prev, c_prev = a0, xp.zeros_like(a0)
    step_caches = []
    for t in range(x.shape[2]):
        a_prev, c_prev, yt, cache = xplstm.lstm_cell_forward(x[:, :, t], a_prev, c_prev, p)
        step_caches.append(cache)
        assert_close(a_prev, a[:, :, t], np.float64, name="a")
        assert_close(c_prev, c[:, :, t], np.float64, name="c")
        assert_close(yt, y[:, :, t], np.float64, name="y")
    da = xp.asarray(rng.standard_normal(a.shape))
    whole = xplstm.lstm_backward(da, caches)
    da_carried, dc_carried = xp.zeros_like(a0), xp.zeros_like(a0)
    totals = {key: 0 for key in whole if key.startswith(("dW", "db"))}
    for t in reversed(range(x.shape[2])):
        step = xplstm.lstm_cell_backward(da[:, :, t] + da_carried, dc_carried, step_caches[t])
        assert_close(step["dxt"], whole["dx"][:, :, t], np.float64, name="dxt")
        da_carried, dc_carried = step["da_prev"], step["dc_prev"]
        for key in totals:
            totals[key] = totals[key] + step[key]
    assert_close(da_carried, whole["da0"], np.float64, name="da0")
    for key, total in totals.items():
        assert_close(total, whole[key], np.float64, name=key)


def test_rnn_stepwise_equals_whole_sequence(xp):
    rng = np.random.default_rng(6)
    x, a0, p = rnn_problem(rng)
    x, a0, p = xp.asarray(x), xp.asarray(a0), put(xp, np.float64, p)
    a, y, caches = xplstm.rnn_forward(x, a0, p)
    a_prev = a0
    for t in range(x.shape[2]):
        a_prev, yt, cache = xplstm.rnn_cell_forward(x[:, :, t], a_prev, p)
        assert_close(a_prev, a[:, :, t], np.float64, name="a")
        assert_close(yt, y[:, :, t], np.float64, name="y")
    da = xp.asarray(rng.standard_normal(a.shape))
    whole = xplstm.rnn_backward(da, caches)
    carried = xp.zeros_like(a0)
    totals = {key: 0 for key in ("dWax", "dWaa", "dba")}
    for t in reversed(range(x.shape[2])):
        step = xplstm.rnn_cell_backward(da[:, :, t] + carried, caches[0][t])
        assert_close(step["dxt"], whole["dx"][:, :, t], np.float64, name="dxt")
        carried = step["da_prev"]
        for key in totals:
            totals[key] = totals[key] + step[key]
    assert_close(carried, whole["da0"], np.float64, name="da0")
    for key, total in totals.items():
        assert_close(total, whole[key], np.float64, name=key)


# ------------------------------------------------------------------------- finite differences


def relative_error(analytic, numeric):
    analytic = to_numpy(analytic)
    return float(
        np.linalg.norm(analytic - numeric)
        / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-300)
    )


def test_lstm_cell_backward_finite_differences():
    rng = np.random.default_rng(7)
    x, a0, p = lstm_problem(rng, m=3)
    xt, c_prev = x[:, :, 0].copy(), rng.standard_normal(a0.shape)
    weight_a, weight_c = rng.standard_normal(a0.shape), rng.standard_normal(a0.shape)

    def loss():
        a_next, c_next, _, _ = xplstm.lstm_cell_forward(xt, a0, c_prev, p)
        return float((weight_a * a_next).sum() + (weight_c * c_next).sum())

    _, _, _, cache = xplstm.lstm_cell_forward(xt, a0, c_prev, p)
    grads = xplstm.lstm_cell_backward(weight_a, weight_c, cache)
    checks = {"dxt": xt, "da_prev": a0, "dc_prev": c_prev}
    checks |= {f"{kind}{gate}": p[f"{kind[1:]}{gate}"] for gate in "fico" for kind in ("dW", "db")}
    for key, array in checks.items():
        assert relative_error(grads[key], numerical_gradient(loss, array)) < 1e-6, key


def test_lstm_backward_finite_differences():
    rng = np.random.default_rng(8)
    x, a0, p = lstm_problem(rng, m=2, T_x=4)
    weight = rng.standard_normal((5, 2, 4))

    def loss():
        a, _, _, _ = xplstm.lstm_forward(x, a0, p)
        return float((weight * a).sum())

    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    grads = xplstm.lstm_backward(weight, caches)
    checks = {"dx": x, "da0": a0}
    checks |= {f"{kind}{gate}": p[f"{kind[1:]}{gate}"] for gate in "fico" for kind in ("dW", "db")}
    for key, array in checks.items():
        assert relative_error(grads[key], numerical_gradient(loss, array)) < 1e-6, key


def test_rnn_cell_backward_finite_differences():
    rng = np.random.default_rng(9)
    x, a0, p = rnn_problem(rng, m=3)
    xt = x[:, :, 0].copy()
    weight = rng.standard_normal(a0.shape)

    def loss():
        return float((weight * xplstm.rnn_cell_forward(xt, a0, p)[0]).sum())

    _, _, cache = xplstm.rnn_cell_forward(xt, a0, p)
    grads = xplstm.rnn_cell_backward(weight, cache)
    checks = {"dxt": xt, "da_prev": a0, "dWax": p["Wax"], "dWaa": p["Waa"], "dba": p["ba"]}
    for key, array in checks.items():
        assert relative_error(grads[key], numerical_gradient(loss, array)) < 1e-6, key


def test_rnn_backward_finite_differences():
    rng = np.random.default_rng(10)
    x, a0, p = rnn_problem(rng, m=2, T_x=4)
    weight = rng.standard_normal((5, 2, 4))

    def loss():
        return float((weight * xplstm.rnn_forward(x, a0, p)[0]).sum())

    _, _, caches = xplstm.rnn_forward(x, a0, p)
    grads = xplstm.rnn_backward(weight, caches)
    checks = {"dx": x, "da0": a0, "dWax": p["Wax"], "dWaa": p["Waa"], "dba": p["ba"]}
    for key, array in checks.items():
        assert relative_error(grads[key], numerical_gradient(loss, array)) < 1e-6, key


# ------------------------------------------------------------------------------ layouts, numerics


def test_fortran_ordered_and_strided_inputs():
    rng = np.random.default_rng(11)
    x, a0, p = lstm_problem(rng)
    want_a, want_y, want_c = ref.lstm_forward(x, a0, p)
    x_fortran = np.asfortranarray(x)
    big = np.zeros((x.shape[0], 2 * x.shape[1], x.shape[2]))
    big[:, ::2] = x
    p_fortran = {key: np.asfortranarray(value) for key, value in p.items()}
    for x_in in (x_fortran, big[:, ::2]):
        a, y, c, caches = xplstm.lstm_forward(x_in, np.asfortranarray(a0), p_fortran)
        assert_close(a, want_a, np.float64, name="a")
        assert_close(y, want_y, np.float64, name="y")
        assert_close(c, want_c, np.float64, name="c")
        da = np.ones_like(want_a)
        assert_close(
            xplstm.lstm_backward(da, caches)["dx"],
            ref.lstm_backward(da, x, a0, p)["dx"],
            np.float64,
            name="dx",
        )


def test_extreme_pre_activations_do_not_overflow_or_warn():
    # pytest is configured to turn RuntimeWarning (overflow, invalid) into errors.
    rng = np.random.default_rng(12)
    x, a0, p = lstm_problem(rng)
    p = {key: value * 1e4 for key, value in p.items()}
    for dtype in (np.float32, np.float64):
        a, y, c, caches = xplstm.lstm_forward(x.astype(dtype), a0.astype(dtype), put(np, dtype, p))
        assert np.isfinite(a).all() and np.isfinite(y).all() and np.isfinite(c).all()
        np.testing.assert_allclose(y.sum(axis=0), 1.0, rtol=1e-5)
        grads = xplstm.lstm_backward(np.ones_like(a), caches)
        assert all(np.isfinite(value).all() for value in grads.values())
    z = np.array([[-1e4, 1e4, 0.0]])
    np.testing.assert_array_equal(xplstm.sigmoid(z, np), [[0.0, 1.0, 0.5]])
    np.testing.assert_allclose(
        xplstm.softmax(np.array([[1e4], [-1e4], [1e4]]), np)[:, 0], [0.5, 0, 0.5]
    )


def test_float32_stays_float32_and_matches_float64():
    """Float32 in, float32 out, within float32's tolerance of the float64 loops run on the same
    (float32-rounded) inputs, so only the float32 arithmetic is measured."""
    rng = np.random.default_rng(13)
    x, a0, p = lstm_problem(rng)
    x, a0, p = put(np, np.float32, x), put(np, np.float32, a0), put(np, np.float32, p)
    a, y, c, caches = xplstm.lstm_forward(x, a0, p)
    da = rng.standard_normal(a.shape).astype(np.float32)
    grads = xplstm.lstm_backward(da, caches)
    p64 = ref.as64(p)
    x64, a064, da64 = (value.astype(np.float64) for value in (x, a0, da))
    for got, want, name in zip((a, y, c), ref.lstm_forward(x64, a064, p64), "ayc", strict=True):
        assert_close(got, want, np.float32, name=name)  # also checks the dtype is float32
    want = ref.lstm_backward(da64, x64, a064, p64)
    assert set(grads) == set(want)
    for key in want:
        assert_close(grads[key], want[key], np.float32, name=key)


# ------------------------------------------------------------------------------- torch oracle


@pytest.mark.oracle
def test_lstm_forward_and_backward_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x, a0, p = lstm_problem(rng, n_x=4, n_a=6, m=3, T_x=5)
    n_a = 6
    lstm = torch.nn.LSTM(4, n_a).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(np.concatenate([p[f"W{g}"][:, n_a:] for g in "ifco"])))
        lstm.weight_hh_l0.copy_(torch.tensor(np.concatenate([p[f"W{g}"][:, :n_a] for g in "ifco"])))
        lstm.bias_ih_l0.copy_(torch.tensor(np.concatenate([p[f"b{g}"][:, 0] for g in "ifco"])))
        lstm.bias_hh_l0.zero_()
    x_t = torch.tensor(x.transpose(2, 1, 0).copy(), requires_grad=True)
    h0 = torch.tensor(a0.T[None].copy(), requires_grad=True)
    out, _ = lstm(x_t, (h0, torch.zeros_like(h0)))
    a, _, _, caches = xplstm.lstm_forward(x, a0, p)
    assert_close(a, out.detach().numpy().transpose(2, 1, 0), np.float64, name="a")
    da = rng.standard_normal(a.shape)
    (out * torch.tensor(da.transpose(2, 1, 0).copy())).sum().backward()
    grads = xplstm.lstm_backward(da, caches)
    assert_close(grads["dx"], x_t.grad.numpy().transpose(2, 1, 0), np.float64, name="dx")
    assert_close(grads["da0"], h0.grad.numpy()[0].T, np.float64, name="da0")
    for k, gate in enumerate("ifco"):
        rows = slice(k * n_a, (k + 1) * n_a)
        want_w = np.concatenate(
            [lstm.weight_hh_l0.grad.numpy()[rows], lstm.weight_ih_l0.grad.numpy()[rows]], axis=1
        )
        assert_close(grads[f"dW{gate}"], want_w, np.float64, name=f"dW{gate}")
        want_b = lstm.bias_ih_l0.grad.numpy()[rows]
        assert_close(grads[f"db{gate}"][:, 0], want_b, np.float64, name=f"db{gate}")


def test_editing_returned_arrays_leaves_the_caches_intact():
    rng = np.random.default_rng(15)
    x, a0, p = lstm_problem(rng)
    da = rng.standard_normal((5, 4, 6))
    a, _, c, caches = xplstm.lstm_forward(x, a0, p)
    want = xplstm.lstm_backward(da, caches)
    a *= 0
    c += 1
    for key, value in xplstm.lstm_backward(da, caches).items():
        np.testing.assert_array_equal(value, want[key])
    a, _, rnn_caches = xplstm.rnn_forward(x, a0, ref.random_rnn_parameters(rng, 3, 5, 2))
    want = xplstm.rnn_backward(da, rnn_caches)
    a *= 0
    for key, value in xplstm.rnn_backward(da, rnn_caches).items():
        np.testing.assert_array_equal(value, want[key])
