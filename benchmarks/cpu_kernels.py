"""Per-step time of the compiled CPU kernels against the NumPy twin, and a whole LSTM forward.

``python benchmarks/cpu_kernels.py [--repeat N] [--blas-threads K]`` prints, at m=64, H=256
(float32, float64), the median time of one pointwise forward and backward step of the NumPy
twin and of the compiled kernels, then an ``xplstm.LSTM`` forward (n_x=128, T=100, no_grad)
and forward+backward with ``XPLSTM_CPU_KERNELS`` numpy and compiled, alternating. Medians of
``--repeat`` rounds in one process, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import xplstm
from xplstm.cells.lstm import LSTMTwin
from xplstm.cpu import compiled_module
from xplstm.cpu.cells import LSTMCompiled
from xplstm.training.device import cpu_model

M, H, N_X, T = 64, 256, 128, 100


def median_time(function: Callable[[], object], rounds: int, number: int) -> float:
    """Median over ``rounds`` of the mean time of ``number`` calls, in seconds."""
    function()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            function()
        samples.append((time.perf_counter() - start) / number)
    return float(np.median(samples))


def step_times(cell: Any, dtype: type, rounds: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    pre = rng.standard_normal((M, 4 * H)).astype(dtype)
    recurrent = rng.standard_normal((M, 4 * H)).astype(dtype)
    c_prev = rng.standard_normal((M, H)).astype(dtype)
    c_next, h_next = np.empty_like(c_prev), np.empty_like(c_prev)
    gates = pre.copy()
    dy, dh, dc_next = (rng.standard_normal((M, H)).astype(dtype) for _ in range(3))
    dc = dc_next.copy()
    # Steps on the same warm buffers, the in-place inputs restored before each (and that copy's
    # time taken off).
    forward = median_time(
        lambda: (np.copyto(gates, pre), cell.forward(gates, recurrent, c_prev, c_next, h_next)),
        rounds, 200,
    )  # fmt: skip
    copy = median_time(lambda: np.copyto(gates, pre), rounds, 200)
    copies = median_time(lambda: (np.copyto(gates, pre), np.copyto(dc, dc_next)), rounds, 200)
    saved = gates.copy()
    backward = median_time(
        lambda: (
            np.copyto(gates, saved),
            np.copyto(dc, dc_next),
            cell.backward(gates, dy, dh, dc, c_prev, c_next),
        ),
        rounds, 200,
    )  # fmt: skip
    return forward - copy, backward - copies


def layer_times(dtype: type, rounds: int) -> dict[str, list[float]]:
    """Seconds per forward and per forward+backward, each choice of CPU kernels in turn."""
    model = xplstm.LSTM(N_X, H, dtype=dtype, seed=0)
    x = np.random.default_rng(1).standard_normal((T, M, N_X)).astype(dtype)
    dy = np.ones((T, M, H), dtype=dtype)

    def inference() -> None:
        with xplstm.no_grad():
            model(x)

    def training() -> None:
        model(x)
        model.backward(dy)

    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for choice in ("numpy", "compiled"):
            os.environ["XPLSTM_CPU_KERNELS"] = choice
            for name, function in (("forward", inference), ("forward+backward", training)):
                times.setdefault(f"{name} {choice}", []).append(median_time(function, 1, 2))
    os.environ.pop("XPLSTM_CPU_KERNELS")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--blas-threads", type=int, default=None)
    arguments = parser.parse_args()
    rounds = arguments.repeat
    with threadpool_limits(limits=arguments.blas_threads, user_api="blas"):
        report(rounds)


def report(rounds: int) -> None:
    module = compiled_module()
    if module is None:
        raise SystemExit("xplstm.cpu._kernels is not built")
    blas = [
        f"{i['internal_api']} {i['version']} {i.get('architecture')}, {i['num_threads']} threads"
        for i in threadpool_info() if i["user_api"] == "blas"
    ]  # fmt: skip
    print(f"CPU: {cpu_model()}; BLAS: {', '.join(blas)}; load average: {os.getloadavg()}")
    print(f"m={M}, H={H}; microseconds per pointwise step (median of {rounds})")
    for dtype in (np.float32, np.float64):
        twin = LSTMTwin(np, dtype, M, H)
        compiled = LSTMCompiled(module, dtype, M, H)
        for name, cell in (("numpy twin", twin), ("compiled", compiled)):
            forward, backward = step_times(cell, dtype, rounds)
            print(f"  {np.dtype(dtype).name:8s} {name:10s} forward {forward * 1e6:7.1f}"
                  f"  backward {backward * 1e6:7.1f}")  # fmt: skip
    print(f"xplstm.LSTM({N_X}, {H}), T={T}, m={M}: ms (median of {rounds})")
    for dtype in (np.float32, np.float64):
        times = {
            name: float(np.median(values)) for name, values in layer_times(dtype, rounds).items()
        }
        for name in ("forward", "forward+backward"):
            twin, compiled = times[f"{name} numpy"], times[f"{name} compiled"]
            print(f"  {np.dtype(dtype).name:8s} {name:16s} numpy twin {twin * 1e3:7.1f}"
                  f"  compiled {compiled * 1e3:7.1f}  ({compiled / twin:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
