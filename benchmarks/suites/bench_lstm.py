"""asv suites: the LSTM layer's forward and forward+backward, and the course API."""

from __future__ import annotations

import numpy as np

import xplstm

from .common import available_backends, make_inputs, synchronize

SIZES = [(128, 256, 64, 100), (64, 128, 32, 50), (256, 512, 32, 25)]
SIZE_NAMES = ["n_x,n_a,m,T=" + ",".join(map(str, size)) for size in SIZES]
# (min, max, seconds) samples per round, two rounds: enough for asv compare to see the spread
# (``asv run --quick`` takes one sample and so none; use it only as a smoke test).
REPEAT = (5, 20, 20.0)


def _no_grad():
    """``xplstm.no_grad()``; commits from before it skip the inference benchmarks."""
    if not hasattr(xplstm, "no_grad"):
        raise NotImplementedError("this xplstm has no no_grad()")
    return xplstm.no_grad()


class LSTMLayer:
    """``xplstm.LSTM`` forward and forward+backward, by backend, dtype and size."""

    params = (available_backends(), ["float32", "float64"], SIZE_NAMES)
    param_names = ["backend", "dtype", "size"]
    timeout = 120
    repeat = REPEAT

    def setup(self, backend, dtype, size_name):
        size = SIZES[SIZE_NAMES.index(size_name)]
        device = "cuda" if backend == "cupy" else "cpu"
        self.backend = backend
        self.model = xplstm.LSTM(size[0], size[1], dtype=dtype, device=device, seed=0)
        self.x, self.dy = make_inputs(backend, dtype, size)
        # Warm up here so kernel compilation and first-touch allocations are not timed.
        self.time_forward_backward(backend, dtype, size_name)

    def time_forward(self, backend, dtype, size_name):
        self.model(self.x)
        synchronize(self.backend)

    def time_forward_backward(self, backend, dtype, size_name):
        self.model(self.x)
        self.model.backward(self.dy)
        synchronize(self.backend)

    def time_forward_no_grad(self, backend, dtype, size_name):
        with _no_grad():
            self.model(self.x)
        synchronize(self.backend)

    def peakmem_forward_no_grad(self, backend, dtype, size_name):
        if backend != "numpy":
            raise NotImplementedError("peak memory is measured for NumPy only")
        with _no_grad():
            self.model(self.x)

    def peakmem_forward_backward(self, backend, dtype, size_name):
        if backend != "numpy":
            raise NotImplementedError("peak memory is measured for NumPy only")
        self.model(self.x)
        self.model.backward(self.dy)


class CourseAPI:
    """The course's ``lstm_forward`` / ``lstm_backward`` on the engine."""

    params = (available_backends(), ["float32", "float64"])
    param_names = ["backend", "dtype"]
    repeat = REPEAT

    def setup(self, backend, dtype):
        n_x, n_a, n_y, m, steps = 64, 128, 10, 32, 50
        rng = np.random.default_rng(0)
        parameters = {f"W{g}": rng.standard_normal((n_a, n_a + n_x)) * 0.1 for g in "fico"}
        parameters |= {f"b{g}": np.zeros((n_a, 1)) for g in "fico"}
        parameters |= {"Wy": rng.standard_normal((n_y, n_a)) * 0.1, "by": np.zeros((n_y, 1))}
        x = rng.standard_normal((n_x, m, steps))
        xp = np
        if backend == "cupy":
            import cupy as xp
        self.backend = backend
        self.parameters = {k: xp.asarray(v.astype(dtype)) for k, v in parameters.items()}
        self.x = xp.asarray(x.astype(dtype))
        self.a0 = xp.zeros((n_a, m), dtype=dtype)
        self.da = xp.ones((n_a, m, steps), dtype=dtype)
        self.time_forward_backward(backend, dtype)

    def time_forward(self, backend, dtype):
        xplstm.lstm_forward(self.x, self.a0, self.parameters)
        synchronize(self.backend)

    def time_forward_backward(self, backend, dtype):
        caches = xplstm.lstm_forward(self.x, self.a0, self.parameters)[3]
        xplstm.lstm_backward(self.da, caches)
        synchronize(self.backend)
