"""The stand-in's raw calls (``kernel_harness.cublas``, ``.raw``, ``.streams``, ``.memory``) have
their real semantics, so the planned GPU loops are proven on a CPU.

cuBLAS GEMMs are column-major with leading dimensions and transpose flags; a wrong one computes
wrong numbers or fails exactly where cuBLAS would. Raw kernels run for exactly the launched
threads. Pointers are mapped back onto live device allocations and refused outside them. Work
on a capturing stream is recorded, and a graph launch replays it.
"""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from conftest import assert_close
from kernel_harness.cells import random_step, ref_lstm_forward
from kernel_harness.cublas import CUBLASError, tf32_round
from kernel_harness.host import LaunchError, host_compiler
from kernel_harness.memory import ALLOCATIONS, IllegalAddress, PointerTypeMismatch
from kernel_harness.stand_in import CUDARuntimeError, install_stand_in

from xplstm import engine
from xplstm.cuda import plan
from xplstm.cuda.specs import kernel_specs, raw_kernel_source

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
DTYPES = [np.float32, np.float64]
N, T = 0, 1  # cublasOperation_t


@pytest.fixture
def cupy(monkeypatch):
    """A fresh stand-in installed as ``cupy`` for this test."""
    return install_stand_in(monkeypatch)


class Scalars:
    """alpha and beta as host pointers (CUBLAS_POINTER_MODE_HOST), alive as long as this is."""

    def __init__(self, dtype, alpha=1.0, beta=0.0):
        self.values = np.array([alpha, beta], dtype=dtype)
        self.alpha = self.values.ctypes.data
        self.beta = self.alpha + self.values.itemsize


def gemm_of(cupy, dtype):
    return cupy.cuda.cublas.sgemm if np.dtype(dtype) == np.float32 else cupy.cuda.cublas.dgemm


def column_major(cupy, matrix, ld, dtype, row0=0, col0=0, fill=-7.0):
    """``matrix`` stored column-major with leading dimension ``ld`` inside a device buffer of
    ``fill``, at row ``row0`` and column ``col0``; returns (buffer, pointer to element 0, 0)."""
    rows, cols = matrix.shape
    buffer = np.full((col0 + cols + 1, ld), fill, dtype)  # each row of this is one column
    buffer[col0 : col0 + cols, row0 : row0 + rows] = matrix.T
    device = cupy.asarray(buffer)
    pointer = device.data.ptr + (row0 + col0 * ld) * buffer.itemsize
    return device, pointer


def tolerance(dtype):
    return 50 * np.finfo(dtype).eps


# ------------------------------------------------------------------------ pointers and memory


def test_data_ptr_is_the_first_element_and_views_offset_it(cupy):
    a = cupy.zeros((4, 6), np.float32)
    base = a.data.ptr
    assert base == a.data.mem.ptr and a.data.mem.size == a.nbytes and int(a.data) == base
    assert a[1].data.ptr == base + 6 * 4 and a[2, 3].data.ptr == base + (2 * 6 + 3) * 4
    assert a.T.data.ptr == base and a[:, 1:].data.ptr == base + 4
    assert (a.data + 8).ptr == base + 8 and a[::-1].data.ptr == base + 3 * 6 * 4  # first element
    assert cupy.empty(0).data.ptr == 0
    assert ALLOCATIONS.find(base + a.nbytes - 1) is a.data.mem
    assert ALLOCATIONS.find(base + a.nbytes - 1, 2) is None  # runs one byte past the end


def test_an_allocation_leaves_the_registry_when_its_array_dies(cupy):
    a = cupy.ones(16)
    address = a.data.ptr
    view = a[4:]
    del a
    gc.collect()
    assert ALLOCATIONS.find(address) is not None, "a view keeps its allocation alive"
    del view
    gc.collect()
    assert ALLOCATIONS.find(address) is None
    with pytest.raises(IllegalAddress, match=r"no live device allocation"):
        ALLOCATIONS.check(address, 8, "x")


