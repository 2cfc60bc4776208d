"""The course caches carry the engine's saved record, and the backward functions use it.

The caches keep the course's tuple shapes, so notebooks index them as before; the backward
functions differentiate from the record the forward kept, never from a copy rebuilt out of the
tuple's positions.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import reference
from conftest import assert_close

import xplstm
from xplstm import engine

N_X, N_A, N_Y, M, STEPS = 3, 5, 2, 4, 6


@pytest.fixture
def lstm_problem():
    rng = np.random.default_rng(11)
    p = reference.random_lstm_parameters(rng, N_X, N_A, N_Y)
    x = rng.standard_normal((N_X, M, STEPS))
    a0 = rng.standard_normal((N_A, M))
    return p, x, a0, rng.standard_normal((N_A, M, STEPS))


@pytest.fixture
def rnn_problem():
    rng = np.random.default_rng(12)
    p = reference.random_rnn_parameters(rng, N_X, N_A, N_Y)
    x = rng.standard_normal((N_X, M, STEPS))
    a0 = rng.standard_normal((N_A, M))
    return p, x, a0, rng.standard_normal((N_A, M, STEPS))


def test_lstm_caches_keep_the_course_shape_and_carry_the_record(lstm_problem):
    p, x, a0, _ = lstm_problem
    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    step_caches, cached_x = caches
    assert isinstance(caches, tuple) and len(caches) == 2 and cached_x is x
    assert isinstance(caches.record, engine.LSTMSaved)
    assert [cache.step for cache in step_caches] == list(range(STEPS))
    assert all(cache.record is caches.record and len(cache) == 10 for cache in step_caches)


def test_lstm_backward_reads_the_record_not_the_tuple(lstm_problem):
    """The tuples are for the notebook: the backward never rebuilds its state from them."""
    p, x, a0, da = lstm_problem
    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    expected = xplstm.lstm_backward(da, caches)
    # Poison every array the tuples hold that the record does not share memory with: the input
    # x (caches[1] and each step's xt), a0 and the zero c0. A rebuild from the tuples reads them.
    record = caches.record
    kept = (record.x_ones, record.h0, record.c0, record.gates, record.h, record.c)
    poisoned = 0
    for array in [caches[1], *(item for cache in caches[0] for item in cache[:9])]:
        if not any(np.shares_memory(array, other) for other in kept):
            array[...] = np.nan
            poisoned += 1
    assert poisoned >= STEPS + 2  # x, its step views, a0 and c0 at least
    again = xplstm.lstm_backward(da, caches)
    for key, value in expected.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)


def test_lstm_cell_backward_on_a_step_of_the_sequence_matches_the_reference(lstm_problem):
    p, x, a0, da = lstm_problem
    a, _, c, caches = xplstm.lstm_forward(x, a0, p)
    dc_next = np.ones((N_A, M))
    for t in (0, 3, STEPS - 1):
        a_prev = a0 if t == 0 else a[:, :, t - 1]
        c_prev = np.zeros_like(a0) if t == 0 else c[:, :, t - 1]
        want = reference.lstm_cell_backward(da[:, :, t], dc_next, x[:, :, t], a_prev, c_prev, p)
        got = xplstm.lstm_cell_backward(da[:, :, t], dc_next, caches[0][t])
        for key, value in want.items():
            assert_close(got[key], value, np.float64, name=f"step {t} {key}")


def test_lstm_cell_backward_leaves_the_sequence_record_intact(lstm_problem):
    p, x, a0, da = lstm_problem
    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    gates_before = caches.record.gates.copy()
    xplstm.lstm_cell_backward(da[:, :, 2], np.zeros((N_A, M)), caches[0][2])
    np.testing.assert_array_equal(caches.record.gates, gates_before)


def test_rnn_cell_backward_on_a_step_of_the_sequence_matches_the_reference(rnn_problem):
    p, x, a0, da = rnn_problem
    a, _, caches = xplstm.rnn_forward(x, a0, p)
    assert isinstance(caches.record, engine.RNNSaved)
    for t in (0, STEPS - 1):
        a_prev = a0 if t == 0 else a[:, :, t - 1]
        want = reference.rnn_cell_backward(da[:, :, t], a[:, :, t], a_prev, x[:, :, t], p)
        got = xplstm.rnn_cell_backward(da[:, :, t], caches[0][t])
        for key, value in want.items():
            assert_close(got[key], value, np.float64, name=f"step {t} {key}")


def test_rnn_backward_twice_gives_the_same_gradients(rnn_problem):
    p, x, a0, da = rnn_problem
    _, _, caches = xplstm.rnn_forward(x, a0, p)
    first, second = xplstm.rnn_backward(da, caches), xplstm.rnn_backward(da, caches)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_deep_copied_caches_still_differentiate(lstm_problem):
    p, x, a0, da = lstm_problem
    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    copied = copy.deepcopy(caches)
    assert copied.record is not caches.record
    want, got = xplstm.lstm_backward(da, caches), xplstm.lstm_backward(da, copied)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize(
    "call",
    [
        lambda cache, da: xplstm.lstm_cell_backward(da, da, tuple(cache)),
        lambda cache, da: xplstm.rnn_cell_backward(da, tuple(cache[:4])),
    ],
    ids=["lstm", "rnn"],
)
def test_a_plain_tuple_is_refused_naming_the_forward_function(lstm_problem, call):
    p, x, a0, da = lstm_problem
    _, _, _, cache = xplstm.lstm_cell_forward(x[:, :, 0], a0, np.zeros_like(a0), p)
    with pytest.raises(TypeError, match=r"cache returned by xplstm\.(lstm|rnn)_cell_forward"):
        call(cache, da[:, :, 0])


def test_a_plain_pair_of_caches_is_refused(lstm_problem):
    p, x, a0, da = lstm_problem
    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    with pytest.raises(TypeError, match=r"returned by xplstm\.lstm_forward"):
        xplstm.lstm_backward(da, (caches[0], caches[1]))


@pytest.mark.parametrize("covered", [1, 4])
def test_lstm_backward_with_a_shorter_da_runs_the_first_steps_like_the_course(
    lstm_problem, covered
):
    """The course notebook's test cell passes a 4-step ``da`` for a 7-step forward."""
    p, x, a0, da = lstm_problem
    _, _, _, caches = xplstm.lstm_forward(x, a0, p)
    short = da[:, :, :covered]
    with pytest.warns(UserWarning, match=f"da covers {covered} time steps but the caches hold 6"):
        got = xplstm.lstm_backward(short, caches)
    want = reference.lstm_backward(short, x[:, :, :covered], a0, p)
    assert got["dx"].shape == (N_X, M, covered)
    for key, value in want.items():
        assert_close(got[key], value, np.float64, name=key)


def test_rnn_backward_with_a_shorter_da_runs_the_first_steps_like_the_course(rnn_problem):
    p, x, a0, da = rnn_problem
    _, _, caches = xplstm.rnn_forward(x, a0, p)
    with pytest.warns(UserWarning, match="da covers 4 time steps but the caches hold 6"):
        got = xplstm.rnn_backward(da[:, :, :4], caches)
    want = reference.rnn_backward(da[:, :, :4], x[:, :, :4], a0, p)
    for key, value in want.items():
        assert_close(got[key], value, np.float64, name=key)
