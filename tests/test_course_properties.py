"""Hypothesis property tests of the course API over random shapes (kept apart from
test_course.py so the GPU machine, which has no hypothesis, still runs that file)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")  # the GPU machine runs the other test files without it

import reference as ref
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from test_course import lstm_problem, rnn_problem

import xplstm


def any_shape(test):
    """Run ``test`` over random course shapes (every size from 1 upward) and seeds."""
    shapes = given(
        n_x=st.integers(1, 5),
        n_a=st.integers(1, 6),
        n_y=st.integers(1, 4),
        m=st.integers(1, 5),
        T_x=st.integers(1, 5),
        seed=st.integers(0, 2**32 - 1),
    )
    return settings(max_examples=25, deadline=None)(shapes(test))


@any_shape
def test_lstm_agrees_with_the_reference_for_any_shape(n_x, n_a, n_y, m, T_x, seed):
    rng = np.random.default_rng(seed)
    x, a0, p = lstm_problem(rng, n_x, n_a, n_y, m, T_x)
    a, y, c, caches = xplstm.lstm_forward(x, a0, p)
    want_a, want_y, want_c = ref.lstm_forward(x, a0, p)
    for got, want, name in ((a, want_a, "a"), (y, want_y, "y"), (c, want_c, "c")):
        assert got.shape == want.shape
        assert_close(got, want, np.float64, name=name)
    da = rng.standard_normal(a.shape)
    grads = xplstm.lstm_backward(da, caches)
    want = ref.lstm_backward(da, x, a0, p)
    for key in want:
        assert grads[key].shape == want[key].shape, key
        assert_close(grads[key], want[key], np.float64, name=key)


@any_shape
def test_rnn_agrees_with_the_reference_for_any_shape(n_x, n_a, n_y, m, T_x, seed):
    rng = np.random.default_rng(seed)
    x, a0, p = rnn_problem(rng, n_x, n_a, n_y, m, T_x)
    a, y, caches = xplstm.rnn_forward(x, a0, p)
    want_a, want_y = ref.rnn_forward(x, a0, p)
    assert_close(a, want_a, np.float64, name="a")
    assert_close(y, want_y, np.float64, name="y")
    da = rng.standard_normal(a.shape)
    grads = xplstm.rnn_backward(da, caches)
    want = ref.rnn_backward(da, x, a0, p)
    for key in want:
        assert_close(grads[key], want[key], np.float64, name=key)