# ------------------------------------------------------------------------------- cuBLAS GEMM


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("transa", "transb"), [(N, N), (N, T), (T, N), (T, T), (2, 2)])
def test_gemm_is_column_major_for_every_transpose_combination(cupy, dtype, transa, transb):
    """C = alpha op(A) op(B) + beta C on sub-matrices whose leading dimensions exceed their
    rows; op(X) is X for CUBLAS_OP_N, X^T for _T and _C; nothing outside C is written."""
    rng = np.random.default_rng(transa * 3 + transb)
    m, n, k = 5, 3, 4
    op_a = rng.normal(size=(m, k))
    op_b = rng.normal(size=(k, n))
    c0 = rng.normal(size=(m, n))
    a_stored = op_a if transa == N else op_a.T
    b_stored = op_b if transb == N else op_b.T
    lda, ldb, ldc = a_stored.shape[0] + 2, b_stored.shape[0] + 1, m + 3
    a_dev, a_ptr = column_major(cupy, a_stored.astype(dtype), lda, dtype, row0=1, col0=1)
    b_dev, b_ptr = column_major(cupy, b_stored.astype(dtype), ldb, dtype, row0=1)
    c_dev, c_ptr = column_major(cupy, c0.astype(dtype), ldc, dtype, col0=2, row0=2)
    scalars = Scalars(dtype, alpha=0.5, beta=-2.0)
    handle = cupy.cuda.device.get_cublas_handle()
    gemm_of(cupy, dtype)(handle, transa, transb, m, n, k, scalars.alpha, a_ptr, lda,
                         b_ptr, ldb, scalars.beta, c_ptr, ldc)  # fmt: skip
    stored = c_dev.get()
    expected = 0.5 * op_a.astype(dtype).astype(np.float64) @ op_b.astype(dtype) - 2.0 * c0.astype(
        dtype
    )
    assert_close(stored[2 : 2 + n, 2 : 2 + m].T, expected, dtype, 50.0, "C")
    untouched = np.ones_like(stored, bool)
    untouched[2 : 2 + n, 2 : 2 + m] = False
    assert np.all(stored[untouched] == -7.0), "the GEMM wrote outside C"
    assert stored.dtype == dtype and cupy.cuda.cublas.calls == {gemm_of(cupy, dtype).__name__: 1}


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_plans_row_major_products_match_numpy(cupy, dtype):
    """``plan._Blas`` issues ``c = a @ b.T`` and ``c = a @ b`` on row-major arrays as the
    column-major ``c^T = op(b) a^T``; the stand-in computes exactly that."""
    rng = np.random.default_rng(3)
    blas = plan._Blas(cupy, np.dtype(dtype), tf32=False)
    a, b_t, b = (rng.normal(size=shape).astype(dtype) for shape in ((3, 5), (7, 5), (5, 7)))
    device = {"a": cupy.asarray(a), "b_t": cupy.asarray(b_t), "b": cupy.asarray(b)}
    c = cupy.full((3, 7), np.nan, dtype)  # beta = 0: garbage in C is never read
    blas.gemm(*blas.times_transposed(c, device["a"], device["b_t"]))
    assert_close(c.get(), a.astype(np.float64) @ b_t.T, dtype, 50.0, "a @ b.T")
    c = cupy.full((3, 7), np.nan, dtype)
    blas.gemm(*blas.times(c, device["a"], device["b"]))
    assert_close(c.get(), a.astype(np.float64) @ b, dtype, 50.0, "a @ b")
    # the arguments hold bare pointers: once the arrays are gone the call is refused
    arguments = blas.times(c, cupy.asarray(a), cupy.asarray(b))
    with pytest.raises(IllegalAddress, match=r"no live device allocation"):
        blas.gemm(*arguments)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_wrong_leading_dimension_or_transpose_flag_fails_or_gives_wrong_numbers(cupy, dtype):
    """What a caller's bug does: the right call matches NumPy; each mistake either breaks a
    cuBLAS check, leaves the allocation, or gives numbers a test notices."""
    rng = np.random.default_rng(4)
    gemm = gemm_of(cupy, dtype)
    handle = cupy.cuda.device.get_cublas_handle()
    s = Scalars(dtype)
    m, k, n = 4, 6, 5  # c (m, n) = a (m, k) @ b.T, b (n, k), all row-major
    a = cupy.asarray(rng.normal(size=(m, k)).astype(dtype))
    b = cupy.asarray(rng.normal(size=(n, k)).astype(dtype))
    c = cupy.zeros((m, n), dtype)
    expected = a.get().astype(np.float64) @ b.get().T
    A, B, C = a.data.ptr, b.data.ptr, c.data.ptr

    def result(*args):
        c[...] = 0
        gemm(handle, *args)
        return c.get()

    right = result(T, N, n, m, k, s.alpha, B, k, A, k, s.beta, C, n)
    assert_close(right, expected, dtype, 50.0, "the right call")
    # a transpose flag flipped: B (n x k row-major) is read as n rows, k columns, lda k: past
    # its end ...
    with pytest.raises(IllegalAddress, match=r"[sd]gemm A spans .* past its end"):
        gemm(handle, N, N, n, m, k, s.alpha, B, k, A, k, s.beta, C, n)
    # ... and where the shapes let it through, the numbers are wrong
    square = cupy.asarray(rng.normal(size=(k, k)).astype(dtype))
    d = cupy.zeros((m, k), dtype)
    gemm(handle, N, N, k, m, k, s.alpha, square.data.ptr, k, A, k, s.beta, d.data.ptr, k)
    assert np.abs(d.get() - a.get() @ square.get().T).max() > 1e-2
    # a leading dimension one too small is refused; one too large reads the wrong elements or
    # runs off the end of the allocation
    with pytest.raises(CUBLASError, match=r"ldc=4 is less than max.1, 5."):
        gemm(handle, T, N, n, m, k, s.alpha, B, k, A, k, s.beta, C, n - 1)
    with pytest.raises(IllegalAddress, match=r"runs .* bytes past its end"):
        gemm(handle, T, N, n, m, k, s.alpha, B, k + 1, A, k, s.beta, C, n)
    room = cupy.zeros(m * (n + 1), dtype)  # room for ldc = n + 1, read as a contiguous c
    gemm(handle, T, N, n, m, k, s.alpha, B, k, A, k, s.beta, room.data.ptr, n + 1)
    assert np.abs(room.get()[: m * n].reshape(m, n) - expected).max() > 1e-2
    assert_close(room.get().reshape(m, n + 1)[:, :n], expected, dtype, 50.0, "rows of n + 1")
    # the operands not swapped (row-major arrays taken for column-major ones)
    with pytest.raises(IllegalAddress, match=r"A spans .* past its end"):
        gemm(handle, N, T, m, n, k, s.alpha, A, k, B, k, s.beta, C, n)


