"""The fused CUDA cells on CuPy (``gpu``): against float64 formulas, the unfused path, extremes.

On a GPU these run CuPy's compiled kernels; under ``-p kernel_harness.stand_in_gpu`` they run the
same kernel specs rendered to host C++, so a corrupted operation string fails them either way.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cupy_or_skip, to_numpy
from kernel_harness.cells import (
    STEP_ARGUMENTS,
    backward_inputs,
    backward_scale,
    extreme_step,
    forward_scale,
    random_step,
    ref_lstm_backward,
    ref_lstm_forward,
    ref_rnn_backward,
    ref_rnn_forward,
)

from xplstm.cells import make_cell

pytestmark = pytest.mark.gpu

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
SHAPES = [(1, 1), (3, 5), (7, 33), (16, 64), (5, 129)]


def _to_gpu(cupy, *arrays):
    return tuple(cupy.asarray(a) for a in arrays)


def _guarded(cupy, array, guard=2):
    """``array`` on the device as rows of a larger C-contiguous buffer with NaN guard rows."""
    rows, width = array.shape
    buffer = cupy.full((rows + 2 * guard, width), np.nan, array.dtype)
    view = buffer[guard : guard + rows]
    view[...] = cupy.asarray(array)
    return buffer, view


def _guards_untouched(cupy, buffer, guard=2):
    return bool(cupy.all(cupy.isnan(buffer[:guard]))) and bool(
        cupy.all(cupy.isnan(buffer[-guard:]))
    )


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_lstm_step_matches_float64(dtype, shape):
    cupy = cupy_or_skip()
    rng = np.random.default_rng(11)
    gates, recurrent, c_prev = random_step(rng, *shape, dtype)
    cell = make_cell("lstm", cupy, dtype, *shape, fused=True)
    assert cell.implementation == "fused cuda"
    g_gates, g_recurrent, g_c_prev = _to_gpu(cupy, gates, recurrent, c_prev)
    g_c_next, g_h_next = cupy.empty_like(g_c_prev), cupy.empty_like(g_c_prev)
    cell.forward(g_gates, g_recurrent, g_c_prev, g_c_next, g_h_next)
    expected = ref_lstm_forward(gates.astype(np.float64) + recurrent, c_prev)
    scale = forward_scale(c_prev)
    assert_close(g_gates, expected[0], dtype, 1.0, "gates")
    assert_close(g_c_next, expected[1], dtype, scale, "c_next")
    assert_close(g_h_next, expected[2], dtype, scale, "h_next")

    dy, dh, dc = backward_inputs(rng, *shape, dtype)
    expected = ref_lstm_backward(dy, dh, dc, to_numpy(g_gates), c_prev, to_numpy(g_c_next))
    g_dy, g_dh, g_dc = _to_gpu(cupy, dy, dh, dc)
    cell.backward(g_gates, g_dy, g_dh, g_dc, g_c_prev, g_c_next)
    scale = backward_scale(dy, dh, dc, c_prev)
    assert_close(g_gates, expected[0], dtype, np.tile(scale, 4), "gate gradients")
    assert_close(g_dc, expected[1], dtype, scale, "dc_prev")
    np.testing.assert_array_equal(to_numpy(g_dh), dh)
    np.testing.assert_array_equal(to_numpy(g_dy), dy)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_rnn_step_matches_float64(dtype, shape):
    cupy = cupy_or_skip()
    rng = np.random.default_rng(12)
    projection, recurrent, _ = random_step(rng, *shape, dtype, kind="rnn")
    cell = make_cell("rnn", cupy, dtype, *shape, fused=True)
    assert cell.implementation == "fused cuda"
    g_h_next, g_recurrent = _to_gpu(cupy, projection, recurrent)
    cell.forward(g_h_next, g_recurrent)
    assert_close(g_h_next, ref_rnn_forward(projection.astype(np.float64) + recurrent), dtype, 1.0,
                 "h_next")  # fmt: skip
    dy, dh, _ = backward_inputs(rng, *shape, dtype)
    g_dpre = cupy.empty_like(g_h_next)
    cell.backward(g_dpre, g_h_next, *_to_gpu(cupy, dy, dh))
    expected = ref_rnn_backward(dy, dh, to_numpy(g_h_next))
    assert_close(g_dpre, expected, dtype, 1.0 + np.abs(dy.astype(np.float64)) + np.abs(dh), "dpre")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_lstm_handles_extremes_and_writes_only_its_buffers(dtype):
    cupy = cupy_or_skip()
    gates, recurrent, c_prev = extreme_step(dtype)
    batch, hidden = c_prev.shape
    cell = make_cell("lstm", cupy, dtype, batch, hidden, fused=True)
    gates_buffer, g_gates = _guarded(cupy, gates)
    c_next_buffer, g_c_next = _guarded(cupy, np.zeros_like(c_prev))
    h_next_buffer, g_h_next = _guarded(cupy, np.zeros_like(c_prev))
    g_c_prev = cupy.asarray(c_prev)
    cell.forward(g_gates, cupy.asarray(recurrent), g_c_prev, g_c_next, g_h_next)
    expected = ref_lstm_forward(gates, c_prev)
    assert_close(g_gates, expected[0], dtype, 1.0, "gates")
    assert_close(g_c_next, expected[1], dtype, forward_scale(c_prev), "c_next")
    assert_close(g_h_next, expected[2], dtype, forward_scale(c_prev), "h_next")
    for buffer in (gates_buffer, c_next_buffer, h_next_buffer):
        assert _guards_untouched(cupy, buffer), "wrote outside its rows"

    dy, dh, dc = backward_inputs(None, batch, hidden, dtype, extreme=True)
    activated, c_next = to_numpy(g_gates), to_numpy(g_c_next)
    expected = ref_lstm_backward(dy, dh, dc, activated, c_prev, c_next)
    dc_buffer, g_dc = _guarded(cupy, dc)
    cell.backward(g_gates, *_to_gpu(cupy, dy, dh), g_dc, g_c_prev, g_c_next)
    scale = backward_scale(dy, dh, dc, c_prev)
    assert_close(g_gates, expected[0], dtype, np.tile(scale, 4), "gate gradients")
    assert_close(g_dc, expected[1], dtype, scale, "dc_prev")
    assert _guards_untouched(cupy, gates_buffer) and _guards_untouched(cupy, dc_buffer)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_rnn_handles_extremes_and_writes_only_its_buffers(dtype):
    cupy = cupy_or_skip()
    projection, recurrent, _ = extreme_step(dtype, kind="rnn")
    batch, hidden = projection.shape
    cell = make_cell("rnn", cupy, dtype, batch, hidden, fused=True)
    h_buffer, g_h_next = _guarded(cupy, projection)
    cell.forward(g_h_next, cupy.asarray(recurrent))
    assert_close(g_h_next, ref_rnn_forward(projection), dtype, 1.0, "h_next")
    dy, dh, _ = backward_inputs(None, batch, hidden, dtype, extreme=True)
    dpre_buffer, g_dpre = _guarded(cupy, np.zeros_like(projection))
    cell.backward(g_dpre, g_h_next, *_to_gpu(cupy, dy, dh))
    expected = ref_rnn_backward(dy, dh, to_numpy(g_h_next))
    assert_close(g_dpre, expected, dtype, 1.0 + np.abs(dy.astype(np.float64)) + np.abs(dh), "dpre")
    assert _guards_untouched(cupy, h_buffer) and _guards_untouched(cupy, dpre_buffer)


def _lstm_steps(cupy, cell, inputs):
    gates, recurrent, c_prev, dy, dh, dc = (a.copy() for a in inputs)
    c_next, h_next = cupy.empty_like(c_prev), cupy.empty_like(c_prev)
    cell.forward(gates, recurrent, c_prev, c_next, h_next)
    forward = (gates.copy(), c_next, h_next)
    cell.backward(gates, dy, dh, dc, c_prev, c_next)
    return (*forward, gates, dc)


def _rnn_steps(cupy, cell, inputs):
    h_next, recurrent, dy, dh = (a.copy() for a in inputs)
    cell.forward(h_next, recurrent)
    dpre = cupy.empty_like(h_next)
    cell.backward(dpre, h_next, dy, dh)
    return h_next, dpre


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_agrees_with_unfused(dtype, kind):
    cupy = cupy_or_skip()
    rng = np.random.default_rng(13)
    batch, hidden = 9, 31
    projection, recurrent, c_prev = random_step(rng, batch, hidden, dtype, kind=kind)
    dy, dh, dc = backward_inputs(rng, batch, hidden, dtype)
    if kind == "lstm":
        inputs = _to_gpu(cupy, projection, recurrent, c_prev, dy, dh, dc)
        scale = backward_scale(dy, dh, dc, c_prev)
        names = ["gates", "c_next", "h_next", "gate gradients", "dc_prev"]
        scales = [1.0, scale, scale, np.tile(scale, 4), scale]
        steps = _lstm_steps
    else:
        inputs = _to_gpu(cupy, projection, recurrent, dy, dh)
        names, scales = ["h_next", "dpre"], [1.0, 1.0 + np.abs(dy.astype(np.float64)) + np.abs(dh)]
        steps = _rnn_steps
    results = []
    for fused, implementation in ((True, "fused cuda"), (False, "unfused cupy")):
        cell = make_cell(kind, cupy, dtype, batch, hidden, fused=fused)
        assert cell.implementation == implementation
        results.append(steps(cupy, cell, inputs))
    for fused, unfused, name, s in zip(*results, names, scales, strict=True):
        assert_close(fused, to_numpy(unfused).astype(np.float64), dtype, s, name)


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_gpu_zero_size_steps_launch_nothing(kind):
    cupy = cupy_or_skip()
    for batch, hidden in ((0, 3), (2, 0)):
        cell = make_cell(kind, cupy, np.float32, batch, hidden, fused=True)
        arrays = {
            name: cupy.empty((batch, (4 if name == "gates" else 1) * hidden), np.float32)
            for name in (*STEP_ARGUMENTS[kind, "forward"], *STEP_ARGUMENTS[kind, "backward"])
        }
        cell.forward(*(arrays[name] for name in STEP_ARGUMENTS[kind, "forward"]))
        cell.backward(*(arrays[name] for name in STEP_ARGUMENTS[kind, "backward"]))
