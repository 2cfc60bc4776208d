"""The compiled CPU kernels (``xplstm.cpu``): the header's LSTM step against the NumPy twin, the
``XPLSTM_CPU_KERNELS`` switch, the guard against stale builds and what ``xplstm info`` says.

The compiled tests skip where the extension is not built (no C++ compiler at install time);
the rest of the suite runs on whichever path is active, and ``nox -s cpu_kernels`` runs it
once with ``XPLSTM_CPU_KERNELS=compiled`` and once with ``numpy``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close
from kernel_harness.cells import extreme_values

import xplstm.cpu
from xplstm import cells
from xplstm.cells.lstm import LSTMTwin
from xplstm.cells.rnn import RNNReluTwin, RNNTwin
from xplstm.cpu.cells import LSTMCompiled, RNNCompiled
from xplstm.training.device import pointwise_paths

M, H = 5, 19  # H not a multiple of any vector width: the loops' remainders run too


@pytest.fixture
def module():
    built = xplstm.cpu.compiled_module()
    if built is None:
        pytest.skip(f"xplstm.cpu._kernels is {xplstm.cpu._load()[1]}")
    return built


def _forward_inputs(rng, dtype, rows=M):
    gates = rng.standard_normal((rows, 4 * H)) * 4
    if rows:
        gates[0, :6] = [np.inf, -np.inf, np.nan, 1e4, -1e4, 0.0]  # saturation and non-finite
    recurrent = rng.standard_normal((rows, 4 * H))
    c_prev = rng.standard_normal((rows, H)) * 3
    return [array.astype(dtype) for array in (gates, recurrent, c_prev)]


def _both_forward(module, dtype, rows):
    gates, recurrent, c_prev = _forward_inputs(np.random.default_rng(0), dtype, rows)
    results = []
    for cell in (LSTMTwin(np, dtype, M, H), LSTMCompiled(module, dtype, M, H)):
        g, c_next, h_next = gates.copy(), np.empty_like(c_prev), np.empty_like(c_prev)
        cell.forward(g, recurrent, c_prev, c_next, h_next)
        results.append((g, c_next, h_next))
    return results


def _assert_same(actual, expected, dtype):
    """Equal NaN and inf patterns, finite values within the dtype tolerance."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite & ~np.isnan(expected)],
                                  expected[~finite & ~np.isnan(expected)])  # fmt: skip
    assert_close(actual[finite], expected[finite].astype(np.float64), dtype, ulps=8)


@pytest.mark.parametrize("rows", [M, 3, 0], ids=["all-rows", "packed-rows", "no-rows"])
def test_compiled_forward_is_the_twin_within_the_dtype_tolerance(module, dtype, rows):
    with np.errstate(invalid="ignore"):  # the twin's inf - inf in the NaN row
        twin, compiled = _both_forward(module, dtype, rows)
    for name, expected, actual in zip(("gates", "c_next", "h_next"), twin, compiled, strict=True):
        assert actual.dtype == dtype, name
        _assert_same(actual, expected, dtype)


def test_compiled_backward_is_the_twin_within_the_dtype_tolerance(module, dtype):
    rng = np.random.default_rng(1)
    gates, recurrent, c_prev = _forward_inputs(rng, dtype)
    gates[0, :6] = 0.5  # backward takes finite activations
    c_next, h_next = np.empty_like(c_prev), np.empty_like(c_prev)
    LSTMTwin(np, dtype, M, H).forward(gates, recurrent, c_prev, c_next, h_next)
    dy, dh, dc = (rng.standard_normal((M, H)).astype(dtype) for _ in range(3))
    results = []
    for cell in (LSTMTwin(np, dtype, M, H), LSTMCompiled(module, dtype, M, H)):
        g, d = gates.copy(), dc.copy()
        cell.backward(g, dy, dh, d, c_prev, c_next)
        results.append((g, d))
    for expected, actual in zip(*results, strict=True):
        assert_close(actual, expected.astype(np.float64), dtype, ulps=8)


