"""Hypothesis property tests of ``xplstm.LSTM`` over shapes, lengths and settings (kept apart
from test_layer.py so the GPU machine, which has no hypothesis, still runs that file)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")  # the GPU machine runs the other test files without it

from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from test_layer import loss_of, make_inputs, reference_for, valid_mask

from xplstm.layer import LSTM


@st.composite
def layer_cases(draw):
    steps = draw(st.integers(1, 5))
    batch = draw(st.integers(1, 4))
    config = dict(
        num_layers=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
    )
    sizes = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    lengths = draw(st.none() | st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    with_state = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return steps, batch, config, sizes, lengths, with_state, seed


@settings(max_examples=25, deadline=None)
@given(case=layer_cases())
def test_random_shapes_match_reference_and_directional_derivative(case):
    steps, batch, config, (input_size, hidden_size), lengths, with_state, seed = case
    rng = np.random.default_rng(seed)
    model = LSTM(input_size, hidden_size, **config, dtype="float64", seed=seed)
    x, h0, c0 = make_inputs(model, steps, batch, rng, with_state)
    y, (h_n, c_n) = model(x, None if h0 is None else (h0, c0), lengths=lengths)
    expected_y, expected_h, expected_c = reference_for(model, x, h0, c0, lengths)
    assert_close(y, expected_y, np.float64, name="y")
    assert_close(h_n, expected_h, np.float64, name="h_n")
    assert_close(c_n, expected_c, np.float64, name="c_n")
    mask = np.broadcast_to(valid_mask(model, steps, lengths, batch), y.shape)
    assert np.all(y[~mask] == 0)

    weights = (rng.standard_normal(y.shape), *rng.standard_normal((2, *h_n.shape)))
    dx, (dh0, dc0) = model.backward(weights[0], (weights[1], weights[2]))
    assert dx.shape == x.shape and dh0.shape == h_n.shape and dc0.shape == c_n.shape
    assert np.all(dx[~np.broadcast_to(valid_mask(model, steps, lengths, batch), x.shape)] == 0)

    # d/ds loss(everything + s * direction) at s = 0 equals <gradient, direction>
    if h0 is None:
        h0, c0 = np.zeros_like(dh0), np.zeros_like(dc0)
    variables = {"x": x, "h0": h0, "c0": c0, **dict(model.named_parameters())}
    gradients = {"x": dx, "h0": dh0, "c0": dc0, **model.grads}
    directions = {name: rng.standard_normal(array.shape) for name, array in variables.items()}
    exact = sum(float(np.sum(gradients[n] * directions[n])) for n in variables)
    step = 1e-6
    originals = {name: array.copy() for name, array in variables.items()}
    losses = []
    for sign in (1.0, -1.0):
        for name, array in variables.items():
            array[...] = originals[name] + sign * step * directions[name]
        losses.append(loss_of(model, x, h0, c0, lengths, weights))
    for name, array in variables.items():
        array[...] = originals[name]
    numeric = (losses[0] - losses[1]) / (2 * step)
    assert abs(numeric - exact) <= 1e-6 * max(1.0, abs(exact))
