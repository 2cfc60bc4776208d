"""Inference mode: ``xplstm.no_grad()`` keeps nothing for backward, runs a chunk of steps at a time,
and returns bitwise what the recording forward returns."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import xplstm
from xplstm import LSTM, engine
from xplstm.backend import asnumpy


def _inputs(steps, batch, features, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((steps, batch, features)).astype(dtype)


def _assert_bitwise(actual, expected):
    actual, expected = asnumpy(actual), asnumpy(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


@pytest.mark.parametrize("chunk_bytes", [None, 1, 700], ids=["default", "one-step", "few-steps"])
@pytest.mark.parametrize(
    "layers, bidirectional, batch_first, with_lengths",
    [
        (1, False, False, False),
        (1, False, False, True),
        (2, True, True, True),
        (2, False, True, False),
    ],
)
def test_no_grad_forward_is_bitwise_the_recording_forward(
    monkeypatch, dtype, chunk_bytes, layers, bidirectional, batch_first, with_lengths
):
    if chunk_bytes is not None:  # chunks of one or a few steps, so T spans many of them
        monkeypatch.setattr(engine, "PROJECTION_CHUNK_BYTES", chunk_bytes)
    model = LSTM(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype,
                 seed=1)  # fmt: skip
    x = _inputs(11, 4, 3, dtype)
    if batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    lengths = [11, 3, 7, 1] if with_lengths else None
    state = tuple(
        np.random.default_rng(2 + k).standard_normal((layers * (2 if bidirectional else 1), 4, 5))
        .astype(dtype) for k in range(2)
    )  # fmt: skip
    y, (h_n, c_n) = model(x, state, lengths=lengths)
    with xplstm.no_grad():
        y_infer, (h_infer, c_infer) = model(x, state, lengths=lengths)
    for actual, expected in ((y_infer, y), (h_infer, h_n), (c_infer, c_n)):
        _assert_bitwise(actual, expected)


def test_engine_inference_matches_forward_across_chunk_boundaries(monkeypatch):
    rng = np.random.default_rng(3)
    steps, batch, features, hidden = 23, 6, 4, 7
    lengths = np.array([23, 5, 1, 9, 10, 18])
    x = rng.standard_normal((steps, batch, features))
    for sequence, length in enumerate(lengths):
        x[length:, sequence] = np.nan  # padding past a length may hold anything
    w_ih = rng.standard_normal((4 * hidden, features))
    w_hh = rng.standard_normal((4 * hidden, hidden)) * 0.5
    bias = rng.standard_normal(4 * hidden)
    for chunk_bytes in (1, 3 * batch * (features + 1 + 4 * hidden) * 8, 10**9):
        monkeypatch.setattr(engine, "PROJECTION_CHUNK_BYTES", chunk_bytes)
        h, h_n, c_n, _ = engine.lstm_forward(x, w_ih, w_hh, bias, lengths=lengths)
        h_i, h_n_i, c_n_i = engine.lstm_inference(x, w_ih, w_hh, bias, lengths=lengths)
        assert np.all(np.isfinite(h_i))
        for actual, expected in ((h_i, h), (h_n_i, h_n), (c_n_i, c_n)):
            _assert_bitwise(actual, expected)


def test_backward_after_a_no_grad_forward_says_why():
    model = LSTM(3, 4, seed=0)
    x = _inputs(5, 2, 3, np.float32)
    with xplstm.no_grad():
        y, _ = model(x)
    with pytest.raises(RuntimeError, match=r"no_grad\(\).*keeps nothing"):
        model.backward(np.ones_like(y))
    y, _ = model(x)  # recording again outside the block
    dx, _ = model.backward(np.ones_like(y))
    assert dx.shape == x.shape


def test_a_no_grad_forward_leaves_the_pending_recorded_forward_alone():
    """As in torch: evaluating under no_grad between a forward and its backward is harmless."""
    x, other = _inputs(5, 2, 3, np.float32), _inputs(4, 3, 3, np.float32) + 1
    reference_model, model = LSTM(3, 4, seed=0), LSTM(3, 4, seed=0)
    y, _ = reference_model(x)
    want = reference_model.backward(np.ones_like(y))
    y, _ = model(x)
    with xplstm.no_grad():
        model(other)
    got = model.backward(np.ones_like(y))
    np.testing.assert_array_equal(got[0], want[0])
    for name, gradient in reference_model.grads.items():
        np.testing.assert_array_equal(model.grads[name], gradient, err_msg=name)


def test_no_grad_keeps_no_record_and_leaves_grads_alone():
    model = LSTM(3, 4, 2, bidirectional=True, seed=0)
    with xplstm.no_grad():
        model(_inputs(5, 2, 3, np.float32))
    assert all(not np.any(gradient) for gradient in model.grads.values())
    with pytest.raises(RuntimeError, match=r"no_grad\(\)"):
        model.backward(None)


def test_no_grad_nests_restores_after_errors_and_decorates():
    assert xplstm.is_grad_enabled()
    with xplstm.no_grad():
        assert not xplstm.is_grad_enabled()
        with xplstm.no_grad():
            assert not xplstm.is_grad_enabled()
        assert not xplstm.is_grad_enabled()
    assert xplstm.is_grad_enabled()
    with pytest.raises(ZeroDivisionError), xplstm.no_grad():
        1 / 0  # noqa: B018
    assert xplstm.is_grad_enabled()

    @xplstm.no_grad()
    def inside():
        return xplstm.is_grad_enabled()

    assert inside() is False and inside() is False
    assert xplstm.is_grad_enabled()


def test_no_grad_is_thread_local():
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def other_thread():
        entered.wait()
        seen["other"] = xplstm.is_grad_enabled()
        release.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with xplstm.no_grad():
        entered.set()
        release.wait(timeout=60)
        seen["here"] = xplstm.is_grad_enabled()
    worker.join()
    assert seen == {"other": True, "here": False}


def test_no_grad_forward_peak_memory_is_about_the_output():
    """T=400, m=32, n_x=64, H=256 in float64: peak traced memory <= 1.3x the output's bytes
    (a recording forward keeps gates, cell states, outputs and the input: ~5x)."""
    model = LSTM(64, 256, dtype="float64", seed=0)
    x = _inputs(400, 32, 64, np.float64)
    tracemalloc.start()
    try:
        with xplstm.no_grad():
            y, _ = model(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert y.shape == (400, 32, 256)
    assert peak <= 1.3 * y.nbytes, f"peak {peak / 2**20:.1f} MiB, output {y.nbytes / 2**20:.1f} MiB"


def test_bench_reports_the_no_grad_memory():
    from xplstm.bench import measure_inference_memory

    figure = measure_inference_memory(input_size=8, hidden_size=16, batch=4, steps=50)
    assert figure["output_bytes"] == 50 * 4 * 16 * 8
    assert figure["ratio"] == figure["peak_bytes"] / figure["output_bytes"]
    assert 1 <= figure["ratio"]


@pytest.mark.gpu
def test_no_grad_on_cupy_arrays_is_bitwise_and_keeps_nothing(monkeypatch):
    from conftest import cupy_or_skip

    cupy = cupy_or_skip()
    monkeypatch.setattr(engine, "GPU_PROJECTION_CHUNK_BYTES", 700)  # a few steps per chunk
    model = LSTM(3, 5, 2, bidirectional=True, dtype="float64", seed=0).to("cuda")
    x = cupy.asarray(_inputs(9, 3, 3, np.float64))
    y, (h_n, c_n) = model(x, lengths=[9, 2, 5])
    with xplstm.no_grad():
        y_infer, (h_infer, c_infer) = model(x, lengths=[9, 2, 5])
    assert isinstance(y_infer, cupy.ndarray)
    for actual, expected in ((y_infer, y), (h_infer, h_n), (c_infer, c_n)):
        _assert_bitwise(actual, expected)
    # the recorded forward before the block is still pending, as in torch
    dx, _ = model.backward(cupy.ones_like(y))
    assert isinstance(dx, cupy.ndarray) and dx.shape == x.shape
    with xplstm.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match=r"no_grad\(\).*no recorded forward pending"):
        model.backward(cupy.ones_like(y))