@pytest.mark.parametrize("relu", [False, True], ids=["tanh", "relu"])
@pytest.mark.parametrize("rows", [M, 0], ids=["rows", "no-rows"])
def test_compiled_rnn_steps_are_the_twins_within_the_dtype_tolerance(module, dtype, relu, rows):
    rng = np.random.default_rng(3)
    pre, recurrent, dy, dh = (rng.standard_normal((rows, H)).astype(dtype) * 3 for _ in range(4))
    if rows:
        pre[0, :5] = [np.inf, -np.inf, np.nan, 1e4, -1e4]
    twin = (RNNReluTwin if relu else RNNTwin)(np, dtype, rows, H)  # the RNN packs no rows
    compiled = RNNCompiled(module, dtype, rows, H, relu=relu)
    results = []
    for cell in (twin, compiled):
        h_next, dpre = pre.copy(), np.empty_like(pre)
        with np.errstate(invalid="ignore"):  # inf - inf in the twin's backward of the inf row
            cell.forward(h_next, recurrent)
            cell.backward(dpre, h_next, dy, dh)
        results.append((h_next, dpre))
    for expected, actual in zip(*results, strict=True):
        assert actual.dtype == dtype
        _assert_same(actual, expected, dtype)


def test_compiled_tanh_is_accurate_everywhere(module, dtype):
    """The compiled loops' tanh (libmvec's vector tanhf; in double the header's expm1 form on
    libmvec's vector expm1) within 8 eps relative of long double over the whole range, with the
    limits, the signed zeros, the subnormals and NaN exact."""
    info = np.finfo(dtype)
    big = np.sqrt(info.max)
    grid = np.linspace(-40, 40, 16001)
    edges = [np.inf, -np.inf, np.nan, big, -big, 0.55, -0.55, 19.9, 20.1, -20.1]
    values = np.concatenate([grid, edges, extreme_values(dtype)]).astype(dtype)
    h_next = values.reshape(1, -1).copy()
    minus_zero = np.full_like(h_next, -0.0)  # x + (-0) is x for every x, -0 included
    RNNCompiled(module, dtype, 1, values.size, relu=False).forward(h_next, minus_zero)
    actual, expected = h_next[0], np.tanh(values.astype(np.longdouble))
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(values))
    finite = ~np.isnan(values)
    error = np.abs(actual[finite] - expected[finite])
    assert np.all(error <= 8 * info.eps * np.abs(expected[finite]) + info.smallest_subnormal)
    tiny = np.abs(values) <= info.tiny
    np.testing.assert_array_equal(actual[tiny], values[tiny])  # tanh(x) = x there, sign kept
    np.testing.assert_array_equal(np.signbit(actual[tiny]), np.signbit(values[tiny]))
    np.testing.assert_array_equal(
        actual[np.abs(values) >= 100], np.sign(values[np.abs(values) >= 100])
    )


def test_compiled_step_refuses_what_would_overrun_or_misread_memory(module):
    gates, recurrent, c_prev = _forward_inputs(np.random.default_rng(2), np.float64)
    c_next, h_next = np.empty_like(c_prev), np.empty_like(c_prev)
    with pytest.raises(ValueError, match=r"c_next has shape \(5, 18\), expected \(5, 19\)"):
        module.lstm_forward(gates, recurrent, c_prev, c_next[:, :-1].copy(), h_next)
    with pytest.raises(TypeError, match="recurrent has another dtype than gates"):
        module.lstm_forward(gates, recurrent.astype(np.float32), c_prev, c_next, h_next)
    with pytest.raises(TypeError, match="must be a 2-d float32 or float64 array"):
        module.lstm_forward(gates.astype(np.float16), recurrent, c_prev, c_next, h_next)
    with pytest.raises(ValueError, match="not C-contiguous"):  # as CuPy's raw arguments
        module.lstm_forward(gates, recurrent, c_prev, c_next, np.empty((M, 2 * H))[:, ::2])
    with pytest.raises((BufferError, ValueError)):  # read-only output
        module.lstm_forward(gates, recurrent, c_prev, c_next, np.broadcast_to(h_next, h_next.shape))
    with pytest.raises(TypeError, match="lstm_backward takes 6 arrays, got 5"):
        module.lstm_backward(gates, c_prev, c_prev, c_next, c_prev)


