"""Shared setup for the asv suites: backends that exist here, data made once per parameter set."""

from __future__ import annotations

import numpy as np

from xplstm.devices import gpu_unavailable_reason


def available_backends() -> list[str]:
    """``numpy``, plus ``cupy`` where CuPy imports and sees a CUDA device."""
    return ["numpy"] if gpu_unavailable_reason() is not None else ["numpy", "cupy"]


def synchronize(backend: str) -> None:
    """Wait for queued GPU work so a timed call includes it."""
    if backend == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def make_inputs(backend: str, dtype: str, size: tuple[int, int, int, int], seed: int = 0):
    """``x (T, m, n_x)`` and ``dy (T, m, n_a)`` on ``backend``."""
    input_size, hidden_size, batch, steps = size
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, batch, input_size)).astype(dtype)
    dy = rng.standard_normal((steps, batch, hidden_size)).astype(dtype)
    if backend == "cupy":
        import cupy

        return cupy.asarray(x), cupy.asarray(dy)
    return x, dy
