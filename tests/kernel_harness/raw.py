"""``cupy.RawModule`` and ``cupy.RawKernel`` on the stand-in: CUDA source run on the host.

The module's ``code`` is compiled verbatim with the host compiler behind a prelude that defines
CUDA's kernel vocabulary for one host thread at a time: ``__global__``, ``__device__``,
``__host__``, ``__forceinline__`` and ``__launch_bounds__(...)`` expand to nothing (or
``inline``), and ``threadIdx``, ``blockIdx`` (``uint3``), ``blockDim``, ``gridDim`` (``dim3``) are
``thread_local`` globals. For each ``extern "C" __global__`` function the stand-in parses the
signature from the source and appends a launcher that sets ``gridDim``/``blockDim`` and calls the
kernel once per thread of the launched grid, block by block, thread by thread, so the kernel
body runs for exactly the launched ``grid x block`` threads: a grid too small for a kernel that
does not loop leaves elements undone, as on a GPU. Kernels that need threads to cooperate
(``__shared__``, ``__syncthreads``, warp intrinsics) are not defined and fail to compile.

A launch ``kernel(grid, block, args, shared_mem=0, stream=None)`` follows CuPy: ``grid`` and
``block`` are tuples (1 to 3 entries, missing ones 1, each at least 1), the arguments are packed
as CuPy packs them (device arrays as their data pointer, Python ``int``/``bool`` as int64,
``float`` as float64, NumPy scalars as themselves), on the current stream unless ``stream`` is
given, recorded instead of run while that stream captures. The stand-in then checks what a GPU
would only get wrong: the argument count; each value's size and kind against the parameter's
declared type (an int32 for a ``long long`` or a float64 for a ``float`` is refused); CUDA's
grid and block limits; and that every pointer argument is non-null, aligned for its pointee
and inside a live device allocation (:mod:`kernel_harness.memory`), when the launch is issued
and again when it runs, and that a typed pointer (``float*``, ``const long long*``) points into an
allocation of that element type. A kernel's accesses cannot be known in general, so how far past
the pointer the kernel reads is bounded only by the allocation.

``launches`` counts the launches of a kernel that ran (graph replays included), ``captured`` those
recorded into a capture.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .host import CompileError, LaunchError, compile_host_library
from .memory import ALLOCATIONS
from .streams import Operation, StreamState

__all__ = ["PRELUDE", "KernelParam", "RawKernel", "RawModule", "make_raw", "parse_kernels"]

PRELUDE = """\
// kernel_harness.raw prelude: CUDA's kernel vocabulary for a host loop over the threads
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
static thread_local uint3 threadIdx;
static thread_local uint3 blockIdx;
static thread_local dim3 blockDim;
static thread_local dim3 gridDim;
#line 1 "raw module code"
"""
LAUNCHER_PREFIX = "xplstm_stand_in_launch__"
_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/', re.S)
_KERNEL = re.compile(
    r'(?P<extern>extern\s+"C"\s+)?__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
    r"(?:__launch_bounds__\s*\([^)]*\)\s*)?(?P<name>[A-Za-z_]\w*)\s*\((?P<params>[^)]*)\)\s*\{"
)
_TEMPLATE_BEFORE = re.compile(r"template\s*<[^>]*>\s*$")
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict", "signed"}
# C scalar types: (ctypes type, size, kind) with kind "i" (integer) or "f" (floating)
_SCALARS = {
    "bool": (ctypes.c_bool, 1, "i"),
    "char": (ctypes.c_byte, 1, "i"),
    "unsigned char": (ctypes.c_ubyte, 1, "i"),
    "short": (ctypes.c_short, 2, "i"),
    "short int": (ctypes.c_short, 2, "i"),
    "unsigned short": (ctypes.c_ushort, 2, "i"),
    "int": (ctypes.c_int, 4, "i"),
    "unsigned": (ctypes.c_uint, 4, "i"),
    "unsigned int": (ctypes.c_uint, 4, "i"),
    "long": (ctypes.c_long, ctypes.sizeof(ctypes.c_long), "i"),
    "unsigned long": (ctypes.c_ulong, ctypes.sizeof(ctypes.c_ulong), "i"),
    "long long": (ctypes.c_longlong, 8, "i"),
    "long long int": (ctypes.c_longlong, 8, "i"),
    "unsigned long long": (ctypes.c_ulonglong, 8, "i"),
    "unsigned long long int": (ctypes.c_ulonglong, 8, "i"),
    "size_t": (ctypes.c_size_t, ctypes.sizeof(ctypes.c_size_t), "i"),
    "ptrdiff_t": (ctypes.c_ssize_t, ctypes.sizeof(ctypes.c_ssize_t), "i"),
    "int8_t": (ctypes.c_int8, 1, "i"),
    "uint8_t": (ctypes.c_uint8, 1, "i"),
    "int16_t": (ctypes.c_int16, 2, "i"),
    "uint16_t": (ctypes.c_uint16, 2, "i"),
    "int32_t": (ctypes.c_int32, 4, "i"),
    "uint32_t": (ctypes.c_uint32, 4, "i"),
    "int64_t": (ctypes.c_int64, 8, "i"),
    "uint64_t": (ctypes.c_uint64, 8, "i"),
    "float": (ctypes.c_float, 4, "f"),
    "double": (ctypes.c_double, 8, "f"),
}
# what CuPy's _pointer accepts as a NumPy scalar ('?bhilqBHILQefdFD')
_PACKABLE = {np.dtype(code).type for code in "?bhilqBHILQefdFD"}
BLOCK_LIMITS, MAX_THREADS = (1024, 1024, 64), 1024
GRID_LIMITS = ((1 << 31) - 1, 65535, 65535)


@dataclass(frozen=True)
class KernelParam:
    """One kernel parameter: its declared ``text``, C ``type`` (as written, name removed),
    whether it is a ``pointer``, and for scalars/pointees the ``scalar`` key of the type table."""

    text: str
    type: str
    pointer: bool
    scalar: str | None

    @property
    def size(self) -> int:
        return 8 if self.pointer else _SCALARS[self.scalar][1]

    @property
    def ctype(self) -> Any:
        return ctypes.c_void_p if self.pointer else _SCALARS[self.scalar][0]

    @property
    def element(self) -> tuple[str, int] | None:
        """A pointer's pointee as ``(kind, size)`` ("f" or "i"), ``None`` when not a scalar."""
        if not self.pointer or self.scalar is None:
            return None
        _, size, kind = _SCALARS[self.scalar]
        return kind, size

    @property
    def align(self) -> int:
        """The alignment a pointer argument needs (its pointee's size when known, else 1)."""
        if self.scalar is None:
            return 1
        return _SCALARS[self.scalar][1]