def test_make_cell_takes_the_compiled_lstm_unless_told_numpy(module, monkeypatch):
    monkeypatch.delenv("XPLSTM_CPU_KERNELS", raising=False)
    assert type(cells.make_cell("lstm", np, np.float32, 3, 5)) is LSTMCompiled
    assert type(cells.make_cell("gru", np, np.float32, 3, 5)) is cells.GRUTwin  # not compiled
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", "numpy")
    assert type(cells.make_cell("lstm", np, np.float32, 3, 5)) is LSTMTwin
    assert "the NumPy twin of kernels/*.cuh (XPLSTM_CPU_KERNELS=numpy)" in pointwise_paths()[0]
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", " Compiled ")
    assert type(cells.make_cell("lstm", np, np.float64, 3, 5)) is LSTMCompiled
    assert pointwise_paths()[0].startswith("CPU kernels: compiled kernels/lstm.cuh and rnn.cuh")
    assert type(cells.make_cell("rnn_relu", np, np.float32, 3, 5)) is RNNCompiled
    assert type(cells.make_cell("rnn", np, np.float64, 3, 5)) is RNNCompiled
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", "numpy")
    assert type(cells.make_cell("rnn", np, np.float64, 3, 5)) is RNNTwin


def test_cpu_kernel_switch_rejects_other_values(monkeypatch):
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", "fast")
    with pytest.raises(ValueError, match="XPLSTM_CPU_KERNELS must be one of auto, compiled, numpy"):
        xplstm.cpu.cpu_kernels()
    assert xplstm.cpu.cpu_kernels("numpy") == "numpy"  # the argument wins


@pytest.fixture
def unbuilt(monkeypatch):
    """As if the extension had not been built (or was stale): ``_load`` says why."""
    monkeypatch.setattr(xplstm.cpu, "_load", lambda: (None, "not built (no module)"))


def test_without_the_module_auto_runs_the_twin_and_compiled_is_an_error(unbuilt, monkeypatch):
    monkeypatch.delenv("XPLSTM_CPU_KERNELS", raising=False)
    assert type(cells.make_cell("lstm", np, np.float32, 3, 5)) is LSTMTwin
    assert (
        "the NumPy twin of kernels/*.cuh (xplstm.cpu._kernels is not built"
        in (pointwise_paths()[0])
    )
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", "compiled")
    with pytest.raises(RuntimeError, match=r"XPLSTM_CPU_KERNELS=compiled, but xplstm\.cpu"):
        cells.make_cell("lstm", np, np.float32, 3, 5)


def test_a_module_built_from_other_headers_never_runs(module, monkeypatch):
    import xplstm.cpu.sources

    xplstm.cpu._load.cache_clear()
    monkeypatch.setattr(xplstm.cpu.sources, "header_digest", lambda directory: "0" * 64)
    try:
        assert xplstm.cpu.compiled_module() is None
        assert "built from other kernels/*.cuh than these" in xplstm.cpu._load()[1]
    finally:
        xplstm.cpu._load.cache_clear()
    monkeypatch.undo()
    assert xplstm.cpu.compiled_module() is module


def test_the_built_module_matches_the_headers_beside_the_package(module):
    from xplstm.cpu.sources import header_digest
    from xplstm.cuda.specs import kernel_source_dir

    assert module.HEADER_DIGEST == header_digest(kernel_source_dir())
