"""Run CuPy kernel definitions on NumPy arrays: render to host C++, compile, call through ctypes.

:class:`HostKernel` takes ``cupy.ElementwiseKernel``'s arguments and, when called, applies
CuPy's launch rules to NumPy arrays (argument count, ``size`` only and always when every array
is ``raw``, exact dtypes, broadcasting of element-wise arrays, output allocation, nothing
launched for an empty range, inputs that overlap outputs copied first), then runs the rendered
source (:mod:`kernel_harness.render`). ``raw`` arrays must be C-contiguous: the operation gets
a bare pointer, and the stand-in cannot emulate the strides of CuPy's ``CArray``, so it fails
the launch rather than compute on the wrong elements.

Libraries are cached by a hash of the rendered source (and compiler command) in a folder under
the system temporary directory, so each distinct kernel compiles once per machine.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .render import Param, parse_params, render_kernel, resolve_types

__all__ = [
    "CompileError",
    "HostKernel",
    "LaunchError",
    "compile_host_library",
    "host_compiler",
    "launch_spec",
]

HOST_FLAGS = ("-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")
CACHE_DIR = Path(tempfile.gettempdir()) / f"xplstm-stand-in-{os.getuid()}"
_SCALAR_CTYPES = {
    np.dtype(np.bool_): ctypes.c_bool,
    np.dtype(np.int8): ctypes.c_int8,
    np.dtype(np.uint8): ctypes.c_uint8,
    np.dtype(np.int16): ctypes.c_int16,
    np.dtype(np.uint16): ctypes.c_uint16,
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.int64): ctypes.c_longlong,
    np.dtype(np.uint64): ctypes.c_ulonglong,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}
_LIBRARIES: dict[str, ctypes.CDLL] = {}
_LIBRARIES_LOCK = threading.Lock()


class CompileError(Exception):
    """The host compiler rejected a rendered kernel (CuPy raises ``CompileException``)."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source


class LaunchError(RuntimeError):
    """A launch the stand-in refuses (CuPy would raise ``CUDADriverError`` or misbehave)."""


def host_compiler() -> str | None:
    """Path of ``g++`` (else ``c++``, ``clang++``) on PATH, or ``None``."""
    for name in ("g++", "c++", "clang++"):
        found = shutil.which(name)
        if found:
            return found
    return None


