"""The course functions on CuPy (``gpu``), fused and unfused, against NumPy float64."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, cupy_or_skip

import xplstm

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]


def _course_parameters(rng, n_x, n_a, n_y):
    lstm = {f"W{k}": rng.normal(0, 0.5, (n_a, n_a + n_x)) for k in "fico"}
    lstm |= {f"b{k}": rng.normal(0, 0.5, (n_a, 1)) for k in "fico"}
    lstm |= {"Wy": rng.normal(0, 0.5, (n_y, n_a)), "by": rng.normal(0, 0.5, (n_y, 1))}
    rnn = {
        "Wax": rng.normal(0, 0.5, (n_a, n_x)),
        "Waa": rng.normal(0, 0.5, (n_a, n_a)),
        "Wya": rng.normal(0, 0.5, (n_y, n_a)),
        "ba": rng.normal(0, 0.5, (n_a, 1)),
        "by": rng.normal(0, 0.5, (n_y, 1)),
    }
    return lstm, rnn


def _course_calls(x, a0, c0, da, lstm, rnn):
    """Every course function on one backend; returns ``{name: array}``."""
    out = {}
    a_next, c_next, y_t, cache = xplstm.lstm_cell_forward(x[:, :, 0], a0, c0, lstm)
    out |= {"lstm_cell a_next": a_next, "lstm_cell c_next": c_next, "lstm_cell y": y_t}
    grads = xplstm.lstm_cell_backward(da[:, :, 0], da[:, :, -1], cache)
    out |= {f"lstm_cell_backward {k}": v for k, v in grads.items()}
    a, y, c, caches = xplstm.lstm_forward(x, a0, lstm)
    out |= {"lstm a": a, "lstm y": y, "lstm c": c}
    out |= {f"lstm_backward {k}": v for k, v in xplstm.lstm_backward(da, caches).items()}
    a_next, y_t, cache = xplstm.rnn_cell_forward(x[:, :, 0], a0, rnn)
    out |= {"rnn_cell a_next": a_next, "rnn_cell y": y_t}
    grads = xplstm.rnn_cell_backward(da[:, :, 0], cache)
    out |= {f"rnn_cell_backward {k}": v for k, v in grads.items()}
    a, y, caches = xplstm.rnn_forward(x, a0, rnn)
    out |= {"rnn a": a, "rnn y": y}
    out |= {f"rnn_backward {k}": v for k, v in xplstm.rnn_backward(da, caches).items()}
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("fused", ["1", "0"], ids=["fused", "unfused"])
@pytest.mark.parametrize(
    "sizes",
    [(3, 5, 2, 4, 6), (1, 1, 1, 1, 1), (7, 33, 3, 9, 4)],
    ids=lambda s: "x".join(map(str, s)),
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_course_functions_match_numpy_float64(dtype, sizes, fused, monkeypatch):
    cupy = cupy_or_skip()
    monkeypatch.setenv("XPLSTM_FUSED", fused)
    n_x, n_a, n_y, m, steps = sizes
    rng = np.random.default_rng(13)
    lstm, rnn = _course_parameters(rng, n_x, n_a, n_y)
    arrays = [rng.normal(0, 1, shape) for shape in ((n_x, m, steps), (n_a, m), (n_a, m))]
    arrays.append(rng.normal(0, 1, (n_a, m, steps)))

    def rounded(value):
        return np.asarray(value, dtype).astype(np.float64)

    expected = _course_calls(
        *map(rounded, arrays),
        {k: rounded(v) for k, v in lstm.items()},
        {k: rounded(v) for k, v in rnn.items()},
    )

    def on_gpu(value):
        return cupy.asarray(np.asarray(value, dtype))

    actual = _course_calls(
        *map(on_gpu, arrays),
        {k: on_gpu(v) for k, v in lstm.items()},
        {k: on_gpu(v) for k, v in rnn.items()},
    )
    assert actual.keys() == expected.keys()
    for name, value in actual.items():
        assert isinstance(value, cupy.ndarray), f"{name} came back as {type(value).__name__}"
        # no looser than the old normwise bound (1e-12 or 2e3 eps times max(1, max|expected|))
        scale = max(1.0, float(np.abs(expected[name]).max(initial=0.0)))
        assert_close(value, expected[name], dtype, scale, name)
