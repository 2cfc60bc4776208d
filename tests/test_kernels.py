"""The fused CUDA kernels: host build of the header, compile checks, CuPy on a GPU, packaging.

The ``.cuh`` source is exercised on every machine: the host C++ compiler builds it into a small
ctypes library that is compared with the NumPy twin and with float64 formulas written out here;
``nvcc`` and NVRTC (when present) compile it for sm_90. The CuPy kernels themselves run in the
``gpu`` tests, which skip without a device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import cupy_or_skip, to_numpy, tolerance
from kernel_harness.host import (
    DEVICE_CHECK_SOURCE,
    HostKernels,
    build_host_library,
    fake_cupy,
    host_compiler,
)

import xplstm
from xplstm import cuda_kernels, engine
from xplstm.pointwise import LSTMPointwise

REPO = Path(__file__).resolve().parent.parent
KERNEL_DIR = REPO / "kernels"
DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
SHAPES = [(1, 1), (3, 5), (7, 33), (16, 64)]


# ------------------------------------------------------------------- float64 reference formulas


def ref_sigmoid(z):
    # log(1 + e^-z) through logaddexp never overflows
    return np.exp(-np.logaddexp(0.0, -z))


def ref_forward(pre, c_prev):
    """Activated gates ``(m, 4H)``, ``c_next`` and ``h_next`` from the pre-activations."""
    i, f, g, o = np.split(np.asarray(pre, np.float64), 4, axis=1)
    c_prev = np.asarray(c_prev, np.float64)
    i, f, g, o = ref_sigmoid(i), ref_sigmoid(f), np.tanh(g), ref_sigmoid(o)
    c_next = f * c_prev + i * g
    return np.concatenate([i, f, g, o], axis=1), c_next, o * np.tanh(c_next)


def ref_backward(dy, dh, dc, gates, c_prev, c_next):
    """Pre-activation gradients ``(m, 4H)`` and ``dc_prev`` from the saved activations."""
    dy, dh, dc, gates, c_prev, c_next = (
        np.asarray(a, np.float64) for a in (dy, dh, dc, gates, c_prev, c_next)
    )
    i, f, g, o = np.split(gates, 4, axis=1)
    dh_total = dy + dh
    tanh_c = np.tanh(c_next)
    dc_total = dc + dh_total * o * (1.0 - tanh_c**2)
    d_gates = [dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f)]
    d_gates += [dc_total * i * (1 - g**2), dh_total * tanh_c * o * (1 - o)]
    return np.concatenate(d_gates, axis=1), dc_total * f


def assert_close(actual, expected, dtype, scale, name):
    """``|actual - expected| <= 64 eps (|expected| + scale)`` element by element."""
    actual = to_numpy(actual)
    assert actual.dtype == dtype, f"{name} came back as {actual.dtype}"
    assert np.all(np.isfinite(actual)), f"{name} has NaN or inf"
    bound = 64 * np.finfo(dtype).eps * (np.abs(expected) + scale)
    excess = np.abs(actual.astype(np.float64) - expected) / bound
    assert np.all(excess <= 1), f"{name}: error {excess.max():.3g}x the bound"


# ------------------------------------------------------------------------------- step inputs


def random_step(rng, batch, hidden, dtype):
    """Forward inputs: pre-activations split into gates + recurrent, and ``c_prev``."""
    gates = rng.normal(0, 3, (batch, 4 * hidden)).astype(dtype)
    recurrent = rng.normal(0, 1, (batch, 4 * hidden)).astype(dtype)
    return gates, recurrent, rng.normal(0, 2, (batch, hidden)).astype(dtype)


def extreme_values(dtype):
    info = np.finfo(dtype)
    values = [1e4, 100.0, 20.0, 1.0, info.tiny, info.smallest_subnormal, 0.0]
    return np.array(values + [-v for v in values], dtype=dtype)


def extreme_step(dtype):
    """Every extreme pre-activation against every extreme ``c_prev``, recurrent zero."""
    values = extreme_values(dtype)
    pre, c_prev = np.meshgrid(values, values, indexing="ij")
    pre, c_prev = pre.reshape(-1, 1), c_prev.reshape(-1, 1)
    gates = np.concatenate([pre, -pre, pre[::-1], pre], axis=1)
    return gates, np.zeros_like(gates), np.ascontiguousarray(c_prev)


def backward_inputs(rng, batch, hidden, dtype, extreme=False):
    """``dy, dh, dc``: random, or cycling through the extreme values."""
    if not extreme:
        return tuple(rng.normal(0, 1, (batch, hidden)).astype(dtype) for _ in range(3))
    values = extreme_values(dtype)
    count = batch * hidden
    return tuple(
        np.resize(np.roll(values, shift), count).reshape(batch, hidden) for shift in (0, 3, 7)
    )


def forward_scale(c_prev):
    return 1.0 + np.abs(np.asarray(c_prev, np.float64))


def backward_scale(dy, dh, dc, c_prev):
    upstream = 1.0 + sum(np.abs(np.asarray(a, np.float64)) for a in (dy, dh, dc))
    return upstream * forward_scale(c_prev)


def run_forward(step, gates, recurrent, c_prev):
    """Run ``step.forward`` on copies; return ``(gates, c_next, h_next)``."""
    gates = gates.copy()
    c_next, h_next = np.empty_like(c_prev), np.empty_like(c_prev)
    step.forward(gates, recurrent, c_prev, c_next, h_next)
    return gates, c_next, h_next


def run_backward(step, dy, dh, dc, gates, c_prev, c_next):
    """Run ``step.backward`` on copies; return ``(gate gradients, dc_prev)``."""
    gates, dc, dh_before = gates.copy(), dc.copy(), dh.copy()
    step.backward(dy, dh, dc, gates, c_prev, c_next)
    np.testing.assert_array_equal(dh, dh_before, err_msg="dh must not be modified")
    return gates, dc


# ------------------------------------------------------------------------------- host harness


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    compiler = host_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler (c++, g++ or clang++) on PATH")
    return HostKernels(build_host_library(compiler, KERNEL_DIR, tmp_path_factory.mktemp("host")))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_host_activations_are_accurate_everywhere(host, dtype):
    info = np.finfo(dtype)
    grid = np.concatenate([np.linspace(-120, 120, 4801), extreme_values(dtype)]).astype(dtype)
    sigmoid, tanh = host.activations(grid)
    wide = grid.astype(np.longdouble)
    with np.errstate(over="ignore"):
        expected_sigmoid = 1 / (1 + np.exp(-wide))
    # the reference's exp of a large argument carries |x| units of its own eps
    reference_error = 2 * np.abs(wide) * np.finfo(np.longdouble).eps
    for name, actual, expected in (
        ("sigmoid", sigmoid, expected_sigmoid),
        ("tanh", tanh, np.tanh(wide)),
    ):
        bound = (8 * info.eps + reference_error) * np.abs(expected) + info.smallest_subnormal
        assert np.all(np.abs(actual - expected) <= bound), name
    exact = {1e4: (1, 1), -1e4: (0, -1), 0.0: (0.5, 0), info.smallest_subnormal: (0.5, None)}
    for x, (sigmoid_x, tanh_x) in exact.items():
        s, t = host.activations(np.array([x], dtype=dtype))
        assert s[0] == sigmoid_x
        assert t[0] == (dtype.type(x) if tanh_x is None else tanh_x)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_host_forward_matches_twin_and_reference(host, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    gates, recurrent, c_prev = random_step(rng, *shape, dtype)
    expected = ref_forward(gates.astype(np.float64) + recurrent, c_prev)
    twin = LSTMPointwise(np, dtype, *shape)
    scales = (1.0, forward_scale(c_prev), forward_scale(c_prev))
    for step in (host, twin):
        outputs = run_forward(step, gates, recurrent, c_prev)
        for name, actual, reference, scale in zip(
            ("gates", "c_next", "h_next"), outputs, expected, scales, strict=True
        ):
            assert_close(actual, reference, dtype, scale, f"{type(step).__name__} {name}")


@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_host_backward_matches_twin_and_reference(host, dtype, extreme):
    rng = np.random.default_rng(3)
    gates, recurrent, c_prev = extreme_step(dtype) if extreme else random_step(rng, 5, 7, dtype)
    batch, hidden = c_prev.shape
    activated, c_next, _ = run_forward(host, gates, recurrent, c_prev)
    dy, dh, dc = backward_inputs(rng, batch, hidden, dtype, extreme)
    expected = ref_backward(dy, dh, dc, activated, c_prev, c_next)
    scale = backward_scale(dy, dh, dc, c_prev)
    twin = LSTMPointwise(np, dtype, batch, hidden)
    for step in (host, twin):
        d_gates, dc_prev = run_backward(step, dy, dh, dc, activated, c_prev, c_next)
        name = type(step).__name__
        assert_close(d_gates, expected[0], dtype, np.tile(scale, 4), f"{name} gate gradients")
        assert_close(dc_prev, expected[1], dtype, scale, f"{name} dc_prev")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_host_forward_extremes_stay_finite_and_bounded(host, dtype):
    gates, recurrent, c_prev = extreme_step(dtype)
    activated, c_next, h_next = run_forward(host, gates, recurrent, c_prev)
    expected = ref_forward(gates, c_prev)
    assert_close(activated, expected[0], dtype, 1.0, "gates")
    assert_close(c_next, expected[1], dtype, forward_scale(c_prev), "c_next")
    assert_close(h_next, expected[2], dtype, forward_scale(c_prev), "h_next")
    i, f, g, o = np.split(activated, 4, axis=1)
    assert all(np.all((a >= 0) & (a <= 1)) for a in (i, f, o))
    assert np.all(np.abs(g) <= 1) and np.all(np.abs(h_next) <= 1)
    twin = run_forward(LSTMPointwise(np, dtype, *c_prev.shape), gates, recurrent, c_prev)
    assert_close(twin[0], expected[0], dtype, 1.0, "twin gates")


# --------------------------------------------------------- the CuPy wrapper, with a stand-in CuPy


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_wrapper_passes_arguments_in_kernel_order(host, dtype):
    fake = fake_cupy(host)
    kernels = cuda_kernels.LSTMKernels(fake, dtype)
    rng = np.random.default_rng(5)
    gates, recurrent, c_prev = map(fake.asarray, random_step(rng, 4, 6, dtype))
    twin = LSTMPointwise(np, dtype, 4, 6)
    fused, unfused = (
        run_forward(kernels, gates, recurrent, c_prev),
        run_forward(twin, gates, recurrent, c_prev),
    )
    scales = (1.0, forward_scale(c_prev), forward_scale(c_prev))
    for actual, expected, scale in zip(fused, unfused, scales, strict=True):
        assert_close(actual, expected, dtype, scale, "forward")
    dy, dh, dc = map(fake.asarray, backward_inputs(rng, 4, 6, dtype))
    args = (fused[0], c_prev, fused[1])
    fused_back = run_backward(kernels, dy, dh, dc, *args)
    twin_back = run_backward(twin, dy, dh, dc, *args)
    scale = backward_scale(dy, dh, dc, c_prev)
    assert_close(fused_back[0], twin_back[0], dtype, np.tile(scale, 4), "gate gradients")
    assert_close(fused_back[1], twin_back[1], dtype, scale, "dc_prev")
    assert [kernel.launches for kernel in fake.kernels] == [1, 1]


def test_wrapper_handles_strided_arguments(host):
    dtype = np.dtype(np.float64)
    xp = fake_cupy(host)
    kernels = cuda_kernels.LSTMKernels(xp, dtype)
    rng = np.random.default_rng(6)
    gates, recurrent, c_prev = random_step(rng, 3, 5, dtype)
    expected = ref_forward(gates + recurrent, c_prev)
    wide_gates = xp.zeros((3, 40), dtype)
    strided_gates = wide_gates[:, ::2]
    strided_gates[...] = gates
    c_prev_f = xp.asfortranarray(c_prev)
    c_next, h_next = xp.zeros((5, 3), dtype).T, xp.zeros((3, 10), dtype)[:, ::2]
    kernels.forward(strided_gates, xp.asfortranarray(recurrent), c_prev_f, c_next, h_next)
    assert_close(strided_gates, expected[0], dtype, 1.0, "gates")
    assert_close(c_next, expected[1], dtype, forward_scale(c_prev), "c_next")
    assert_close(h_next, expected[2], dtype, forward_scale(c_prev), "h_next")
    assert np.all(wide_gates[:, 1::2] == 0), "wrote outside the gates view"

    dy, dh, dc = backward_inputs(rng, 3, 5, dtype)
    expected = ref_backward(dy, dh, dc, strided_gates, c_prev, c_next)
    dc_f = xp.asfortranarray(dc)
    kernels.backward(xp.asfortranarray(dy), xp.asarray(dh), dc_f, strided_gates, c_prev_f, c_next)
    scale = backward_scale(dy, dh, dc, c_prev)
    assert_close(strided_gates, expected[0], dtype, np.tile(scale, 4), "gate gradients")
    assert_close(dc_f, expected[1], dtype, scale, "dc_prev")


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0, 0)], ids=str)
def test_wrapper_skips_zero_size_steps(host, shape):
    xp = fake_cupy(host)
    kernels = cuda_kernels.LSTMKernels(xp, np.float32)
    batch, hidden = shape
    gates = xp.empty((batch, 4 * hidden), np.float32)
    cell = [xp.empty(shape, np.float32) for _ in range(5)]
    kernels.forward(gates, gates.copy(), *cell[:3])
    kernels.backward(*cell[:3], gates, *cell[3:])
    assert [kernel.launches for kernel in xp.kernels] == [0, 0]


def test_wrapper_rejects_bad_arguments(host):
    xp = fake_cupy(host)
    kernels = cuda_kernels.LSTMKernels(xp, np.float32)
    gates, cell = xp.zeros((2, 12), np.float32), xp.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="c_prev has dtype float64"):
        kernels.forward(gates, gates.copy(), cell.astype(np.float64), cell, cell.copy())
    with pytest.raises(ValueError, match=r"h_next has shape \(3, 2\), expected \(2, 3\)"):
        kernels.forward(gates, gates.copy(), cell, cell.copy(), cell.T.copy())
    with pytest.raises(ValueError, match="gates must be"):
        kernels.backward(cell, cell, cell, xp.zeros((2, 10), np.float32), cell, cell)
    with pytest.raises(TypeError, match=r"dy must be a cupy\.ndarray, got ndarray"):
        kernels.backward(np.zeros((2, 3), np.float32), cell, cell, gates, cell, cell)
    with pytest.raises(TypeError, match="float32 and float64"):
        cuda_kernels.kernel_specs(np.float16)


def test_kernels_are_memoized_per_dtype_and_device(host, monkeypatch):
    monkeypatch.setattr(cuda_kernels, "_KERNELS", {})
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(host, device=0))
    first = cuda_kernels.lstm_kernels(np.float32)
    assert cuda_kernels.lstm_kernels("float32") is first
    assert cuda_kernels.lstm_kernels(np.float64) is not first
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(host, device=1))
    assert cuda_kernels.lstm_kernels(np.float32) is not first
    with pytest.raises(TypeError, match="fused=False"):
        cuda_kernels.lstm_kernels(np.float16)


def test_preamble_names_the_source_file():
    preamble = cuda_kernels.kernel_preamble()
    header = KERNEL_DIR / cuda_kernels.HEADER
    assert cuda_kernels.kernel_source_dir() == KERNEL_DIR
    assert preamble.startswith(f'#line 1 "{header.as_posix()}"\n')
    assert header.read_text().rstrip() in preamble
    assert preamble.endswith(f'#line 1 "{cuda_kernels.GENERATED_SOURCE_NAME}"\n')
    for spec in cuda_kernels.kernel_specs(np.float32):
        assert "xplstm::" in spec.operation and "#include" not in spec.operation


def test_missing_sources_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda_kernels, "__file__", str(tmp_path / "xplstm" / "cuda_kernels.py"))
    with pytest.raises(FileNotFoundError, match=r"lstm_pointwise\.cuh.*Reinstall xplstm"):
        cuda_kernels.kernel_source_dir()


# ------------------------------------------------------------------------ nvcc and NVRTC checks


def test_header_compiles_with_nvcc_for_sm90(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    command = [
        nvcc, "-arch=sm_90", "-c", "-Werror", "all-warnings", f"-I{KERNEL_DIR}",
        str(DEVICE_CHECK_SOURCE), "-o", str(tmp_path / "device_check.o"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _nvrtc_or_skip():
    """NVRTC loaded with ctypes: from the system, beside nvcc, or from an ``nvidia`` wheel."""
    candidates = [ctypes.util.find_library("nvrtc")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        toolkit = Path(nvcc).resolve().parent.parent
        candidates += sorted(toolkit.glob("lib*/libnvrtc.so*"))
        candidates += sorted(toolkit.glob("targets/*/lib/libnvrtc.so*"))
    spec = importlib.util.find_spec("nvidia")
    for root in spec.submodule_search_locations if spec else ():
        candidates += sorted(Path(root).glob("*/lib/libnvrtc.so*"))
    for candidate in candidates:
        if candidate and "builtins" not in str(candidate):
            try:
                return ctypes.CDLL(str(candidate))
            except OSError:
                continue
    pytest.skip("no NVRTC library (libnvrtc) found")


def _nvrtc_compile(library, source: str, name: str, options) -> str | None:
    """Compile with NVRTC; ``None`` on success, else the log."""
    program = ctypes.c_void_p()
    status = library.nvrtcCreateProgram(
        ctypes.byref(program), source.encode(), f"{name}.cu".encode(), 0, None, None
    )
    assert status == 0, f"nvrtcCreateProgram returned {status}"
    encoded = [option.encode() for option in options]
    status = library.nvrtcCompileProgram(
        program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)
    )
    size = ctypes.c_size_t()
    library.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    library.nvrtcGetProgramLog(program, log)
    library.nvrtcDestroyProgram(ctypes.byref(program))
    return None if status == 0 else log.value.decode(errors="replace")


def _standalone_kernel(spec: cuda_kernels.KernelSpec, ctype: str) -> str:
    """A ``__global__`` that declares what CuPy would (raw pointers, element references, ``i``)
    and runs ``spec.operation`` unchanged."""
    inputs = len(spec.in_params.split(","))
    params, references = [], []
    for position, param in enumerate(f"{spec.in_params}, {spec.out_params}".split(",")):
        words = param.split()
        const = "const " if position < inputs else ""
        if words[-1] == "hidden":
            params.append("const long long hidden")
        elif words[0] == "raw":
            params.append(f"{const}{ctype}* {words[-1]}")
        else:
            params.append(f"{const}{ctype}* _raw_{words[-1]}")
            references.append(f"{const}{ctype}& {words[-1]} = _raw_{words[-1]}[i];")
    body = "\n".join([*references, spec.operation])
    return (
        f'extern "C" __global__ void {spec.name}({", ".join(params)}, long long size) {{\n'
        "for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;"
        " i += (long long)gridDim.x * blockDim.x) {\n"
        f"{body};\n}}\n}}\n"
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kernel_operations_compile_with_nvrtc(dtype):
    """The preamble and operations compile under NVRTC, which has no standard headers."""
    library = _nvrtc_or_skip()
    ctype = {"float32": "float", "float64": "double"}[dtype.name]
    for spec in cuda_kernels.kernel_specs(dtype):
        source = cuda_kernels.kernel_preamble() + _standalone_kernel(spec, ctype)
        log = _nvrtc_compile(library, source, spec.name, ["--gpu-architecture=compute_90"])
        assert log is None, f"NVRTC rejected {spec.name}:\n{log}"
    # an error in the generated body is reported under its own name, not the header's
    broken = cuda_kernels.kernel_preamble().replace("gate_offset(long long", "gate_offse(long long")
    forward, _ = cuda_kernels.kernel_specs(dtype)
    log = _nvrtc_compile(library, broken + _standalone_kernel(forward, ctype), "broken", [])
    assert log is not None and cuda_kernels.GENERATED_SOURCE_NAME in log, log


def _cupy_internals_or_skip():
    """CuPy's NVRTC binding and kernel-source generator (private API), or skip."""
    pytest.importorskip("cupy")
    try:
        import cupy
        from cupy._core import _carray, _kernel, _scalar, core
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as error:  # internals moved, or CuPy cannot load NVRTC
        pytest.skip(f"CuPy's NVRTC or its kernel generator is not usable here: {error!r}")
    return cupy, nvrtc, _kernel, _carray, _scalar, core


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cupy_generated_source_compiles_with_nvrtc(dtype, layout):
    """The exact source CuPy would compile for our kernels, built and compiled without a device."""
    cupy, nvrtc, _kernel, _carray, _scalar, core = _cupy_internals_or_skip()
    ndim = 1 if layout == "contiguous" else 2  # CuPy flattens all-contiguous element arguments
    ndarray, indexer, scalar = 1, 2, 3  # CuPy's _ArgKind values
    preamble = cuda_kernels.kernel_preamble()
    for spec in cuda_kernels.kernel_specs(dtype):
        kernel = cupy.ElementwiseKernel(
            spec.in_params, spec.out_params, spec.operation, spec.name, preamble=preamble
        )
        try:
            infos = []
            for param in kernel.params[:-1]:
                if param.name == "hidden":
                    infos.append(_kernel._ArgInfo(scalar, _scalar.CScalar, np.int64, 0, 1, 1))
                else:
                    dims, contiguous = (2, True) if param.raw else (ndim, ndim == 1)
                    infos.append(
                        _kernel._ArgInfo(ndarray, cupy.ndarray, dtype.type, dims, contiguous, 1)
                    )
            infos.append(_kernel._ArgInfo(indexer, _carray.Indexer, None, ndim, True, True))
            code = _kernel._get_elementwise_kernel_code(
                tuple(infos), _kernel._TypeMap(()), kernel.params, kernel.operation,
                kernel.name, kernel.preamble,
            )  # fmt: skip
            headers = "".join(f"#include <{name}>\n" for name in core._cupy_header_list)
            options = core.assemble_cupy_compiler_options(())
        except (AttributeError, TypeError, ValueError, AssertionError) as error:
            pytest.skip(f"CuPy's kernel generator changed: {error!r}")
        program = nvrtc.createProgram(headers + code, f"{spec.name}.cu", (), ())
        try:
            nvrtc.compileProgram(program, (*options, "--gpu-architecture=compute_90"))
        except nvrtc.NVRTCError:
            pytest.fail(f"NVRTC rejected {spec.name}:\n{nvrtc.getProgramLog(program)}")
        finally:
            nvrtc.destroyProgram(program)