def compile_host_library(source: str) -> ctypes.CDLL:
    """Compile ``source`` into a shared library (cached by its hash) and load it."""
    compiler = host_compiler()
    if compiler is None:
        raise CompileError("the stand-in GPU needs a C++ compiler (g++) on PATH", source)
    command = [compiler, *HOST_FLAGS]
    key = hashlib.sha256("\0".join([*command, source]).encode()).hexdigest()[:24]
    with _LIBRARIES_LOCK:
        library = _LIBRARIES.get(key)
        if library is not None:
            return library
        CACHE_DIR.mkdir(mode=0o700, exist_ok=True)
        target = CACHE_DIR / f"{key}.so"
        if not target.is_file():
            handle, temporary = tempfile.mkstemp(dir=CACHE_DIR, prefix=f".{key}.", suffix=".so")
            os.close(handle)
            source_path = Path(temporary).with_suffix(".cpp")
            source_path.write_text(source, encoding="utf-8")
            try:
                result = subprocess.run(
                    [*command, str(source_path), "-o", temporary],
                    capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    log = result.stdout + result.stderr
                    raise CompileError(f"{' '.join(command)} failed:\n{log}", source)
                os.replace(temporary, target)  # atomic: parallel runs never load half a file
            finally:
                source_path.unlink(missing_ok=True)
                Path(temporary).unlink(missing_ok=True)
        library = _LIBRARIES[key] = ctypes.CDLL(str(target))
        return library


class HostKernel:
    """``cupy.ElementwiseKernel`` on NumPy arrays, running the rendered source on the host.

    Parameters are CuPy's. Calling it returns the output arrays (one array, or a tuple when the
    kernel has several outputs) and sets :attr:`launched` to whether the loop ran.
    """

    def __init__(
        self,
        in_params: str,
        out_params: str,
        operation: str,
        name: str = "kernel",
        preamble: str = "",
    ) -> None:
        self.in_params = parse_params(in_params, is_input=True)
        self.out_params = parse_params(out_params, is_input=False)
        self.params = self.in_params + self.out_params
        self.operation, self.name, self.preamble = operation, name, preamble
        self.launched = False
        self._functions: dict[tuple, Any] = {}

    def source(self, is_array: tuple[bool, ...], types: dict[str, np.dtype]) -> str:
        """The host C++ this kernel runs for one argument signature."""
        return render_kernel(self.params, is_array, self.operation, self.name, self.preamble, types)

    def __call__(self, *args: Any, size: int | None = None) -> Any:
        nin, nargs = len(self.in_params), len(self.params)
        if len(args) not in (nin, nargs):
            raise TypeError(f"Wrong number of arguments for {self.name}")
        for value in args:
            if not (isinstance(value, np.ndarray) or _is_scalar(value)):
                raise TypeError(f"Unsupported type {type(value)}")
        inputs, outputs = list(args[:nin]), list(args[nin:])
        for position, value in enumerate(inputs):  # CuPy copies inputs overlapping outputs
            if isinstance(value, np.ndarray) and any(
                value is not out and np.may_share_memory(value, out) for out in outputs
            ):
                inputs[position] = value.copy()
        given = self.params[: len(args)]
        nonraw = [
            value for param, value in zip(given, [*inputs, *outputs], strict=True)
            if not param.raw and isinstance(value, np.ndarray)
        ]  # fmt: skip
        if size is not None and nonraw:
            raise ValueError("Specified 'size' can be used only if all of the ndarray are 'raw'.")
        if size is None and not nonraw:
            raise ValueError("Loop size is undecided.")
        for value in outputs:
            if not isinstance(value, np.ndarray):
                raise TypeError(f"Output arguments type must be cupy.ndarray, not {type(value)}")
        dtypes = [value.dtype if isinstance(value, np.ndarray) else None for value in inputs]
        out_dtypes = [value.dtype for value in outputs] or [None] * len(self.out_params)
        types = resolve_types(self.params, [*dtypes, *out_dtypes])
        missing = [p for p in self.out_params if p.dtype is None and p.type_name not in types]
        if not outputs and missing:
            raise TypeError(f"Cannot determine the type of {missing[0].name}")
        broadcast = np.broadcast_shapes(*(value.shape for value in nonraw))
        shape = (size,) if size is not None else broadcast
        for param, value in zip(self.out_params, outputs, strict=False):
            if not param.raw and value.shape != shape:
                raise ValueError(
                    f"Out shape is mismatched: {value.shape} while {shape} is expected."
                )
        if not outputs:
            if size is None and any(param.raw for param in self.out_params):
                raise ValueError("Output array size is Undecided")
            outputs = [np.empty(shape, _dtype(param, types)) for param in self.out_params]
        self.launched = 0 not in shape
        if self.launched:
            self._launch(inputs, outputs, shape, types)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _launch(self, inputs: list, outputs: list, shape: tuple, types: dict) -> None:
        values = [*inputs, *outputs]
        is_array = tuple(isinstance(value, np.ndarray) for value in values)
        key = (is_array, tuple(sorted(types.items())))
        function = self._functions.get(key)
        if function is None:
            library = compile_host_library(self.source(is_array, types))
            function = self._functions[key] = getattr(library, self.name)
            function.restype = None
        arguments, buffers, write_back = [], [], []
        for param, value in zip(self.params, values, strict=True):
            if not isinstance(value, np.ndarray):
                scalar = _dtype(param, types).type(value)
                arguments.append(_SCALAR_CTYPES[scalar.dtype](scalar.item()))
                continue
            if param.raw:
                if not value.flags.c_contiguous:
                    raise LaunchError(
                        f"{self.name}: raw argument {param.name} is not C-contiguous "
                        f"(shape {value.shape}, strides {value.strides}); the stand-in passes "
                        "raw arrays as bare pointers"
                    )
                if not param.const and not value.flags.writeable:
                    raise LaunchError(f"{self.name}: raw output {param.name} is read-only")
                buffer = value
            elif param.const:
                buffer = np.ascontiguousarray(np.broadcast_to(value, shape))
            else:
                buffer = value
                if not (value.flags.c_contiguous and value.flags.writeable):
                    buffer = np.ascontiguousarray(value)
                    write_back.append((value, buffer))
            buffers.append(buffer)  # alive until the call returns
            arguments.append(ctypes.c_void_p(buffer.ctypes.data))
        arguments.append(ctypes.c_ssize_t(int(np.prod(shape))))
        function(*arguments)
        for target, buffer in write_back:
            target[...] = buffer


def _dtype(param: Param, types: dict[str, np.dtype]) -> np.dtype:
    return param.dtype if param.dtype is not None else types[param.type_name]


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.generic))


def launch_spec(kernel: Any, spec: Any, arrays: dict[str, Any], size: int) -> None:
    """Launch ``kernel`` (built from ``spec``) with ``arrays`` by name, in the spec's order."""
    kernel(*(arrays[name] for name in (*spec.in_names, *spec.out_names)), size=size)