def test_gemm_argument_checks_are_cublas_and_cythons(cupy):
    gemm, handle = cupy.cuda.cublas.dgemm, cupy.cuda.device.get_cublas_handle()
    s = Scalars(np.float64)
    x = cupy.zeros((4, 4))
    P = x.data.ptr
    ok = [handle, N, N, 4, 4, 4, s.alpha, P, 4, P, 4, s.beta, P, 4]

    def call(**changes):
        names = "handle transa transb m n k alpha A lda B ldb beta C ldc".split()
        args = dict(zip(names, ok, strict=True)) | changes
        gemm(*args.values())

    call()
    for bad in ({"transa": 3}, {"transb": -1}, {"m": -1}, {"k": -2}, {"lda": 3}, {"ldb": 0},
                {"ldc": 3}, {"alpha": 0}):  # fmt: skip
        with pytest.raises(CUBLASError, match=r"^CUBLAS_STATUS_INVALID_VALUE") as error:
            call(**bad)
        assert error.value.status == 7
    with pytest.raises(CUBLASError, match=r"lda=3 is less than max.1, 4."):
        call(transa=T, m=2, lda=3)  # op T: A is stored k x m, so lda >= k
    call(transa=T, m=2, lda=4, ldc=4)
    with pytest.raises(CUBLASError, match=r"^CUBLAS_STATUS_NOT_INITIALIZED"):
        call(handle=12345)
    with pytest.raises(TypeError):
        call(m=4.0)
    with pytest.raises(OverflowError):
        call(lda=1 << 31)
    call(m=0, A=0, B=0, C=0)  # nothing to do: returns before touching any pointer
    with pytest.raises(PointerTypeMismatch, match=r"sgemm A reads float32 elements from .*float64"):
        cupy.cuda.cublas.sgemm(*ok)


