"""Build ``kernels/lstm_pointwise.cuh`` for the host and call it through ctypes.

:func:`build_host_library` compiles ``host_harness.cpp`` (a plain C ABI over the header's
functions) with the host C++ compiler; :class:`HostKernels` calls it on NumPy arrays; and
:func:`fake_cupy` wraps it in a stand-in for the few CuPy names :mod:`xplstm.cuda_kernels` uses,
so the Python side of the fused kernels runs on machines without a GPU.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
HARNESS_SOURCE = HERE / "host_harness.cpp"
DEVICE_CHECK_SOURCE = HERE / "device_check.cu"
SUFFIXES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def host_compiler() -> str | None:
    """Path of a C++ compiler on PATH, or ``None``."""
    for name in ("c++", "g++", "clang++"):
        found = shutil.which(name)
        if found:
            return found
    return None


def build_host_library(compiler: str, kernel_dir: Path, output_dir: Path) -> Path:
    """Compile the harness into a shared library in ``output_dir``; raise with the log on error."""
    library = output_dir / "libxplstm_harness.so"
    command = [
        compiler, "-std=c++11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
        "-shared", "-fPIC", f"-I{kernel_dir}", str(HARNESS_SOURCE), "-o", str(library),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return library


class HostKernels:
    """The header's forward, backward and activations, compiled for the host."""

    def __init__(self, library: Path) -> None:
        self.library = ctypes.CDLL(str(library))
        size = ctypes.c_longlong
        for dtype, suffix in SUFFIXES.items():
            read = np.ctypeslib.ndpointer(dtype, flags="C_CONTIGUOUS")
            write = np.ctypeslib.ndpointer(dtype, flags=("C_CONTIGUOUS", "WRITEABLE"))
            signatures = {
                "forward": [write, read, read, write, write, size, size],
                "backward": [read, read, write, write, read, read, size, size],
                "activations": [read, write, write, size],
            }
            for name, argtypes in signatures.items():
                function = getattr(self.library, f"xplstm_{name}_{suffix}")
                function.argtypes = argtypes
                function.restype = None

    def _function(self, name: str, dtype: np.dtype):
        return getattr(self.library, f"xplstm_{name}_{SUFFIXES[np.dtype(dtype)]}")

    def forward(self, gates, recurrent, c_prev, c_next, h_next) -> None:
        """Same contract as ``LSTMPointwise.forward``; all arrays C-contiguous."""
        batch, hidden = c_next.shape
        self._function("forward", gates.dtype)(
            gates, recurrent, c_prev, c_next, h_next, batch, hidden
        )

    def backward(self, dy, dh, dc, gates, c_prev, c_next) -> None:
        """Same contract as ``LSTMPointwise.backward``; all arrays C-contiguous."""
        batch, hidden = dc.shape
        self._function("backward", gates.dtype)(dy, dh, dc, gates, c_prev, c_next, batch, hidden)

    def activations(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(sigmoid(x), tanh(x))`` through the header's functions."""
        x = np.ascontiguousarray(x)
        sigmoid, tanh = np.empty_like(x), np.empty_like(x)
        self._function("activations", x.dtype)(x, sigmoid, tanh, x.size)
        return sigmoid, tanh


class FakeElementwiseKernel:
    """Stands in for ``cupy.ElementwiseKernel``: runs the host build of the header instead.

    It maps the call's arguments to the parameter names of the kernel definition, so a wrong
    argument order in :mod:`xplstm.cuda_kernels` shows up here. Like CuPy, it accepts strided
    element-wise arguments and requires nothing of them; ``raw`` ones must be C-contiguous
    because the kernels index them by position.
    """

    def __init__(self, host: HostKernels, in_params, out_params, operation, name, preamble=""):
        params = [param.split() for param in f"{in_params}, {out_params}".split(",")]
        self.names = [param[-1] for param in params]
        self.raw = {param[-1] for param in params if param[0] == "raw"}
        self.host, self.name, self.preamble = host, name, preamble
        self.launches = 0

    def __call__(self, *args):
        values = dict(zip(self.names, args, strict=True))
        for name in self.raw:
            assert values[name].flags.c_contiguous, f"raw argument {name} is not C-contiguous"
        hidden = values["hidden"]
        assert isinstance(hidden, int) and hidden == values["gates"].shape[1] // 4, hidden
        self.launches += 1
        arrays = {k: v for k, v in values.items() if k not in self.raw and k != "hidden"}
        packed = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        if "forward" in self.name:
            outputs = ("c_next", "h_next")
            self.host.forward(
                values["gates"], values["recurrent"], packed["c_prev"], packed["c_next"],
                packed["h_next"],
            )  # fmt: skip
        else:
            outputs = ("dc",)
            self.host.backward(
                packed["dy"], packed["dh"], packed["dc"], values["gates"], packed["c_prev"],
                packed["c_next"],
            )  # fmt: skip
        for name in outputs:
            if packed[name] is not arrays[name]:
                arrays[name][...] = packed[name]


class DeviceArray(np.ndarray):
    """A NumPy array playing a CuPy array: a type of its own, and ``get()`` copies to the host."""

    def get(self) -> np.ndarray:
        return np.array(self)

    @property
    def device(self) -> _FakeDevice:  # type: ignore[override]
        """The stand-in's only device (NumPy's own ``device`` attribute says ``"cpu"``)."""
        return _FakeDevice(0)


def _on_device(value):
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
        return value.view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_on_device(item) for item in value)
    return value