def _strip_comments(source: str) -> str:
    return _COMMENT_OR_STRING.sub(lambda m: m.group(0) if m.group(0)[0] == '"' else " ", source)


def _parse_param(text: str, kernel: str) -> KernelParam:
    words = re.findall(r"[A-Za-z_]\w*|\*|&|\[|\]", text)
    if "&" in words or "[" in words:
        raise CompileError(f"{kernel}: the stand-in cannot pass parameter {text!r}", text)
    pointer = "*" in words
    names = [w for w in words if w != "*"]
    if len(names) >= 2 and words[-1] != "*" and names[-1] not in _QUALIFIERS:
        type_words = words[:-1]  # drop the parameter's name
    else:
        type_words = words
    base = " ".join(w for w in type_words if w not in _QUALIFIERS and w != "*")
    if base not in _SCALARS and not (pointer and base):
        raise CompileError(f"{kernel}: the stand-in cannot pass parameter {text!r}", text)
    declared = " ".join(type_words).replace(" *", "*")
    return KernelParam(text.strip(), declared, pointer, base if base in _SCALARS else None)


def parse_kernels(source: str) -> dict[str, tuple[tuple[KernelParam, ...], bool]]:
    """``{name: (parameters, extern_c)}`` of the ``__global__`` functions of ``source``
    (templates left out: CuPy reaches them only through ``name_expressions``)."""
    code = _strip_comments(source)
    has_extern_block = re.search(r'extern\s+"C"\s*\{', code) is not None
    kernels = {}
    for match in _KERNEL.finditer(code):
        if _TEMPLATE_BEFORE.search(code[: match.start()]):
            continue
        name = match.group("name")
        if name in kernels:
            raise CompileError(f"kernel {name} is defined twice (overloads need C++ names)", source)
        text = match.group("params").strip()
        parts = [] if text in ("", "void") else [part for part in text.split(",")]
        params = tuple(_parse_param(part, name) for part in parts)
        kernels[name] = (params, bool(match.group("extern")) or has_extern_block)
    return kernels


