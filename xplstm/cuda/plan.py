"""Sequence plans: the CuPy loops with the per-step Python work planned away.

On CuPy, :func:`xplstm.engine.lstm_forward` and :func:`xplstm.engine.lstm_backward` run one of
three loops, chosen by :func:`gpu_loop` (``XPLSTM_GPU_LOOP`` or the engine's ``gpu_loop=``):

- ``"cupy"``: ``cupy.matmul`` into a preallocated buffer and one fused ``ElementwiseKernel``
  per step (CuPy checks and packs every argument on every call);
- ``"plan"``: everything is worked out once per call (pointers, leading dimensions, transpose
  flags, grid sizes, the cuBLAS handle and the launch arguments as tuples of NumPy scalars); per
  step the loop only calls ``cublas.sgemm``/``dgemm`` and launches a ``RawKernel`` compiled from
  the same kernel specs (:func:`xplstm.cuda.specs.raw_kernel_source`);
- ``"graph"``: the planned steps captured once into a CUDA graph on a stream of their own, then
  launched as one graph.

All operands are row-major (C-contiguous); cuBLAS is column-major, so a row-major product
``C = A @ B`` is issued as the column-major ``C^T = B^T A^T``: the operands swap places and no
data moves.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..switches import env_switch
from .memo import build_once
from .specs import kernel_specs, raw_kernel_source

__all__ = ["BLOCK", "GPU_LOOPS", "LSTMPlan", "gpu_loop", "raw_kernels", "tf32_enabled"]

GPU_LOOPS = ("cupy", "plan", "graph")
BLOCK = 256
MAX_GRID = 65535  # the kernels loop grid-stride, so a capped grid still covers every element
OP_N, OP_T = 0, 1  # cublasOperation_t

_MODULES: dict[tuple[str, np.dtype, int], dict[str, Any]] = {}


def gpu_loop(loop: str | None = None) -> str:
    """Resolve the CuPy loop: the argument wins, else ``XPLSTM_GPU_LOOP`` (default ``"cupy"``)."""
    choice = os.environ.get("XPLSTM_GPU_LOOP", "cupy") if loop is None else loop
    choice = choice.strip().lower() or "cupy"
    if choice not in GPU_LOOPS:
        source = "gpu_loop" if loop is not None else "XPLSTM_GPU_LOOP"
        raise ValueError(f"{source} must be one of {GPU_LOOPS}, got {choice!r}")
    return choice


def tf32_enabled(tf32: bool | None = None) -> bool:
    """TF32 tensor-core GEMMs for float32 in the planned loops: the argument, else
    ``XPLSTM_TF32`` (default off: TF32 rounds the GEMM inputs to 10 mantissa bits)."""
    return env_switch("XPLSTM_TF32", False, tf32)


def raw_kernels(cell: str, dtype: Any) -> dict[str, Any]:
    """``{"forward": kernel, "backward": kernel}`` as ``RawKernel``s of one ``RawModule``.

    Built once per cell, dtype and device.
    """
    import cupy

    dtype = np.dtype(dtype)

    def build() -> dict[str, Any]:
        module = cupy.RawModule(code=raw_kernel_source(cell, dtype))
        specs = kernel_specs(cell, dtype)
        return {step: module.get_function(spec.name) for step, spec in specs.items()}

    return build_once(_MODULES, (cell, dtype, cupy.cuda.runtime.getDevice()), build)


def _row_bytes(array: Any, width: int) -> int:
    """Bytes per step of a C-contiguous ``(T, m, width)`` array."""
    return array.shape[1] * width * array.dtype.itemsize


def _grid(size: int) -> tuple[int]:
    return (max(1, min(MAX_GRID, -(-size // BLOCK))),)


class _Blas:
    """The raw cuBLAS GEMM for one dtype, with host scalars that outlive every call."""

    def __init__(self, cupy: Any, dtype: np.dtype, tf32: bool) -> None:
        cublas = cupy.cuda.cublas
        self.cublas = cublas
        self.handle = cupy.cuda.device.get_cublas_handle()
        self.gemm = cublas.sgemm if dtype == np.float32 else cublas.dgemm
        self.scalars = np.array([1.0, 0.0], dtype=dtype)  # alpha, beta (host pointer mode)
        self.one = self.scalars.ctypes.data
        self.zero = self.one + dtype.itemsize
        self.math_mode = cublas.CUBLAS_DEFAULT_MATH
        if tf32 and dtype == np.float32:
            self.math_mode = cublas.CUBLAS_TF32_TENSOR_OP_MATH

    @contextlib.contextmanager
    def math(self) -> Iterator[None]:
        """This plan's math mode on the shared handle, restored afterwards."""
        previous = self.cublas.getMathMode(self.handle)
        if previous == self.math_mode:
            yield
            return
        self.cublas.setMathMode(self.handle, self.math_mode)
        try:
            yield
        finally:
            self.cublas.setMathMode(self.handle, previous)

    def times_transposed(self, c: Any, a: Any, b: Any) -> tuple:
        """Arguments of ``c = a @ b.T``: ``a (m, k)``, ``b (n, k)``, ``c (m, n)`` row-major."""
        (m, k), n = a.shape, b.shape[0]
        return self.product_transposed(c.data.ptr, a.data.ptr, b.data.ptr, m, n, k)

    def times(self, c: Any, a: Any, b: Any) -> tuple:
        """Arguments of ``c = a @ b``: ``a (m, k)``, ``b (k, n)``, ``c (m, n)`` row-major."""
        (m, k), n = a.shape, b.shape[1]
        return self.product(c.data.ptr, a.data.ptr, b.data.ptr, m, n, k)

    def product_transposed(self, c: int, a: int, b: int, m: int, n: int, k: int) -> tuple:
        """:meth:`times_transposed` from device pointers to C-contiguous operands."""
        return (self.handle, OP_T, OP_N, n, m, k, self.one, b, k, a, k, self.zero, c, n)

    def product(self, c: int, a: int, b: int, m: int, n: int, k: int) -> tuple:
        """:meth:`times` from device pointers to C-contiguous operands."""
        return (self.handle, OP_N, OP_N, n, m, k, self.one, b, n, a, k, self.zero, c, n)