def test_gemm_beta_zero_never_reads_c_and_k_zero_only_scales_it(cupy):
    gemm, handle = cupy.cuda.cublas.dgemm, cupy.cuda.device.get_cublas_handle()
    a, c = cupy.ones((2, 2)), cupy.full((2, 2), np.nan)
    gemm(handle, N, N, 2, 2, 2, Scalars(np.float64).alpha, a.data.ptr, 2, a.data.ptr, 2,
         Scalars(np.float64).beta, c.data.ptr, 2)  # fmt: skip
    assert c.get().tolist() == [[2, 2], [2, 2]]
    s = Scalars(np.float64, alpha=1.0, beta=3.0)
    gemm(handle, N, N, 2, 2, 0, s.alpha, 0, 2, 0, 2, s.beta, c.data.ptr, 2)
    assert c.get().tolist() == [[6, 6], [6, 6]]


def test_alpha_and_beta_are_host_pointers_read_safely(cupy):
    gemm, handle = cupy.cuda.cublas.sgemm, cupy.cuda.device.get_cublas_handle()
    x = cupy.ones((2, 2), np.float32)
    P, s = x.data.ptr, Scalars(np.float32)
    with pytest.raises(IllegalAddress, match=r"alpha .* is device memory"):
        gemm(handle, N, N, 2, 2, 2, P, P, 2, P, 2, s.beta, P, 2)
    with pytest.raises(IllegalAddress, match=r"beta = 0x8 cannot be read on the host .EFAULT"):
        gemm(handle, N, N, 2, 2, 2, s.alpha, P, 2, P, 2, 8, P, 2)  # no segfault
    cublas = cupy.cuda.cublas
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_DEVICE)
    scalars = cupy.asarray([2.0, 0.0], np.float32)
    y = cupy.empty((2, 2), np.float32)
    gemm(handle, N, N, 2, 2, 2, scalars.data.ptr, P, 2, P, 2, scalars.data.ptr + 4, y.data.ptr, 2)
    assert y.get().tolist() == [[4, 4], [4, 4]] and cublas.getPointerMode(handle) == 1


def test_tf32_math_mode_rounds_float32_inputs_only(cupy):
    cublas, handle = cupy.cuda.cublas, cupy.cuda.device.get_cublas_handle()
    rng = np.random.default_rng(5)
    host = rng.normal(size=(8, 8)).astype(np.float32)
    a, c = cupy.asarray(host), cupy.empty((8, 8), np.float32)
    s = Scalars(np.float32)

    def product():
        cublas.sgemm(handle, N, N, 8, 8, 8, s.alpha, a.data.ptr, 8, a.data.ptr, 8, s.beta,
                     c.data.ptr, 8)  # fmt: skip
        return c.get()

    assert cublas.getMathMode(handle) == cublas.CUBLAS_DEFAULT_MATH
    plain = product()
    cublas.setMathMode(handle, cublas.CUBLAS_TF32_TENSOR_OP_MATH)
    rounded = tf32_round(host)
    assert np.all(np.abs(rounded - host) <= np.abs(host) * 2.0**-11) and np.any(rounded != host)
    tf32 = product()
    assert np.array_equal(tf32, (rounded.T @ rounded.T).T) and not np.array_equal(tf32, plain)
    with pytest.raises(CUBLASError, match=r"INVALID_VALUE"):
        cublas.setMathMode(handle, 7)
    cublas.setMathMode(handle, cublas.CUBLAS_DEFAULT_MATH)
    assert np.array_equal(product(), plain)


