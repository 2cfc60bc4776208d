"""A stand-in for the ``cupy`` module that runs on the host.

:func:`fake_cupy` builds a module whose arrays are :class:`~kernel_harness.device_array.
DeviceArray` (``cupy.ndarray`` is that class, so ``xplstm.backend`` recognises them exactly as it
recognises CuPy's), whose functions are NumPy's applied to device arrays, and whose
``ElementwiseKernel`` renders the kernel verbatim to host C++ and runs it
(:class:`~kernel_harness.host.HostKernel`). The ``cuda`` names xplstm and
``benchmarks/gpu_report.py`` use answer as ``device_count`` devices would.

The raw calls of the planned loops have their real semantics: ``a.data.ptr`` device pointers
mapped back onto live allocations (:mod:`.memory`), ``cupy.cuda.cublas.sgemm``/``dgemm`` in
column-major order with leading dimensions and transpose flags (:mod:`.cublas`),
``cupy.RawModule``/``RawKernel`` compiled for the host and run for exactly the launched grid
(:mod:`.raw`), streams, capture and graphs (:mod:`.streams`).
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from .cublas import make_cublas
from .device_array import Device, DeviceArray, DeviceState, device_call, is_scalar
from .host import CompileError, HostKernel, LaunchError
from .memory import MemoryPointer
from .raw import make_raw
from .streams import Graph, Stream

__all__ = ["CUDARuntimeError", "fake_cupy", "install_stand_in"]


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``."""


class _DeviceUfunc:
    """A NumPy ufunc applied to device arrays, with its methods (``reduce``, ``outer``, ...)."""

    def __init__(self, ufunc: np.ufunc, module: ModuleType) -> None:
        self._ufunc, self._module = ufunc, module
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return device_call(self._ufunc, args, kwargs, self._module.cuda.Device())

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._ufunc, name)
        if not callable(attribute):
            return attribute
        return lambda *a, **k: device_call(attribute, a, k, self._module.cuda.Device())

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"


def _namespace_attribute(source: ModuleType, name: str, module: ModuleType) -> Any:
    """NumPy's ``name`` as the stand-in offers it: functions take and return device arrays."""
    attribute = getattr(source, name)
    if isinstance(attribute, np.ufunc):
        return _DeviceUfunc(attribute, module)
    if isinstance(attribute, ModuleType):
        namespace = ModuleType(f"{module.__name__}.{name}")
        namespace.__getattr__ = lambda inner: _namespace_attribute(attribute, inner, module)
        return namespace
    if isinstance(attribute, type) or not callable(attribute):
        return attribute

    def call(*args: Any, **kwargs: Any) -> Any:
        return device_call(attribute, args, kwargs, module.cuda.Device())

    call.__name__ = name
    return call


def _contains_device_array(value: Any) -> bool:
    if isinstance(value, DeviceArray):
        return True
    return isinstance(value, (list, tuple)) and any(_contains_device_array(v) for v in value)