# ---------------------------------------------------------------------------- GPU: CuPy kernels


def _to_gpu(cupy, *arrays):
    return tuple(cupy.asarray(a) for a in arrays)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [*SHAPES, (5, 129)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_step_matches_float64(dtype, shape):
    cupy = cupy_or_skip()
    rng = np.random.default_rng(11)
    gates, recurrent, c_prev = random_step(rng, *shape, dtype)
    step = LSTMPointwise(cupy, dtype, *shape, fused=True)
    assert step.is_fused
    g_gates, g_recurrent, g_c_prev = _to_gpu(cupy, gates, recurrent, c_prev)
    g_c_next, g_h_next = cupy.empty_like(g_c_prev), cupy.empty_like(g_c_prev)
    step.forward(g_gates, g_recurrent, g_c_prev, g_c_next, g_h_next)
    expected = ref_forward(gates.astype(np.float64) + recurrent, c_prev)
    scale = forward_scale(c_prev)
    assert_close(g_gates, expected[0], dtype, 1.0, "gates")
    assert_close(g_c_next, expected[1], dtype, scale, "c_next")
    assert_close(g_h_next, expected[2], dtype, scale, "h_next")

    dy, dh, dc = backward_inputs(rng, *shape, dtype)
    expected = ref_backward(dy, dh, dc, to_numpy(g_gates), c_prev, to_numpy(g_c_next))
    g_dy, g_dh, g_dc = _to_gpu(cupy, dy, dh, dc)
    step.backward(g_dy, g_dh, g_dc, g_gates, g_c_prev, g_c_next)
    scale = backward_scale(dy, dh, dc, c_prev)
    assert_close(g_gates, expected[0], dtype, np.tile(scale, 4), "gate gradients")
    assert_close(g_dc, expected[1], dtype, scale, "dc_prev")
    np.testing.assert_array_equal(to_numpy(g_dh), dh)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_step_handles_extremes_and_strides(dtype):
    cupy = cupy_or_skip()
    gates, recurrent, c_prev = extreme_step(dtype)
    batch, hidden = c_prev.shape
    kernels = cuda_kernels.lstm_kernels(dtype)
    wide = cupy.zeros((batch, 8 * hidden), dtype)
    g_gates = wide[:, ::2]
    g_gates[...] = cupy.asarray(gates)
    g_c_prev = cupy.asfortranarray(cupy.asarray(c_prev))
    g_c_next = cupy.zeros((hidden, batch), dtype).T
    g_h_next = cupy.empty_like(g_c_next)
    kernels.forward(g_gates, cupy.asarray(recurrent), g_c_prev, g_c_next, g_h_next)
    expected = ref_forward(gates, c_prev)
    assert_close(g_gates, expected[0], dtype, 1.0, "gates")
    assert_close(g_c_next, expected[1], dtype, forward_scale(c_prev), "c_next")
    assert_close(g_h_next, expected[2], dtype, forward_scale(c_prev), "h_next")
    assert not cupy.any(wide[:, 1::2])

    dy, dh, dc = backward_inputs(None, batch, hidden, dtype, extreme=True)
    activated, c_next = to_numpy(g_gates), to_numpy(g_c_next)
    expected = ref_backward(dy, dh, dc, activated, c_prev, c_next)
    g_dc = cupy.asarray(dc)
    kernels.backward(*_to_gpu(cupy, dy, dh), g_dc, g_gates, g_c_prev, g_c_next)
    scale = backward_scale(dy, dh, dc, c_prev)
    assert_close(g_gates, expected[0], dtype, np.tile(scale, 4), "gate gradients")
    assert_close(g_dc, expected[1], dtype, scale, "dc_prev")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_fused_agrees_with_unfused(dtype):
    cupy = cupy_or_skip()
    rng = np.random.default_rng(12)
    batch, hidden = 9, 31
    gates, recurrent, c_prev = _to_gpu(cupy, *random_step(rng, batch, hidden, dtype))
    dy, dh, dc = _to_gpu(cupy, *backward_inputs(rng, batch, hidden, dtype))
    results = []
    for fused in (True, False):
        step = LSTMPointwise(cupy, dtype, batch, hidden, fused=fused)
        assert step.is_fused == fused
        g, c_next, h_next = gates.copy(), cupy.empty_like(c_prev), cupy.empty_like(c_prev)
        step.forward(g, recurrent, c_prev, c_next, h_next)
        forward = (g.copy(), c_next, h_next)
        d_c = dc.copy()
        step.backward(dy, dh, d_c, g, c_prev, c_next)
        results.append((*forward, g, d_c))
    scale = backward_scale(*(to_numpy(a) for a in (dy, dh, dc, c_prev)))
    scales = [1.0, scale, scale, np.tile(scale, 4), scale]
    names = ["gates", "c_next", "h_next", "gate gradients", "dc_prev"]
    for fused, unfused, name, s in zip(*results, names, scales, strict=True):
        assert_close(fused, to_numpy(unfused).astype(np.float64), dtype, s, name)


@pytest.mark.gpu
def test_gpu_zero_size_steps_launch_nothing():
    cupy = cupy_or_skip()
    kernels = cuda_kernels.lstm_kernels(np.float32)
    for batch, hidden in ((0, 3), (2, 0)):
        gates = cupy.empty((batch, 4 * hidden), np.float32)
        cell = [cupy.empty((batch, hidden), np.float32) for _ in range(5)]
        kernels.forward(gates, gates.copy(), *cell[:3])
        kernels.backward(*cell[:3], gates, *cell[3:])


# ------------------------------------------------------------------- GPU: the course functions


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
        value = to_numpy(value)
        assert value.dtype == dtype, f"{name} came back as {value.dtype}"
        scale = max(1.0, float(np.abs(expected[name]).max(initial=0.0)))
        error = float(np.abs(value - expected[name]).max(initial=0.0)) / scale
        assert error <= tolerance(dtype), f"{name}: relative error {error:.3g}"


# ------------------------------------------------------------------------------------ packaging


@pytest.mark.slow
def test_installed_wheel_carries_and_finds_the_kernels(tmp_path):
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("the build backend hatchling is not installed (pip install hatchling)")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    flags = ["--no-deps", "--no-index", "--no-build-isolation"]
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run(
        [*pip, "wheel", *flags, "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("xplstm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert f"xplstm/kernels/{cuda_kernels.HEADER}" in archive.namelist()
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import json, xplstm, xplstm.cuda_kernels as k; d = k.kernel_source_dir(); "
        "print(json.dumps([xplstm.__file__, str(d), len(k.kernel_preamble())]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    package_file, source_dir, preamble_length = json.loads(result.stdout)
    assert Path(package_file).resolve().is_relative_to(target.resolve())
    assert Path(source_dir) == (target / "xplstm" / "kernels").resolve()
    assert preamble_length > len((KERNEL_DIR / cuda_kernels.HEADER).read_text())


# ------------------------------------------------------------------- benchmarks/gpu_report.py


@pytest.fixture(scope="module")
def gpu_report():
    path = REPO / "benchmarks" / "gpu_report.py"
    spec = importlib.util.spec_from_file_location("xplstm_gpu_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_report_help_works_without_cupy():
    script = REPO / "benchmarks" / "gpu_report.py"
    code = (
        "import runpy, sys; sys.modules['cupy'] = None; sys.argv = ['gpu_report.py', '--help']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: gpu_report.py" in result.stdout and "--repeats" in result.stdout


def test_gpu_report_stops_clearly_without_a_gpu(gpu_report, host, tmp_path, monkeypatch):
    output = tmp_path / "gpu.json"
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(SystemExit) as stop:
        gpu_report.main(["--skip-tests", "--output", str(output)])
    assert "CuPy is not installed" in str(stop.value.code)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(host, device_count=0))
    with pytest.raises(SystemExit) as stop:
        gpu_report.main(["--skip-tests", "--output", str(output)])
    assert "no CUDA device" in str(stop.value.code)
    assert not output.exists()
    with pytest.raises(SystemExit):
        gpu_report.parse_args(["--repeats", "5"])


def test_gpu_report_reads_pytest_summaries(gpu_report):
    text = "....F\nFAILED tests/x.py::y\n3 passed, 1 failed, 2 skipped, 1 error in 1.2s\n"
    counts = gpu_report.parse_pytest_summary(text)
    assert counts == {"passed": 3, "failed": 1, "skipped": 2, "errors": 1, "deselected": 0}
    assert gpu_report.parse_pytest_summary("")["passed"] == 0
    assert gpu_report.parse_pytest_summary("12 deselected in 0.1s")["deselected"] == 12


def _fake_size(n_a, forward, both, error):
    timings = {}
    for path, scale in (("fused", 1.0), ("unfused", 2.0), ("cudnn", 0.5)):
        for name, value in (("forward", forward), ("forward_backward", both)):
            samples = [value * scale] * 20
            timings[f"{path}_{name}"] = {"median": value * scale, "samples": samples}
    errors = {"fused": error, "unfused": error / 2, "cudnn": 1e-6}
    return {
        "n_x": n_a,
        "n_a": n_a,
        "m": 64,
        "T": 100,
        "timings_ms": timings,
        "max_rel_error": errors,
    }


def test_gpu_report_summary_and_json_from_fake_timings(gpu_report, tmp_path):
    sizes = [_fake_size(512, 4.0, 10.0, 3e-6), _fake_size(1024, 9.0, 20.0, 5e-6)]
    headline = gpu_report.summarize(sizes)
    assert headline["fused_speedup_vs_unfused"] == pytest.approx(2.0)
    assert headline["fwd_ratio_vs_cudnn"] == pytest.approx(2.0)
    assert headline["fwd_bwd_ratio_vs_cudnn"] == pytest.approx(2.0)
    assert headline["max_rel_error"] == pytest.approx(5e-6)
    assert headline["targets_met"]["fused_speedup_vs_unfused"] is True
    assert headline["accuracy_ok"] is True
    report = {**headline, "device": "test", "gpu_tests": None, "sizes": sizes}
    path = tmp_path / "results" / "gpu.json"
    gpu_report.write_report(path, report)
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["gpu.json"]
    table = gpu_report.format_table(report)
    assert "n_x=1024 n_a=1024 m=64 T=100" in table and "2.00x" in table


def test_gpu_report_end_to_end_on_a_stand_in_gpu(gpu_report, host, tmp_path, monkeypatch, capsys):
    """The whole script, tiny sizes, with the host build of the kernels standing in for CuPy."""
    fake = fake_cupy(host)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cuda_kernels, "_KERNELS", {})

    def dispatch(*arrays, names=None):  # stand-in arrays subclass ndarray: tell them apart here
        return fake if any(isinstance(a, fake.ndarray) for a in arrays) else np

    monkeypatch.setattr(engine, "get_array_module", dispatch)
    monkeypatch.setattr(gpu_report, "optional_torch", lambda: (None, "not in this test"))
    sizes = ({"n_x": 5, "n_a": 6, "m": 3, "T": 4}, {"n_x": 7, "n_a": 7, "m": 2, "T": 3})
    monkeypatch.setattr(gpu_report, "SIZES", sizes)
    output = tmp_path / "gpu.json"
    status = gpu_report.main(["--skip-tests", "--warmup", "1", "--output", str(output)])
    assert status == 0
    report = json.loads(output.read_text())
    for key in ("device", "cupy_version", "commit", "max_rel_error", "fused_speedup_vs_unfused"):
        assert key in report
    assert report["fwd_ratio_vs_cudnn"] is None and report["launches_per_step"]["error"]
    assert report["max_rel_error"] < 1e-5
    assert [kernel.launches > 0 for kernel in fake.kernels] == [True, True]
    first = report["sizes"][0]["timings_ms"]
    assert set(first) == {
        f"{p}_{c}" for p in ("fused", "unfused") for c in ("forward", "forward_backward")
    }
    assert all(len(timing["samples"]) == 25 for timing in first.values())
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("max relative error")