# --------------------------------------------------------------------------------- RawKernel

INDEX_KERNEL = r"""
extern "C" __global__ void where(long long* out, const long long n) {
    // no grid-stride loop: one element per thread
    long long t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    long long b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    long long i = b * (blockDim.x * blockDim.y * blockDim.z) + t;
    if (i < n) out[i] = 1000 * b + t;
}
__global__ void mangled(float* out) { out[0] = 1; }
extern "C" __global__ void scale(float* x, const float by, const int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        x[i] *= by;
}
"""


def test_a_raw_kernel_runs_for_exactly_the_launched_threads(cupy):
    where = cupy.RawModule(code=INDEX_KERNEL).get_function("where")
    out = cupy.full(64, -1, np.int64)
    where((2, 1, 3), (2, 2, 2), (out, np.int64(64)))
    expected = [1000 * b + t for b in range(6) for t in range(8)]
    assert out.get().tolist() == expected + [-1] * 16, "exactly 6 blocks of 8 threads ran"
    out[...] = -1
    where((3,), (4,), (out, 64))  # a grid too small for a kernel without a loop
    assert (out.get() >= 0).sum() == 12
    out[...] = -1
    where((0,), (0,), (out, 64))  # CuPy launches at least one of each
    assert out.get().tolist()[:2] == [0, -1]
    assert where.launches == 3 and where in cupy.raw_kernels


def test_raw_kernel_arguments_are_packed_and_checked_like_cupy(cupy):
    module = cupy.RawModule(code=INDEX_KERNEL)
    scale, where = module.get_function("scale"), module.get_function("where")
    x, doubles = cupy.ones(10, np.float32), cupy.ones(4)
    scale((1,), (3,), (x, np.float32(2), np.int32(10)))  # one small block: the loop covers all
    assert x.get().tolist() == [2.0] * 10
    scale((1,), (3,), (x.data.ptr, np.float32(0.5), np.int32(4)))  # a bare pointer
    assert x.get().tolist() == [1.0] * 4 + [2.0] * 6
    bad = [
        ((x, 2.0, np.int32(10)), LaunchError, "reads 4 bytes of float, got float64"),
        ((x, np.float32(2), 10), LaunchError, "reads 4 bytes of int, got int64"),
        ((x, np.float32(2)), LaunchError, "takes 3 arguments"),
        ((x, np.float32(2), x), LaunchError, "device array for a non-pointer"),
        ((None, np.float32(2), np.int32(1)), LaunchError, "null pointer"),
        ((x, "2", np.int32(1)), TypeError, "Unsupported type"),
        ((x.data.ptr + 2, np.float32(2), np.int32(1)), IllegalAddress, "not aligned to 4"),
        ((np.zeros(4, np.float32).ctypes.data, np.float32(2), np.int32(1)), IllegalAddress,
         "no live device allocation"),
        ((doubles.data.ptr, np.float32(2), np.int32(1)), PointerTypeMismatch,
         "reads float32 elements from an allocation of float64"),
    ]  # fmt: skip
    for args, error, message in bad:
        with pytest.raises(error, match=message):
            scale((1,), (1,), args)
    with pytest.raises(TypeError, match=r"Argument 'grid' has incorrect type"):
        scale(1, (1,), (x, np.float32(1), np.int32(1)))
    with pytest.raises(LaunchError, match=r"block x dimension 2048 exceeds 1024"):
        scale((1,), (2048,), (x, np.float32(1), np.int32(1)))
    with pytest.raises(LaunchError, match=r"more than 1024 threads"):
        scale((1,), (32, 32, 2), (x, np.float32(1), np.int32(1)))
    where((1,), (1,), (cupy.zeros(1, np.int64), True))  # a Python bool packs as int64
    assert scale.launches == 2 and x.get().tolist() == [1.0] * 4 + [2.0] * 6