def fake_cupy(device: int = 0, device_count: int = 1) -> ModuleType:
    """A new stand-in ``cupy`` module; device ``device`` of ``device_count`` is current.

    Beyond CuPy's names it has ``kernels``: every ``ElementwiseKernel`` built from it, each
    with a ``launches`` count; ``raw_kernels``: every ``RawKernel`` (``launches``, ``captured``);
    and ``cuda.cublas.calls``/``captured``: the GEMMs run and recorded, by function name.
    """
    module = ModuleType("cupy")
    state = DeviceState(device, device_count, CUDARuntimeError)
    streams = state.streams
    device_class = type("Device", (Device,), {"_state": state, "__module__": "cupy.cuda"})
    stream_class = type("Stream", (Stream,), {"_state": streams, "__module__": "cupy.cuda"})
    stream_class.null = streams.null = stream_class(null=True)
    cublas = make_cublas(streams, lambda: state.current)
    raw_module, raw_kernel = make_raw(SimpleNamespace(streams=streams, raw_kernels=[]))

    def current() -> Device:
        return device_class()

    def to_device(value: Any, dtype: Any = None, order: Any = None, copy: bool = True) -> Any:
        if _contains_device_array(value) and not isinstance(value, DeviceArray):
            return device_call(np.array, (value,), {"dtype": dtype}, current())
        if isinstance(value, DeviceArray):
            same = dtype is None or np.dtype(dtype) == value.dtype
            if (
                not copy
                and same
                and (order in (None, "K", "A") or value.flags[f"{order}_CONTIGUOUS"])
            ):
                return value
            return DeviceArray._wrap(
                np.array(value._array, dtype=dtype, order=order or "K"), current()
            )
        streams.refuse_unrecorded("a host-to-device copy")
        host = np.array(value, dtype=dtype, order=order or "K", copy=True, subok=False)
        return DeviceArray._wrap(host, current())

    def asarray(a: Any, dtype: Any = None, order: Any = None) -> Any:
        """``cupy.asarray``: host data is copied to the device; device arrays are kept."""
        return to_device(a, dtype, order, copy=False)

    def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0):
        """``cupy.array``: a new device array (unless ``copy=False`` and nothing changes)."""
        result = to_device(obj, dtype, order, copy=copy)
        return result.reshape((1,) * (ndmin - result.ndim) + result.shape) if ndmin else result

    def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> np.ndarray:
        """``cupy.asnumpy``: device arrays are copied to the host, others converted."""
        if isinstance(a, DeviceArray):
            return a.get(order=order, out=out)
        result = np.asarray(a, order=order)
        if out is not None:
            out[...] = result
            return out
        return result

    def get_array_module(*args: Any) -> ModuleType:
        return module if any(isinstance(a, DeviceArray) for a in args) else np

    class ElementwiseKernel:
        """``cupy.ElementwiseKernel`` on the host: the rendered source runs on device arrays."""

        def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel",
                     reduce_dims: bool = True, preamble: str = "", no_return: bool = False,
                     return_tuple: bool = False, *, loop_prep: str = "", after_loop: str = "",
                     options: tuple = ()) -> None:  # fmt: skip
            if loop_prep or after_loop:
                raise NotImplementedError("the stand-in renders no loop_prep/after_loop")
            self.host = HostKernel(in_params, out_params, operation, name, preamble)
            self.in_params, self.out_params = in_params, out_params
            self.operation, self.name, self.preamble = operation, name, preamble
            self.no_return, self.return_tuple = no_return, return_tuple
            self.launches = 0
            module.kernels.append(self)

        def __call__(self, *args: Any, size: int | None = None, block_size: int = 128,
                     stream: Any = None) -> Any:  # fmt: skip
            if block_size <= 0:
                raise ValueError("block_size must be greater than zero")
            for value in args:
                if not (isinstance(value, DeviceArray) or is_scalar(value)):
                    raise TypeError(f"Unsupported type {type(value)}")
            streams.refuse_unrecorded(f"ElementwiseKernel {self.name}")
            unwrapped = [a._array if isinstance(a, DeviceArray) else a for a in args]
            outputs = self.host(*unwrapped, size=None if size == -1 else size)
            self.launches += self.host.launched
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            given = args[len(self.host.in_params) :]
            results = tuple(given) or tuple(DeviceArray._wrap(o, current()) for o in outputs)
            if self.no_return:
                return None
            return results[0] if len(results) == 1 and not self.return_tuple else results

    runtime = SimpleNamespace(
        CUDARuntimeError=CUDARuntimeError,
        getDevice=lambda: state.current,
        setDevice=lambda index: device_class(index).use(),
        getDeviceCount=lambda: state.count,
        deviceSynchronize=streams.synchronize_device,
        getDeviceProperties=lambda index: {"name": b"host stand-in", "major": 0, "minor": 0},
        runtimeGetVersion=lambda: 0,
        driverGetVersion=lambda: 0,
    )
    module.__dict__.update(
        __version__="stand-in",
        ndarray=DeviceArray,
        asarray=asarray,
        asanyarray=asarray,
        array=array,
        asnumpy=asnumpy,
        get_array_module=get_array_module,
        ElementwiseKernel=ElementwiseKernel,
        RawModule=raw_module,
        RawKernel=raw_kernel,
        cuda=SimpleNamespace(
            runtime=runtime,
            Device=device_class,
            Stream=stream_class,
            get_current_stream=streams.current,
            stream=SimpleNamespace(Stream=stream_class, get_current_stream=streams.current),
            graph=SimpleNamespace(Graph=Graph),
            MemoryPointer=MemoryPointer,
            cublas=cublas,
            device=SimpleNamespace(
                Device=device_class,
                get_cublas_handle=cublas.get_cublas_handle,
                get_device_id=lambda: state.current,
            ),
            compiler=SimpleNamespace(CompileException=CompileError),
            driver=SimpleNamespace(CUDADriverError=LaunchError),
        ),
        kernels=[],
        raw_kernels=raw_module._stand_in.raw_kernels,
    )

    def module_getattr(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = _namespace_attribute(np, name, module)
        module.__dict__[name] = value  # look each name up once
        return value

    module.__getattr__ = module_getattr
    return module


def install_stand_in(monkeypatch: Any, **devices: int) -> ModuleType:
    """Make a new :func:`fake_cupy` (``devices`` are its arguments) ``cupy`` for one test, with
    the kernel memos of :mod:`xplstm.cuda.fused` and :mod:`xplstm.cuda.plan` emptied so they
    build their kernels there (a kernel launches on the streams of the module that built it)."""
    import sys

    from xplstm.cuda import fused, plan

    module = fake_cupy(**devices)
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setattr(fused, "_KERNELS", {})
    monkeypatch.setattr(plan, "_MODULES", {})
    return module
