"""Variable lengths run as a packed batch: longest first, each step over its active rows only."""

from __future__ import annotations

import numpy as np
import pytest
import reference
from conftest import assert_close

import xplstm
from xplstm import engine
from xplstm.engine import Packing


def test_packing_sorts_longest_first_and_counts_the_active_rows():
    packing = Packing.of(np.array([2, 5, 1, 5, 3]), 6)
    assert packing.order.tolist() == [1, 3, 4, 0, 2]  # stable: ties keep the caller's order
    assert packing.lengths.tolist() == [5, 5, 3, 2, 1]
    assert packing.active == (5, 4, 3, 2, 2, 0)
    assert packing.order[packing.inverse].tolist() == list(range(5))
    assert not packing.is_identity and Packing.of(np.array([3, 2, 2]), 3).is_identity


def test_a_given_order_must_sort_the_lengths():
    with pytest.raises(ValueError, match="order must sort lengths from longest to shortest"):
        Packing.of(np.array([1, 3]), 3, order=np.array([0, 1]))


def problem(rng, steps=7, batch=5, n_in=3, hidden=4):
    return (
        rng.standard_normal((steps, batch, n_in)),
        0.5 * rng.standard_normal((4 * hidden, n_in)),
        0.5 * rng.standard_normal((4 * hidden, hidden)),
        0.5 * rng.standard_normal(4 * hidden),
        rng.standard_normal((batch, hidden)),
        rng.standard_normal((batch, hidden)),
    )


def forward_backward(arrays, lengths, dy, dh_n, dc_n):
    x, w_ih, w_hh, bias, h0, c0 = arrays
    h, h_n, c_n, saved = engine.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths=lengths)
    results = {"h": h.copy(), "h_n": h_n, "c_n": c_n}
    names = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "dbias")
    results.update(zip(names, engine.lstm_backward(dy, dh_n, dc_n, saved), strict=True))
    return results


def test_results_follow_the_callers_batch_order_exactly():
    """Distinct lengths pack to one order whatever order the caller uses: permuting the batch
    permutes every per-sequence result bitwise and leaves the weight gradients bitwise alone."""
    rng = np.random.default_rng(0)
    arrays = problem(rng)
    lengths = np.array([3, 7, 1, 6, 4])
    dy, dh_n, dc_n = (rng.standard_normal(shape) for shape in ((7, 5, 4), (5, 4), (5, 4)))
    base = forward_backward(arrays, lengths, dy, dh_n, dc_n)
    shuffle = np.array([4, 2, 0, 3, 1])
    x, w_ih, w_hh, bias, h0, c0 = arrays
    moved = forward_backward(
        (x[:, shuffle], w_ih, w_hh, bias, h0[shuffle], c0[shuffle]),
        lengths[shuffle], dy[:, shuffle], dh_n[shuffle], dc_n[shuffle],
    )  # fmt: skip
    for key in ("h", "dx"):
        np.testing.assert_array_equal(moved[key], base[key][:, shuffle], err_msg=key)
    for key in ("h_n", "c_n", "dh0", "dc0"):
        np.testing.assert_array_equal(moved[key], base[key][shuffle], err_msg=key)
    for key in ("dw_ih", "dw_hh", "dbias"):
        np.testing.assert_array_equal(moved[key], base[key], err_msg=key)


def test_packed_layer_matches_the_loop_reference_with_nan_padding():
    """Padding never runs: NaN there reaches no result (and raises no warning)."""
    model = xplstm.LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5, 3))
    lengths = np.array([6, 1, 4, 2, 6])
    expected_y, (expected_h, expected_c) = reference_layer(model, x, lengths)
    for b, length in enumerate(lengths):
        x[length:, b] = np.nan
    y, (h_n, c_n) = model(x, lengths=lengths)
    assert_close(y, expected_y, np.float64, name="y")
    assert_close(h_n, expected_h, np.float64, name="h_n")
    assert_close(c_n, expected_c, np.float64, name="c_n")
    dx, _ = model.backward(np.ones_like(y))
    assert np.all(np.isfinite(dx))


def reference_layer(model, x, lengths):
    params = {k: np.asarray(v) for k, v in model.state_dict().items()}
    zeros = np.zeros((model.num_layers * 2, x.shape[1], model.hidden_size))
    y, h_n, c_n, _ = reference.layer_forward(
        params, x, zeros, zeros, lengths, model.num_layers, True, model.hidden_size
    )
    return y, (h_n, c_n)


@pytest.mark.parametrize("lengths", [[7, 3, 1, 6, 4], [1, 1, 1, 1, 1], [7, 7, 7, 7, 2]],
                         ids=["mixed", "one-step", "one-short"])  # fmt: skip
def test_weight_gradients_over_the_rows_that_ran_equal_those_over_whole_arrays(lengths):
    """:meth:`Packing.ran` lists exactly the (step, row) pairs that ran; the gradient GEMMs over
    those rows alone give the whole arrays' results (the other rows' gradients are zero)."""
    steps, batch, n_in, hidden = 7, 5, 3, 4
    packing = Packing.of(np.array(lengths), steps)
    valid = np.arange(steps)[:, None] < packing.lengths[None, :]
    np.testing.assert_array_equal(packing.ran(), np.flatnonzero(valid))
    rng = np.random.default_rng(8)
    dpre = rng.standard_normal((steps, batch, 4 * hidden)) * valid[..., None]
    x_ones = engine.with_ones(rng.standard_normal((steps, batch, n_in)), packing.lengths)
    h, h0 = rng.standard_normal((steps, batch, hidden)), rng.standard_normal((batch, hidden))
    whole = engine._input_gradients(dpre, x_ones, np.ones((4 * hidden, n_in)), np)
    rows = engine._input_gradients(dpre, x_ones, np.ones((4 * hidden, n_in)), np, packing.ran())
    for name, a, b in zip(("dx", "dw_ih", "db"), rows, whole, strict=True):
        assert_close(a, b, np.float64, name=name)
    assert np.all(rows[0][~valid] == 0)
    assert_close(engine._recurrent_weight_gradient(dpre, h, h0, np, packing.ran()),
                 engine._recurrent_weight_gradient(dpre, h, h0, np), np.float64)  # fmt: skip


def test_a_batch_whose_rows_all_ran_takes_the_whole_arrays():
    assert Packing.of(np.array([4, 4, 4]), 4).ran() is None
    assert Packing.for_call(None, 4, 3).ran() is None