def test_raw_modules_compile_on_first_use_and_find_only_extern_c_kernels(cupy):
    module = cupy.RawModule(code=INDEX_KERNEL)
    with pytest.raises(LaunchError, match=r"CUDA_ERROR_NOT_FOUND.*mangled"):
        module.get_function("mangled")
    with pytest.raises(LaunchError, match=r"CUDA_ERROR_NOT_FOUND.*missing"):
        module.get_function("missing")
    broken = cupy.RawModule(code='extern "C" __global__ void f(float* x) { x[0] = y; }')
    with pytest.raises(cupy.cuda.compiler.CompileException, match=r"y. was not declared"):
        broken.get_function("f")
    with pytest.raises(TypeError, match=r"Exactly one of `code` and `path`"):
        cupy.RawModule()
    defined = cupy.RawModule(
        code='extern "C" __global__ void f(float* x) { x[0] = VALUE; }', options=("-DVALUE=3",)
    )
    x = cupy.zeros(1, np.float32)
    defined.get_function("f")((1,), (1,), (x,))
    alone = cupy.RawKernel('extern "C" __global__ void g(double* x) { x[0] += 1; }', "g")
    y = cupy.zeros(1)
    alone((1,), (1,), (y,))
    assert x.get().tolist() == [3.0] and y.get().tolist() == [1.0] and alone.launches == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_planned_lstm_kernel_matches_the_reference_for_any_grid(cupy, dtype):
    """The ``RawModule`` of :func:`raw_kernel_source` (the plan's kernels) on the host: its
    grid-stride loop covers every element whatever the grid; a wrong ``size`` does not."""
    rng = np.random.default_rng(6)
    m, hidden = 3, 5
    pre, _, c_prev = random_step(rng, m, hidden, dtype)
    expected_gates, expected_c, expected_h = ref_lstm_forward(pre, c_prev)
    forward = plan.raw_kernels("lstm", dtype)["forward"]
    assert forward.name == kernel_specs("lstm", dtype)["forward"].name
    for grid, block, size in (((1,), (1,), m * hidden), ((64,), (256,), m * hidden)):
        gates = cupy.asarray(pre)
        recurrent = cupy.zeros((m, 4 * hidden), dtype)
        c, h = cupy.empty((m, hidden), dtype), cupy.full((m, hidden), np.nan, dtype)
        arrays = (recurrent, cupy.asarray(c_prev), np.int64(hidden), gates, c, h, np.int64(size))
        forward(grid, block, arrays)
        assert_close(gates.get(), expected_gates, dtype, 10.0, "gates")
        assert_close(c.get(), expected_c, dtype, 10.0, "c")
        assert_close(h.get(), expected_h, dtype, 10.0, "h")
    h = cupy.full((m, hidden), np.nan, dtype)
    forward((1,), (32,), (recurrent, cupy.asarray(c_prev), np.int64(hidden), cupy.asarray(pre),
                          cupy.empty((m, hidden), dtype), h, np.int64(m * hidden - 1)))  # fmt: skip
    assert np.isnan(h.get()).sum() == 1, "a size one short leaves the last element undone"
    assert 'extern "C" __global__' in raw_kernel_source("lstm", dtype)