def _device_attribute(name: str):
    """NumPy's ``name``; functions among them hand back :class:`DeviceArray` results."""
    attribute = getattr(np, name)
    if isinstance(attribute, type) or not callable(attribute):
        return attribute

    def call(*args, **kwargs):
        return _on_device(attribute(*args, **kwargs))

    return call


def _asarray(value, dtype=None):
    """Like ``cupy.asarray``: host arrays are copied to the "device", device arrays are kept."""
    if isinstance(value, DeviceArray) and (dtype is None or value.dtype == dtype):
        return value
    return np.array(value, dtype=dtype).view(DeviceArray)


class _FakeDevice:
    """``cupy.cuda.Device``: an id, and a context manager that selects nothing."""

    compute_capability = "stand-in"

    def __init__(self, index: int) -> None:
        self.id = index

    def __enter__(self) -> _FakeDevice:
        return self

    def __exit__(self, *exception: object) -> None:
        return None

    def synchronize(self) -> None:
        return None


def fake_cupy(host: HostKernels, device: int = 0, device_count: int = 1) -> ModuleType:
    """A stand-in for the ``cupy`` module on the host.

    Its arrays are :class:`DeviceArray` (NumPy underneath), so the backend dispatch tells them
    from NumPy's; every NumPy function is available under the same name. ``ElementwiseKernel``
    runs the host build of the header, and the ``cuda`` names that :mod:`xplstm.cuda_kernels` and
    ``benchmarks/gpu_report.py`` use answer as ``device_count`` devices would.
    """
    module = ModuleType("cupy")

    def elementwise_kernel(*args, **kwargs):
        kernel = FakeElementwiseKernel(host, *args, **kwargs)
        module.kernels.append(kernel)
        return kernel

    runtime = SimpleNamespace(
        getDevice=lambda: device,
        getDeviceCount=lambda: device_count,
        deviceSynchronize=lambda: None,
        getDeviceProperties=lambda index: {"name": b"host stand-in"},
        runtimeGetVersion=lambda: 0,
        driverGetVersion=lambda: 0,
    )
    module.__dict__.update(
        __version__="stand-in",
        __getattr__=_device_attribute,
        ndarray=DeviceArray,
        asarray=_asarray,
        ElementwiseKernel=elementwise_kernel,
        cuda=SimpleNamespace(
            runtime=runtime,
            Device=lambda index=None: _FakeDevice(device if index is None else index),
        ),
        kernels=[],
    )
    return module