class LSTMPlan:
    """The planned LSTM loops for one dtype and shape on the current device.

    Parameters
    ----------
    cupy : module
    dtype : dtype
        float32 or float64.
    batch_size, hidden_size : int
        ``m`` and ``H``.
    graph : bool
        Capture each loop into a CUDA graph and launch it (``"graph"`` loop).
    tf32 : bool, optional
        float32 only: let cuBLAS use TF32 tensor cores for the recurrent GEMMs (default
        :func:`tf32_enabled`).
    """

    def __init__(
        self,
        cupy: Any,
        dtype: Any,
        batch_size: int,
        hidden_size: int,
        *,
        graph: bool = False,
        tf32: bool | None = None,
    ) -> None:
        self.cupy = cupy
        self.dtype = np.dtype(dtype)
        self.kernels = raw_kernels("lstm", self.dtype)
        self.blas = _Blas(cupy, self.dtype, tf32_enabled(tf32))
        self.hidden = np.int64(hidden_size)
        self.grid = _grid(batch_size * hidden_size)
        self.block = (BLOCK,)
        self.graph = graph

    def _size(self, rows: int) -> np.int64:
        """The kernel's element count for a step over ``rows`` rows."""
        return np.int64(rows * self.hidden)

    def _run(self, steps: list[tuple[tuple, tuple]], kernel: Any, gemm_first: bool) -> None:
        """Issue ``(gemm arguments, kernel arguments)`` per step, in order."""
        with self.blas.math():
            if self.graph:
                self._capture_and_launch(steps, kernel, gemm_first)
            else:
                self._issue(steps, kernel, gemm_first)

    def _issue(self, steps: list[tuple[tuple, tuple]], kernel: Any, gemm_first: bool) -> None:
        gemm, grid, block = self.blas.gemm, self.grid, self.block
        if gemm_first:
            for gemm_args, kernel_args in steps:
                gemm(*gemm_args)
                kernel(grid, block, kernel_args)
        else:
            for gemm_args, kernel_args in steps:
                kernel(grid, block, kernel_args)
                gemm(*gemm_args)

    def _capture_and_launch(
        self, steps: list[tuple[tuple, tuple]], kernel: Any, gemm_first: bool
    ) -> None:
        # The caller's work must be done before the capture stream reads its buffers.
        self.cupy.cuda.get_current_stream().synchronize()
        stream = self.cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            try:
                self._issue(steps, kernel, gemm_first)
            finally:
                graph = stream.end_capture()
            graph.launch(stream)
        stream.synchronize()

    def forward(
        self,
        gates: Any,
        recurrent: Any,
        w_hh: Any,
        h0: Any,
        c0: Any,
        c: Any,
        h: Any,
        active: tuple[int, ...],
    ) -> None:
        """The forward loop over ``T`` steps (contract of the engine's ``"cupy"`` loop).

        ``gates (T, m, 4H)`` in: projections, out: activated gates; ``recurrent (m, 4H)``
        scratch; ``w_hh (4H, H)``; ``h0, c0 (m, H)``; ``c, h (T, m, H)`` written. All
        C-contiguous. Step ``t`` covers the first ``active[t]`` rows (a packed batch).
        """
        # Pointers by arithmetic, not by CuPy views: planning stays a few Python operations
        # per step (each view costs about a microsecond of host time).
        hidden, width = int(self.hidden), 4 * int(self.hidden)
        cell_bytes, gate_bytes = _row_bytes(c, hidden), _row_bytes(gates, width)
        gate_base, c_base, h_base = gates.data.ptr, c.data.ptr, h.data.ptr
        rec, weights = recurrent.data.ptr, w_hh.data.ptr
        product, hidden_arg = self.blas.product_transposed, self.hidden
        steps = []
        h_prev, c_prev = h0.data.ptr, c0.data.ptr
        for t, rows in enumerate(active):
            if not rows:
                break
            c_t, h_t = c_base + t * cell_bytes, h_base + t * cell_bytes
            gate_t = gate_base + t * gate_bytes
            kernel_args = (
                np.uint64(rec), np.uint64(c_prev), hidden_arg, np.uint64(gate_t),
                np.uint64(c_t), np.uint64(h_t), self._size(rows),
            )  # fmt: skip
            steps.append((product(rec, h_prev, weights, rows, width, hidden), kernel_args))
            h_prev, c_prev = h_t, c_t
        self._run(steps, self.kernels["forward"], gemm_first=True)

    def backward(
        self,
        gates: Any,
        dy: Any,
        dh: Any,
        dc: Any,
        w_hh: Any,
        c0: Any,
        c: Any,
        entries: dict[int, list[tuple[Any, Any, Any]]],
        active: tuple[int, ...],
    ) -> None:
        """The backward loop (contract of the engine's ``"cupy"`` loop).

        ``entries`` maps a step to ``(rows, dh_n or dc_n, dh or dc)`` gradients entering there
        (variable lengths); such steps run outside the plan around CuPy's indexed adds.
        """
        hidden, width = int(self.hidden), 4 * int(self.hidden)
        cell_bytes, gate_bytes = _row_bytes(c, hidden), _row_bytes(gates, width)
        gate_base, c_base, dy_base = gates.data.ptr, c.data.ptr, dy.data.ptr
        dh_ptr, dc_ptr, weights = dh.data.ptr, dc.data.ptr, w_hh.data.ptr
        product, hidden_arg = self.blas.product, self.hidden
        ordered = []
        for t in range(gates.shape[0] - 1, -1, -1):
            rows = active[t]
            if not rows:
                continue
            c_prev = c_base + (t - 1) * cell_bytes if t > 0 else c0.data.ptr
            gate_t = gate_base + t * gate_bytes
            kernel_args = (
                np.uint64(dy_base + t * cell_bytes), np.uint64(dh_ptr), np.uint64(c_prev),
                np.uint64(c_base + t * cell_bytes), hidden_arg, np.uint64(gate_t),
                np.uint64(dc_ptr), self._size(rows),
            )  # fmt: skip
            gemm_args = product(dh_ptr, gate_t, weights, rows, hidden, width)
            ordered.append((t, (gemm_args, kernel_args)))
        kernel = self.kernels["backward"]
        pending: list[tuple[tuple, tuple]] = []
        for t, step in ordered:
            if t in entries:
                self._run(pending, kernel, gemm_first=False)
                pending = []
                for rows_entering, final, carried in entries[t]:
                    carried[rows_entering] += final[rows_entering]
            pending.append(step)
        self._run(pending, kernel, gemm_first=False)