def test_concurrent_launches_keep_their_own_thread_indices(cupy):
    where = cupy.RawModule(code=INDEX_KERNEL).get_function("where")
    outs = [cupy.full(4096, -1, np.int64) for _ in range(4)]
    threads = [
        threading.Thread(target=where, args=((8 * (i + 1),), (128,), (out, np.int64(4096))))
        for i, out in enumerate(outs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, out in enumerate(outs):
        done = 8 * (i + 1) * 128
        values = out.get()
        expected = [1000 * (j // 128) + j % 128 for j in range(done)]
        assert values[:done].tolist() == expected and np.all(values[done:] == -1)


# --------------------------------------------------------------------- streams and graphs


def test_capture_records_raw_calls_and_a_graph_launch_replays_them_in_order(cupy):
    cublas, handle = cupy.cuda.cublas, cupy.cuda.device.get_cublas_handle()
    scale = cupy.RawModule(code=INDEX_KERNEL).get_function("scale")
    a = cupy.asarray(np.arange(4.0, dtype=np.float32).reshape(2, 2))
    c = cupy.zeros((2, 2), np.float32)
    s = Scalars(np.float32)
    stream = cupy.cuda.Stream(non_blocking=True)
    assert cupy.cuda.get_current_stream() is cupy.cuda.Stream.null
    with stream:
        assert cupy.cuda.get_current_stream() is stream and not stream.is_capturing()
        stream.begin_capture()
        assert stream.is_capturing()
        scale((1,), (4,), (a, np.float32(2), np.int32(4)))  # a *= 2, then c = a @ a ...
        cublas.sgemm(handle, N, N, 2, 2, 2, s.alpha, a.data.ptr, 2, a.data.ptr, 2, s.beta,
                     c.data.ptr, 2)  # fmt: skip
        scale((1,), (4,), (c, np.float32(0.5), np.int32(4)))  # ... then c *= 0.5
        graph = stream.end_capture()
    assert not stream.is_capturing() and cupy.cuda.get_current_stream() is cupy.cuda.Stream.null
    assert [node.name for node in graph.nodes] == ["scale", "sgemm", "scale"]
    assert a.get().tolist() == [[0, 1], [2, 3]] and c.get().tolist() == [[0, 0], [0, 0]]
    assert scale.launches == 0 and scale.captured == 2 and cublas.captured == {"sgemm": 1}
    s.values[0] = 100.0  # host alpha is read when the call is captured, as cuBLAS does
    graph.launch(stream)
    stream.synchronize()
    twice = np.arange(4.0).reshape(2, 2) * 2
    assert a.get().tolist() == twice.tolist()
    assert c.get().tolist() == (0.5 * (twice.T @ twice.T).T).tolist()
    graph.launch()
    assert a.get().tolist() == (2 * twice).tolist()
    assert scale.launches == 4 and cublas.calls == {"sgemm": 2} and graph.launches == 2


def test_capture_refuses_work_it_cannot_record_and_is_invalidated(cupy):
    elementwise = cupy.ElementwiseKernel("float64 x", "float64 y", "y = x + 1", "plus_one")
    x = cupy.zeros(3)
    refused = {
        "ufunc": lambda: cupy.add(x, 1, out=x),
        "operator": lambda: x + 1,
        "ElementwiseKernel": lambda: elementwise(x),
        "get": lambda: x.get(),
        "assignment": lambda: x.__setitem__(0, 1.0),
        "float": lambda: float(x[0]),
        "copy to the device": lambda: cupy.asarray(np.ones(2)),
        "device synchronize": lambda: cupy.cuda.runtime.deviceSynchronize(),
    }
    for what, work in refused.items():
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            with pytest.raises(CUDARuntimeError, match=r"cudaErrorStreamCapture"):
                work()
            with pytest.raises(CUDARuntimeError, match=r"cudaErrorStreamCaptureInvalidated"):
                stream.end_capture()
                pytest.fail(f"{what} did not invalidate the capture")
        assert not stream.is_capturing(), what
    stream = cupy.cuda.Stream(non_blocking=True)
    stream.begin_capture()
    with pytest.raises(CUDARuntimeError, match=r"synchronize.. on capturing stream"):
        stream.synchronize()
    with pytest.raises(CUDARuntimeError, match=r"Invalidated"):
        stream.end_capture()
    with pytest.raises(RuntimeError, match=r"cannot capture on the default .legacy. stream"):
        cupy.cuda.Stream.null.begin_capture()
    assert x.get().tolist() == [0, 0, 0]


def test_the_legacy_stream_waits_for_blocking_streams_but_not_non_blocking_ones(cupy):
    x = cupy.zeros(2)
    quiet = cupy.cuda.Stream(non_blocking=True)
    quiet.begin_capture()
    assert (x + 1).get().tolist() == [1, 1]  # the null stream does not wait for a non-blocking one
    assert len(quiet.end_capture().nodes) == 0
    blocking = cupy.cuda.Stream()
    blocking.begin_capture()
    with pytest.raises(CUDARuntimeError, match=r"cudaErrorStreamCaptureImplicit"):
        x + 1
    with pytest.raises(CUDARuntimeError, match=r"Invalidated"):
        blocking.end_capture()


def test_a_replay_after_its_arrays_are_freed_raises_instead_of_writing(cupy):
    scale = cupy.RawModule(code=INDEX_KERNEL).get_function("scale")
    x = cupy.ones(8, np.float32)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        scale((1,), (8,), (x.data.ptr, np.float32(3), np.int32(8)))
        graph = stream.end_capture()
    graph.launch(stream)
    assert x.get().tolist() == [3.0] * 8
    del x
    gc.collect()
    with pytest.raises(IllegalAddress, match=r"no live device allocation"):
        graph.launch(stream)


# ------------------------------------------------------------------ the planned loops, counted


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loop", ["plan", "graph"])
def test_planned_loops_issue_one_gemm_and_one_kernel_per_step(cupy, dtype, loop):
    rng = np.random.default_rng(7)
    steps, batch, inputs, hidden = 6, 3, 4, 5
    x = rng.normal(size=(steps, batch, inputs)).astype(dtype)
    w_ih = (0.4 * rng.normal(size=(4 * hidden, inputs))).astype(dtype)
    w_hh = (0.4 * rng.normal(size=(4 * hidden, hidden))).astype(dtype)
    bias = rng.normal(size=4 * hidden).astype(dtype)
    dy = rng.normal(size=(steps, batch, hidden)).astype(dtype)
    h_ref, _, _, saved_ref = engine.lstm_forward(x, w_ih, w_hh, bias)
    grads_ref = engine.lstm_backward(dy, None, None, saved_ref)
    gemm = "sgemm" if dtype == np.float32 else "dgemm"
    device = [cupy.asarray(value) for value in (x, w_ih, w_hh, bias)]
    h, _, _, saved = engine.lstm_forward(*device, gpu_loop=loop)
    forward, backward = plan.raw_kernels("lstm", dtype).values()
    ran = (forward.launches, backward.launches, cupy.cuda.cublas.calls[gemm])
    assert ran == (steps, 0, steps)
    grads = engine.lstm_backward(cupy.asarray(dy), None, None, saved)
    ran = (forward.launches, backward.launches, cupy.cuda.cublas.calls[gemm])
    assert ran == (steps, steps, 2 * steps)
    recorded = (forward.captured, backward.captured, cupy.cuda.cublas.captured[gemm])
    assert recorded == ((steps, steps, 2 * steps) if loop == "graph" else (0, 0, 0))
    assert_close(h.get(), h_ref, dtype, 50.0, "h")
    names = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "dbias")
    for name, got, want in zip(names, grads, grads_ref, strict=True):
        assert_close(got.get(), want, dtype, 200.0, name)
