"""Results do not depend on the BLAS thread count beyond the dtype's tolerance.

The layers use as many threads as the user's BLAS limits allow (threadpoolctl, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``): nothing in xplstm sets them. A thread count changes how a GEMM splits
its sums, so float results may differ in the last bits, never by more; the sizes here are large
enough that OpenBLAS does split the GEMMs.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import xplstm

threadpoolctl = pytest.importorskip("threadpoolctl")

# (T, m, n_x, H): every GEMM has more than 65536 * 4 multiply-adds (OpenBLAS's threshold for
# going multi-threaded), so two threads do split the work.
SIZES = (16, 32, 48, 64)
LAYERS = [
    pytest.param(xplstm.LSTM, dict(num_layers=2, bidirectional=True), id="lstm-stacked-bidi"),
    pytest.param(xplstm.LSTM, dict(layer_norm=True), id="lstm-layer-norm"),
    pytest.param(xplstm.GRU, dict(num_layers=2), id="gru-stacked"),
]


def _run(layer, options, dtype, threads):
    """Outputs and gradients of one seeded forward and backward under a BLAS thread limit."""
    steps, batch, n_x, hidden = SIZES
    model = layer(n_x, hidden, **options, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((steps, batch, n_x))
    lengths = rng.integers(1, steps + 1, size=batch)
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        used = {info["num_threads"] for info in threadpoolctl.threadpool_info()
                if info["user_api"] == "blas"}  # fmt: skip
        y, _ = model(x, lengths=lengths)
        dy = np.random.default_rng(2).standard_normal(y.shape)
        dx, _ = model.backward(dy)
    return used, {"y": y, "dx": dx, **model.grads}


@pytest.mark.parametrize(("layer", "options"), LAYERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_and_two_blas_threads_agree_to_the_dtype_tolerance(layer, options, dtype):
    _, reference = _run(layer, options, np.float64, threads=1)
    for threads in (1, 2):
        used, results = _run(layer, options, dtype, threads)
        assert used == {threads}, f"the BLAS limit was not applied: {used}"
        for name, value in results.items():
            assert_close(value, reference[name], dtype, name=f"{name} with {threads} threads")