def _launcher(name: str, params: tuple[KernelParam, ...]) -> str:
    declared = "".join(f", {p.type} _a{i}" for i, p in enumerate(params))
    passed = ", ".join(f"_a{i}" for i in range(len(params)))
    return (
        f'extern "C" void {LAUNCHER_PREFIX}{name}(unsigned int _gx, unsigned int _gy, '
        f"unsigned int _gz, unsigned int _bx, unsigned int _by, unsigned int _bz{declared}) {{\n"
        "    gridDim = dim3(_gx, _gy, _gz);\n    blockDim = dim3(_bx, _by, _bz);\n"
        "    for (unsigned int z = 0; z < _gz; ++z)\n"
        "    for (unsigned int y = 0; y < _gy; ++y)\n"
        "    for (unsigned int x = 0; x < _gx; ++x) {\n"
        "        blockIdx.x = x; blockIdx.y = y; blockIdx.z = z;\n"
        "        for (unsigned int tz = 0; tz < _bz; ++tz)\n"
        "        for (unsigned int ty = 0; ty < _by; ++ty)\n"
        "        for (unsigned int tx = 0; tx < _bx; ++tx) {\n"
        "            threadIdx.x = tx; threadIdx.y = ty; threadIdx.z = tz;\n"
        f"            {name}({passed});\n"
        "        }\n    }\n}\n"
    )


def _defines(options: tuple) -> str:
    """``-DNAME[=VALUE]`` / ``-UNAME`` options as preprocessor lines (other options ignored)."""
    lines = []
    for option in options:
        if option.startswith("-D") and len(option) > 2:
            name, _, value = option[2:].partition("=")
            lines.append(f"#define {name} {value or 1}")
        elif option.startswith("-U") and len(option) > 2:
            lines.append(f"#undef {option[2:]}")
    return "".join(f"{line}\n" for line in lines)


