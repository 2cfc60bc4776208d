"""``cupy.cuda.cublas`` (CuPy's low-level cuBLAS binding) on the stand-in.

``sgemm``/``dgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)`` do
exactly what ``cublasSgemm``/``cublasDgemm`` do, in column-major order:
``C = alpha op(A) op(B) + beta C`` with ``op(A)`` of ``m x k``, ``op(B)`` of ``k x n``, ``C`` of
``m x n``; element ``(i, j)`` of a matrix ``X`` with leading dimension ``ldx`` is read at
``X + (i + j ldx) * itemsize``; ``transa``/``transb`` are ``CUBLAS_OP_N`` (0), ``_T`` (1) or ``_C``
(2, the same as ``_T`` for real numbers). As CuPy's binding does, each call first sets the
handle's stream to the current stream, and the call is recorded instead of run when that stream
captures.

- **Arguments** are checked as cuBLAS checks them: ``m, n, k >= 0``, a known operation, ``lda >=
  max(1, rows of A as stored)``, ``ldb >= max(1, rows of B as stored)``, ``ldc >= max(1, m)``;
  otherwise :class:`CUBLASError` ``CUBLAS_STATUS_INVALID_VALUE`` and nothing happens. Integers
  must fit C ``int`` (``OverflowError``) and be integers (``TypeError``), as Cython converts them.
- **Pointers**: ``alpha``/``beta`` are host pointers in ``CUBLAS_POINTER_MODE_HOST`` (the default,
  read safely at call time, as cuBLAS does, so a graph keeps the values of its capture) and
  device pointers in ``CUBLAS_POINTER_MODE_DEVICE`` (read when the GEMM runs). ``A``, ``B``, ``C``
  must be aligned, the exact bytes each matrix spans (``((cols - 1) ld + rows) itemsize``) must
  lie inside one live device allocation (:mod:`kernel_harness.memory`), and that allocation must
  hold the function's dtype (float32 for ``sgemm``, float64 for ``dgemm``), checked when the
  call is issued and again when it runs; else :class:`~kernel_harness.memory.IllegalAddress` or
  :class:`~kernel_harness.memory.PointerTypeMismatch`.
- **Numbers**: the product is computed in the function's precision (float32 for ``sgemm``, no
  silent float64); ``beta == 0`` overwrites ``C`` without reading it (NaN garbage in ``C`` is
  ignored, as BLAS specifies); ``k == 0`` or ``alpha == 0`` only scales ``C``. With math mode
  ``CUBLAS_TF32_TENSOR_OP_MATH`` ``sgemm`` rounds ``A`` and ``B`` to TF32 (10 mantissa bits,
  round to nearest even) before the float32 product, as tensor cores do.
- **Counting**: ``calls`` counts the GEMMs that ran (graph replays included) by function name;
  ``captured`` counts those recorded into a capture.
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np

from .memory import ALLOCATIONS, read_host
from .streams import Operation, StreamState

__all__ = ["STATUS", "CUBLASError", "make_cublas", "tf32_round"]

STATUS = {
    0: "CUBLAS_STATUS_SUCCESS",
    1: "CUBLAS_STATUS_NOT_INITIALIZED",
    3: "CUBLAS_STATUS_ALLOC_FAILED",
    7: "CUBLAS_STATUS_INVALID_VALUE",
    8: "CUBLAS_STATUS_ARCH_MISMATCH",
    11: "CUBLAS_STATUS_MAPPING_ERROR",
    13: "CUBLAS_STATUS_EXECUTION_FAILED",
    14: "CUBLAS_STATUS_INTERNAL_ERROR",
    15: "CUBLAS_STATUS_NOT_SUPPORTED",
    16: "CUBLAS_STATUS_LICENSE_ERROR",
}
NOT_INITIALIZED, INVALID_VALUE = 1, 7
CONSTANTS = {
    "CUBLAS_OP_N": 0,
    "CUBLAS_OP_T": 1,
    "CUBLAS_OP_C": 2,
    "CUBLAS_POINTER_MODE_HOST": 0,
    "CUBLAS_POINTER_MODE_DEVICE": 1,
    "CUBLAS_DEFAULT_MATH": 0,
    "CUBLAS_TENSOR_OP_MATH": 1,
    "CUBLAS_PEDANTIC_MATH": 2,
    "CUBLAS_TF32_TENSOR_OP_MATH": 3,
    "CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION": 16,
}
_OPERATIONS = (0, 1, 2)
_MATH_MODES = (0, 1, 2, 3)
_TF32 = 3
_REDUCTION_FLAG = 16
_HANDLES = itertools.count(0xB1A5000)


class CUBLASError(RuntimeError):
    """``cupy_backends.cuda.libs.cublas.CUBLASError``: ``status`` and its name (plus why)."""

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        name = STATUS.get(status, f"CUBLAS_STATUS_{status}")
        super().__init__(f"{name}: {detail}" if detail else name)


def tf32_round(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32 (10 explicit mantissa bits), nearest even; inf/NaN kept."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & np.uint32(
        0xFFFFE000
    )
    finite = np.isfinite(values)
    return np.where(finite, rounded, bits).view(np.float32).reshape(np.shape(values))


def _c_int(value: Any, name: str, bits: int = 32, signed: bool = True) -> int:
    """``value`` as Cython converts it to a C integer: integers only, in range."""
    number = operator.index(value)  # TypeError for floats and the like
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= number <= high:
        raise OverflowError(f"{name}={number} does not fit a C {'int' if bits == 32 else 'size_t'}")
    return number


class _Handle:
    """A ``cublasHandle_t``: its math mode, pointer mode and stream."""

    def __init__(self, device: int) -> None:
        self.device = device
        self.math_mode = 0
        self.pointer_mode = 0
        self.stream = 0


def _matrix(address: int, rows: int, cols: int, ld: int, dtype: np.dtype, what: str) -> np.ndarray:
    """The column-major ``rows x cols`` matrix at ``address`` with leading dimension ``ld``, as a
    NumPy view of exactly the bytes it spans (checked against the live allocations)."""
    if rows == 0 or cols == 0:
        return np.empty((rows, cols), dtype)
    count = (cols - 1) * ld + rows
    element = ("f", dtype.itemsize)
    raw = ALLOCATIONS.span(address, count * dtype.itemsize, what, dtype.itemsize, element)
    flat = raw.view(dtype)
    return np.lib.stride_tricks.as_strided(
        flat, shape=(rows, cols), strides=(dtype.itemsize, ld * dtype.itemsize), writeable=True
    )


def make_cublas(streams: StreamState, current_device: Any) -> SimpleNamespace:
    """A stand-in ``cupy.cuda.cublas`` whose calls go to ``streams``; ``current_device()`` gives
    the current device id. Also returns ``get_cublas_handle`` as its attribute."""
    handles: dict[int, _Handle] = {}
    device_handles: dict[int, int] = {}
    calls: Counter = Counter()
    captured: Counter = Counter()

    def _handle(handle: Any) -> _Handle:
        state = handles.get(_c_int(handle, "handle", 64))
        if state is None:
            raise CUBLASError(NOT_INITIALIZED, f"handle {handle!r} was not created by cublas")
        return state

    def create() -> int:
        handle = next(_HANDLES)
        handles[handle] = _Handle(current_device())
        return handle

    def destroy(handle: Any) -> None:
        _handle(handle)
        del handles[handle]

    def get_cublas_handle() -> int:
        """``cupy.cuda.device.get_cublas_handle()``: the current device's shared handle."""
        device = current_device()
        if device not in device_handles:
            device_handles[device] = create()
        return device_handles[device]

    def setMathMode(handle: Any, mode: Any) -> None:
        state, mode = _handle(handle), _c_int(mode, "mode")
        if mode & ~_REDUCTION_FLAG not in _MATH_MODES:
            raise CUBLASError(INVALID_VALUE, f"unknown math mode {mode}")
        state.math_mode = mode

    def getMathMode(handle: Any) -> int:
        return _handle(handle).math_mode

    def setPointerMode(handle: Any, mode: Any) -> None:
        state, mode = _handle(handle), _c_int(mode, "mode")
        if mode not in (0, 1):
            raise CUBLASError(INVALID_VALUE, f"unknown pointer mode {mode}")
        state.pointer_mode = mode

    def getPointerMode(handle: Any) -> int:
        return _handle(handle).pointer_mode

    def setStream(handle: Any, stream: Any) -> None:
        _handle(handle).stream = _c_int(stream, "stream", 64, signed=False)

    def getStream(handle: Any) -> int:
        return _handle(handle).stream

    def getVersion(handle: Any) -> int:
        _handle(handle)
        return 0

    def gemm_function(name: str, dtype: np.dtype):
        itemsize = dtype.itemsize

        def scalar(state_mode: int, address: int, what: str) -> Any:
            if state_mode == 0:
                return np.frombuffer(read_host(address, itemsize, what), dtype)[0]
            element = ("f", itemsize)
            return ALLOCATIONS.span(address, itemsize, what, itemsize, element).view(dtype)[0]

        def gemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) -> None:
            state = _handle(handle)
            transa, transb = _c_int(transa, "transa"), _c_int(transb, "transb")
            m, n, k = _c_int(m, "m"), _c_int(n, "n"), _c_int(k, "k")
            lda, ldb, ldc = _c_int(lda, "lda"), _c_int(ldb, "ldb"), _c_int(ldc, "ldc")
            named = {"alpha": alpha, "A": A, "B": B, "beta": beta, "C": C}
            alpha, A, B, beta, C = (_c_int(p, k, 64, signed=False) for k, p in named.items())
            state.stream = streams.current().ptr  # CuPy's _setStream before every call
            # cuBLAS's own checks: CUBLAS_STATUS_INVALID_VALUE, nothing done
            if transa not in _OPERATIONS or transb not in _OPERATIONS:
                raise CUBLASError(INVALID_VALUE, f"{name}: transa={transa}, transb={transb}")
            if m < 0 or n < 0 or k < 0:
                raise CUBLASError(INVALID_VALUE, f"{name}: m={m}, n={n}, k={k}")
            a_rows, a_cols = (m, k) if transa == 0 else (k, m)
            b_rows, b_cols = (k, n) if transb == 0 else (n, k)
            for ld, rows, label in ((lda, a_rows, "lda"), (ldb, b_rows, "ldb"), (ldc, m, "ldc")):
                if ld < max(1, rows):
                    raise CUBLASError(
                        INVALID_VALUE,
                        f"{name}: {label}={ld} is less than max(1, {rows}), the rows of the "
                        "matrix as stored (column-major)",
                    )
            if m == 0 or n == 0:
                return
            if alpha == 0 or beta == 0:
                raise CUBLASError(INVALID_VALUE, f"{name}: alpha or beta is a null pointer")
            pointer_mode, math_mode = state.pointer_mode, state.math_mode
            host = pointer_mode == 0
            alpha_value = scalar(0, alpha, "alpha") if host else None
            beta_value = scalar(0, beta, "beta") if host else None
            touches_ab = k > 0

            def matrices() -> tuple:
                a = _matrix(A, a_rows, a_cols, lda, dtype, f"{name} A") if touches_ab else None
                b = _matrix(B, b_rows, b_cols, ldb, dtype, f"{name} B") if touches_ab else None
                return a, b, _matrix(C, m, n, ldc, dtype, f"{name} C")

            matrices()  # every span checked when the call is issued

            def run() -> None:
                a, b, c = matrices()  # and again when it runs (a replay may outlive the arrays)
                alpha_now = alpha_value if host else scalar(1, alpha, "alpha")
                beta_now = beta_value if host else scalar(1, beta, "beta")
                if touches_ab and alpha_now != 0:
                    op_a = a if transa == 0 else a.T
                    op_b = b if transb == 0 else b.T
                    if dtype == np.float32 and math_mode & ~_REDUCTION_FLAG == _TF32:
                        op_a, op_b = tf32_round(op_a), tf32_round(op_b)
                    result = alpha_now * np.matmul(op_a, op_b, dtype=dtype)
                    if beta_now != 0:
                        result = result + beta_now * c
                elif beta_now != 0:
                    result = beta_now * c
                else:
                    result = np.zeros_like(c)
                c[...] = result.astype(dtype, copy=False)
                calls[name] += 1

            if streams.submit(Operation(name, run)):
                captured[name] += 1

        gemm.__name__ = name
        return gemm

    module = SimpleNamespace(
        CUBLASError=CUBLASError,
        create=create,
        destroy=destroy,
        setMathMode=setMathMode,
        getMathMode=getMathMode,
        setPointerMode=setPointerMode,
        getPointerMode=getPointerMode,
        setStream=setStream,
        getStream=getStream,
        getVersion=getVersion,
        sgemm=gemm_function("sgemm", np.dtype(np.float32)),
        dgemm=gemm_function("dgemm", np.dtype(np.float64)),
        calls=calls,
        captured=captured,
        get_cublas_handle=get_cublas_handle,
        **CONSTANTS,
    )
    return module
