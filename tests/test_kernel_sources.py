"""The kernel sources: the preamble, the specs, and compile checks of both against every compiler.

Every compiled source here is generated from :func:`xplstm.cuda.specs.kernel_specs` by
:mod:`kernel_harness.render` (the operation text verbatim): ``g++`` always, ``nvcc`` for sm_90
and NVRTC when they are present, and CuPy's own generated source when CuPy is installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kernel_harness.host import CompileError, HostKernel, host_compiler
from kernel_harness.render import render_spec

from xplstm.cuda import specs
from xplstm.cuda.specs import (
    CELL_HEADERS,
    GENERATED_SOURCE_NAME,
    kernel_preamble,
    kernel_source_dir,
    kernel_specs,
)

REPO = Path(__file__).resolve().parent.parent
KERNEL_DIR = REPO / "kernels"
DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
CELLS = sorted(CELL_HEADERS)
HEADERS = ["activations.cuh", *(CELL_HEADERS[cell] for cell in CELLS)]


def all_specs(cell):
    return [spec for dtype in DTYPES for spec in kernel_specs(cell, dtype).values()]


def broken_preamble(cell, spec):
    """The preamble with ``spec``'s entry point renamed, so the generated body's call fails."""
    function = spec.operation.removeprefix("xplstm::").split("(")[0]
    preamble = kernel_preamble(cell)
    assert f"void {function}(" in preamble
    return preamble.replace(f"void {function}(", f"void {function}_renamed(")


# ------------------------------------------------------------------------ preamble and specs


@pytest.mark.parametrize("cell", CELLS)
def test_preamble_names_each_source_file(cell):
    preamble = kernel_preamble(cell)
    assert kernel_source_dir() == KERNEL_DIR
    shared, header = KERNEL_DIR / "activations.cuh", KERNEL_DIR / CELL_HEADERS[cell]
    assert preamble.startswith(f'#line 1 "{shared.as_posix()}"\n')
    assert f'#line 1 "{header.as_posix()}"\n' in preamble
    assert preamble.index(shared.read_text().rstrip()) < preamble.index(header.read_text().rstrip())
    assert preamble.endswith(f'#line 1 "{GENERATED_SOURCE_NAME}"\n')
    for spec in all_specs(cell):
        assert spec.operation.startswith("xplstm::") and "#include" not in spec.operation


SCALARS = ("hidden", "width")  # the int64 sizes: H of a cell, the normalized width of a row


@pytest.mark.parametrize("cell", CELLS)
def test_specs_launch_every_array_raw_with_the_element_index(cell):
    """Arrays go raw and by address, sizes as int64; the function is ``{cell}_{step}_element``
    (one call per element) or ``_row`` (one call per row, the layer norms' reductions)."""
    for dtype in DTYPES:
        for step, spec in kernel_specs(cell, dtype).items():
            params = [p.split() for p in f"{spec.in_params}, {spec.out_params}".split(", ")]
            names = tuple(words[-1] for words in params)
            assert names == (*spec.in_names, *spec.out_names), spec.name
            for words in params:
                allowed = (["raw", dtype.name, words[-1]], ["int64", words[-1]])
                assert words in allowed and (words[0] == "raw") != (words[-1] in SCALARS)
            arguments = ", ".join(n if n in SCALARS else f"&{n}[0]" for n in _header_order(spec))
            assert spec.operation in (
                f"xplstm::{cell}_{step}_{unit}(i, {arguments});" for unit in ("element", "row")
            ), spec.name


def _header_order(spec):
    """The arguments of the operation's call after ``i``, as written."""
    inside = spec.operation[spec.operation.index("(i, ") + 4 : spec.operation.rindex(")")]
    return [
        argument.strip().removeprefix("&").removesuffix("[0]") for argument in inside.split(",")
    ]


def test_specs_reject_other_dtypes_and_cells():
    with pytest.raises(TypeError, match=r"float32 and float64, got float16.*fused=False"):
        kernel_specs("lstm", np.float16)
    with pytest.raises(
        ValueError,
        match=r"cell must be one of "
        r"\('lstm', 'lstm_peephole', 'rnn', 'rnn_relu', 'gru', 'zoneout', 'layer_norm', "
        r"'lstm_layer_norm'\), got 'mgu'",
    ):
        kernel_specs("mgu", np.float32)
    with pytest.raises(ValueError, match="cell must be one of"):
        kernel_preamble("mgu")


def test_missing_sources_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(specs, "__file__", str(tmp_path / "xplstm" / "cuda" / "specs.py"))
    with pytest.raises(
        FileNotFoundError, match=r"activations\.cuh, lstm\.cuh, rnn\.cuh.*Reinstall"
    ):
        kernel_source_dir()


# ------------------------------------------------------------------------------- host compiler


@pytest.mark.parametrize("cell", CELLS)
def test_rendered_host_source_is_the_preamble_and_the_operation_verbatim(cell):
    preamble = kernel_preamble(cell)
    for spec in all_specs(cell):
        source = render_spec(spec, preamble)
        assert preamble in source and source.count(spec.operation) == 1
        assert f'extern "C" void {spec.name}(' in source
        assert "for (ptrdiff_t i = 0; i < _loop_size; ++i) {" in source


@pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
@pytest.mark.parametrize("cell", CELLS)
def test_host_compile_errors_in_the_body_name_the_generated_source(cell):
    (spec, *_) = all_specs(cell)
    kernel = HostKernel(spec.in_params, spec.out_params, spec.operation, spec.name,
                        broken_preamble(cell, spec))  # fmt: skip
    arrays = [np.zeros(8, DTYPES[0]) for _ in (*spec.in_names, *spec.out_names)]
    arguments = [1 if name in SCALARS else array for name, array in
                 zip((*spec.in_names, *spec.out_names), arrays, strict=True)]  # fmt: skip
    with pytest.raises(CompileError, match=re.escape(GENERATED_SOURCE_NAME)) as error:
        kernel(*arguments, size=2)
    assert spec.operation in error.value.source


# ------------------------------------------------------------------------ nvcc and NVRTC checks


@pytest.mark.parametrize("cell", CELLS)
def test_kernels_compile_with_nvcc_for_sm90(cell, tmp_path):
    """Every spec of ``cell``, both dtypes, as ``__global__`` kernels around the same text."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    preamble = kernel_preamble(cell)
    kernels = [render_spec(spec, "", device=True) for spec in all_specs(cell)]
    source = tmp_path / f"{cell}_kernels.cu"
    source.write_text(preamble + "\n".join(kernels), encoding="utf-8")
    command = [
        nvcc, "-arch=sm_90", "-c", "-Werror", "all-warnings", str(source),
        "-o", str(tmp_path / f"{cell}_kernels.o"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for spec in all_specs(cell):
        assert spec.operation in source.read_text()


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


@pytest.mark.parametrize("cell", CELLS)
def test_kernel_operations_compile_with_nvrtc(cell):
    """The preamble and operations compile under NVRTC, which has no standard headers."""
    library = _nvrtc_or_skip()
    preamble = kernel_preamble(cell)
    for spec in all_specs(cell):
        source = render_spec(spec, preamble, device=True)
        log = _nvrtc_compile(library, source, spec.name, ["--gpu-architecture=compute_90"])
        assert log is None, f"NVRTC rejected {spec.name}:\n{log}"
    # an error in the generated body is reported under its own name, not the header's
    (spec, *_) = all_specs(cell)
    source = render_spec(spec, broken_preamble(cell), device=True)
    log = _nvrtc_compile(library, source, "broken", [])
    assert log is not None and GENERATED_SOURCE_NAME in log, log


def _cupy_internals_or_skip():
    """CuPy's NVRTC binding and kernel-source generator (private API), or skip."""
    pytest.importorskip("cupy")
    try:
        import cupy
        from cupy._core import _carray, _kernel, _scalar, core
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as error:  # internals moved, or CuPy cannot load NVRTC (or the stand-in)
        pytest.skip(f"CuPy's NVRTC or its kernel generator is not usable here: {error!r}")
    return cupy, nvrtc, _kernel, _carray, _scalar, core


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cupy_generated_source_compiles_with_nvrtc(dtype, cell):
    """The exact source CuPy would compile for our kernels, built and compiled without a device."""
    cupy, nvrtc, _kernel, _carray, _scalar, core = _cupy_internals_or_skip()
    ndarray, indexer, scalar = 1, 2, 3  # CuPy's _ArgKind values
    preamble = kernel_preamble(cell)
    for spec in kernel_specs(cell, dtype).values():
        kernel = cupy.ElementwiseKernel(
            spec.in_params, spec.out_params, spec.operation, spec.name, preamble=preamble
        )
        try:
            infos = []
            for param in kernel.params[:-1]:
                if not param.raw:
                    infos.append(_kernel._ArgInfo(scalar, _scalar.CScalar, np.int64, 0, 1, 1))
                else:
                    infos.append(_kernel._ArgInfo(ndarray, cupy.ndarray, dtype.type, 2, True, 1))
            infos.append(_kernel._ArgInfo(indexer, _carray.Indexer, None, 1, True, True))
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