class RawModule:
    """``cupy.RawModule(*, code=None, path=None, options=(), ...)``, compiled for the host on the
    first :meth:`get_function` (as CuPy compiles on first use).

    Each stand-in module subclasses it (and :class:`RawKernel`) with its ``_stand_in``: an object
    with ``streams`` (:class:`~kernel_harness.streams.StreamState`) and ``raw_kernels`` (a list
    every kernel joins).
    """

    _stand_in: Any = None
    _kernel_class: type[RawKernel]

    def __init__(self, *, code: str | None = None, path: str | None = None, options: tuple = (),
                 backend: str = "nvrtc", translate_cucomplex: bool = False,
                 enable_cooperative_groups: bool = False, name_expressions: Any = None,
                 jitify: bool = False) -> None:  # fmt: skip
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
        if path is not None:
            raise NotImplementedError("the stand-in compiles CUDA source, not cubin/ptx files")
        if not isinstance(options, tuple):
            raise TypeError(f"options must be a tuple, not {type(options).__name__}")
        if name_expressions is not None or enable_cooperative_groups or jitify:
            raise NotImplementedError(
                'the stand-in supports extern "C" kernels without cooperative groups or jitify'
            )
        self.code, self.options, self.backend = code, options, backend
        self._library: Any = None
        self._kernels: dict[str, tuple[tuple[KernelParam, ...], bool]] = {}
        self._functions: dict[str, RawKernel] = {}

    def _compile(self) -> None:
        if self._library is not None:
            return
        kernels = parse_kernels(self.code)
        launchers = "".join(_launcher(n, p) for n, (p, extern) in kernels.items() if extern)
        source = f"{_defines(self.options)}{PRELUDE}{self.code}\n{launchers}"
        self._library = compile_host_library(source)
        self._kernels = kernels

    def get_function(self, name: str) -> RawKernel:
        """The kernel ``name`` (an ``extern "C" __global__`` function of the code)."""
        self._compile()
        kernel = self._functions.get(name)
        if kernel is not None:
            return kernel
        found = self._kernels.get(name)
        if found is None or not found[1]:
            raise LaunchError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        params = found[0]
        function = getattr(self._library, LAUNCHER_PREFIX + name)
        function.argtypes = [ctypes.c_uint] * 6 + [param.ctype for param in params]
        function.restype = None
        kernel = self._kernel_class._from_module(self, name, params, function)
        self._functions[name] = kernel
        return kernel


class RawKernel:
    """``cupy.RawKernel(code, name, options=(), ...)`` (or a kernel of a :class:`RawModule`).

    Calling it launches the kernel (see the module doc); ``launches`` and ``captured`` count.
    """

    _module_class: type[RawModule] = RawModule

    def __init__(self, code: str, name: str, options: tuple = (), backend: str = "nvrtc",
                 *, translate_cucomplex: bool = False, enable_cooperative_groups: bool = False,
                 jitify: bool = False) -> None:  # fmt: skip
        module = self._module_class(code=code, options=options, backend=backend,
                                    enable_cooperative_groups=enable_cooperative_groups,
                                    jitify=jitify)  # fmt: skip
        self._init(module, name, None, None)

    @classmethod
    def _from_module(cls, module: RawModule, name: str, params: tuple, function: Any) -> RawKernel:
        kernel = cls.__new__(cls)
        kernel._init(module, name, params, function)
        return kernel

    def _init(self, module: RawModule, name: str, params: Any, function: Any) -> None:
        self.module, self.name, self.__name__ = module, name, name
        self.code, self.options = module.code, module.options
        self._params, self._function = params, function
        self.launches = 0
        self.captured = 0
        stand_in = module._stand_in
        self._streams: StreamState | None = stand_in.streams if stand_in is not None else None
        if stand_in is not None:
            stand_in.raw_kernels.append(self)

    @property
    def params(self) -> tuple[KernelParam, ...]:
        if self._params is None:
            resolved = self.module.get_function(self.name)
            self._params, self._function = resolved._params, resolved._function
        return self._params

    def __call__(self, grid: Any, block: Any, args: Any, *, shared_mem: int = 0,
                 stream: Any = None) -> None:  # fmt: skip
        params = self.params
        dims = _dims(grid, "grid", GRID_LIMITS) + _dims(block, "block", BLOCK_LIMITS)
        if dims[3] * dims[4] * dims[5] > MAX_THREADS:
            raise LaunchError(
                f"CUDA_ERROR_INVALID_VALUE: {self.name}: block {dims[3:]} has more than "
                f"{MAX_THREADS} threads"
            )
        if int(shared_mem) < 0:
            raise OverflowError("can't convert negative value to size_t")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"args must be a tuple, not {type(args).__name__}")
        if len(args) != len(params):
            raise LaunchError(
                f"{self.name} takes {len(params)} arguments ({', '.join(p.text for p in params)}), "
                f"got {len(args)}: on a GPU the kernel would read garbage"
            )
        values, pointers = [], []
        for position, (param, value) in enumerate(zip(params, args, strict=True)):
            converted, pointer = self._argument(position, param, value)
            values.append(converted)
            if pointer is not None:
                pointers.append((pointer, param, position))
        self._check_pointers(pointers)
        function, name = self._function, self.name

        def run() -> None:
            self._check_pointers(pointers)
            function(*dims, *values)
            self.launches += 1

        streams = self._streams
        if streams is None:
            run()
            return
        if streams.submit(Operation(name, run), stream):
            self.captured += 1

    def _argument(self, position: int, param: KernelParam, value: Any) -> tuple[Any, int | None]:
        """``value`` packed as CuPy packs it, checked against ``param``: (ctypes value, pointer)."""
        where = f"{self.name} argument {position} ({param.text})"
        data = getattr(value, "data", None)
        if hasattr(value, "_array") and hasattr(data, "ptr"):  # a device array
            if not param.pointer:
                raise LaunchError(f"{where}: got a device array for a non-pointer parameter")
            return ctypes.c_void_p(data.ptr), data.ptr
        if value is None:
            raise LaunchError(f"{where}: None is a null pointer; the stand-in refuses it")
        if type(value) not in _PACKABLE:
            if isinstance(value, int):
                value = np.int64(value)
            elif isinstance(value, float):
                value = np.float64(value)
            else:
                raise TypeError(f"Unsupported type {type(value)}")
        kind = {"f": "f", "c": "c"}.get(value.dtype.kind, "i")
        size = value.dtype.itemsize
        expected_kind = "i" if param.pointer else _SCALARS[param.scalar][2]
        if size != param.size or kind != expected_kind:
            raise LaunchError(
                f"{where}: the kernel reads {param.size} bytes of "
                f"{'a pointer' if param.pointer else param.scalar}, got {value.dtype} "
                f"({size} bytes): on a GPU it would read the wrong bits"
            )
        if param.pointer:
            address = int(value.view(np.uint64)) if size == 8 else int(value)
            return ctypes.c_void_p(address), address
        if kind == "f":
            return param.ctype(float(value)), None
        # the same bytes at the parameter's signedness, as the driver copies them
        return param.ctype(value.view(np.dtype(f"u{size}")).item()), None

    def _check_pointers(self, pointers: list) -> None:
        for address, param, position in pointers:
            where = f"{self.name} argument {position} ({param.text})"
            ALLOCATIONS.check(address, 1, where, param.align, param.element)


def _dims(value: Any, what: str, limits: tuple[int, int, int]) -> tuple[int, int, int]:
    """CuPy's ``(value + (1, 1))[:3]``, each at least 1, within CUDA's limits."""
    if not isinstance(value, tuple):
        raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got "
                        f"{type(value).__name__})")  # fmt: skip
    padded = tuple(max(1, int(v)) for v in (*value, 1, 1)[:3])
    for size, limit, axis in zip(padded, limits, "xyz", strict=True):
        if size > limit:
            raise LaunchError(
                f"CUDA_ERROR_INVALID_VALUE: {what} {axis} dimension {size} exceeds {limit}"
            )
    return padded  # type: ignore[return-value]


RawModule._kernel_class = RawKernel


def make_raw(stand_in: Any) -> tuple[type[RawModule], type[RawKernel]]:
    """``RawModule`` and ``RawKernel`` classes bound to one stand-in (see :class:`RawModule`)."""
    module_class = type("RawModule", (RawModule,), {"_stand_in": stand_in, "__module__": "cupy"})
    kernel_class = type("RawKernel", (RawKernel,), {"_module_class": module_class,
                                                    "__module__": "cupy"})  # fmt: skip
    module_class._kernel_class = kernel_class
    return module_class, kernel_class
