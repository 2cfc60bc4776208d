"""A host-memory array that behaves like ``cupy.ndarray`` where xplstm and its tests can tell.

:class:`DeviceArray` holds a NumPy array but is not one (``isinstance(a, np.ndarray)`` is
false), so code that dispatches on ``cupy.ndarray`` treats it as a GPU array and code that
expects NumPy cannot take it by accident. Like CuPy:

- ``get()`` copies to a NumPy array; implicit conversion (``np.asarray``, ``__array__``) raises
  ``TypeError``;
- operators, in-place operators, methods and every NumPy function (through ``__array_ufunc__``
  and ``__array_function__``) return device arrays; reductions and scalar indexing return 0-d
  device arrays; indexing, ``reshape``, ``.T`` and the like return views sharing memory;
  ``out=`` writes into the given array and returns that same object;
- a NumPy array (any subclass, ``np.memmap`` included, any shape) mixed into an operator or a
  function call is a ``TypeError``; assigning one into a slice is a ``ValueError``;
- ``a.data`` is a :class:`~kernel_harness.memory.MemoryPointer` whose ``ptr`` is the address of
  the first element (0 for an empty allocation), for raw cuBLAS calls and ``RawKernel``
  launches; taking it registers the allocation (:data:`kernel_harness.memory.ALLOCATIONS`);
- work the stand-in runs at once (every operation, ``get``/``set``, element assignment,
  conversions to Python scalars) raises while the current stream captures a graph
  (:mod:`kernel_harness.streams`), as CUDA refuses it.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .memory import ALLOCATIONS, MemoryPointer
from .streams import StreamState

__all__ = ["Device", "DeviceArray", "DeviceState", "device_call", "is_scalar"]

IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


class DeviceState:
    """The devices of one stand-in: how many there are, and which one is current."""

    def __init__(self, current: int = 0, count: int = 1, error: type = RuntimeError) -> None:
        self.default, self.count, self.error = current, count, error
        self.stack: list[int] = []
        self.streams = StreamState(error)

    @property
    def current(self) -> int:
        return self.stack[-1] if self.stack else self.default


class Device:
    """``cupy.cuda.Device``: an id; as a context manager it makes that device current.

    Each stand-in module subclasses it with its own ``_state``.
    """

    _state = DeviceState()
    compute_capability = "stand-in"

    def __init__(self, device: int | None = None) -> None:
        self.id = self._state.current if device is None else int(device)

    def _check(self) -> None:
        if not 0 <= self.id < self._state.count:
            raise self._state.error("cudaErrorInvalidDevice: invalid device ordinal")

    def use(self) -> None:
        self._check()
        self._state.default = self.id

    def __enter__(self) -> Device:
        self._check()
        self._state.stack.append(self.id)
        return self

    def __exit__(self, *exception: object) -> None:
        self._state.stack.pop()

    def synchronize(self) -> None:
        self._state.streams.synchronize_device()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


def is_scalar(value: Any) -> bool:
    """What CuPy passes to a kernel as a scalar: Python numbers and NumPy scalars."""
    return isinstance(value, (bool, int, float, complex, np.generic))


def _unwrap(value: Any, originals: dict[int, DeviceArray]) -> Any:
    """Device arrays to their NumPy arrays (recorded in ``originals``); NumPy arrays refused."""
    if isinstance(value, DeviceArray):
        originals[id(value._array)] = value
        return value._array
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item, originals) for item in value)
    return value


def _wrap(value: Any, device: Device, originals: dict[int, DeviceArray]) -> Any:
    """NumPy results to device arrays; an array that came in (``out=``) to its own wrapper."""
    if isinstance(value, np.ndarray):
        original = originals.get(id(value))
        return original if original is not None else DeviceArray._wrap(value, device)
    if isinstance(value, np.generic):
        return DeviceArray._wrap(np.asarray(value), device)
    if isinstance(value, tuple):
        return tuple(_wrap(item, device, originals) for item in value)
    if isinstance(value, list) and any(isinstance(item, np.ndarray) for item in value):
        return [_wrap(item, device, originals) for item in value]
    return value


def device_call(function: Any, args: tuple, kwargs: dict, device: Device) -> Any:
    """``function`` (a NumPy callable) on device arguments, with device results."""
    device._state.streams.refuse_unrecorded(getattr(function, "__name__", "device work"))
    originals: dict[int, DeviceArray] = {}
    args = _unwrap(args, originals)
    kwargs = {key: _unwrap(value, originals) for key, value in kwargs.items()}
    return _wrap(function(*args, **kwargs), device, originals)


class DeviceArray:
    """Stands in for ``cupy.ndarray``: a NumPy array in "device memory" (see the module doc).

    ``DeviceArray(shape, dtype=float, order="C")`` allocates an uninitialised array, as
    ``cupy.ndarray(shape, dtype)`` does.
    """

    __slots__ = ("_array", "_device")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C") -> None:  # fmt: skip
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in allocates its own memory (no memptr/strides)")
        self._array = np.empty(shape, dtype=dtype, order=order)
        self._device = Device()

    @classmethod
    def _wrap(cls, array: np.ndarray, device: Device) -> DeviceArray:
        wrapped = cls.__new__(cls)
        wrapped._array = array.view(np.ndarray) if type(array) is not np.ndarray else array
        wrapped._device = device
        return wrapped

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return device_call(function, args, kwargs, self._device)

    def _sync(self, what: str) -> None:
        """Refuse ``what`` (immediate work on the current stream) while it captures."""
        self._device._state.streams.refuse_unrecorded(what)

    @property
    def data(self) -> MemoryPointer:
        """``cupy.ndarray.data``: the device pointer of the first element (see the module doc)."""
        allocation = ALLOCATIONS.register(self._array, self._device.id)
        address = 0 if allocation is None else self._array.ctypes.data
        return MemoryPointer(address, self._device.id, allocation)

    # -- host transfers, and refusing implicit ones
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True):
        """Copy to a new NumPy array (or into ``out``, a NumPy array of the same shape)."""
        self._sync("a device-to-host copy (get)")
        if out is None:
            return np.array(self._array, order=order, copy=True)
        if not isinstance(out, np.ndarray) or out.shape != self.shape:
            raise ValueError("out must be a numpy.ndarray of the same shape")
        out[...] = self._array
        return out

    def set(self, array: np.ndarray, stream: Any = None) -> None:
        """Copy a NumPy array of the same shape and dtype into this array."""
        self._sync("a host-to-device copy (set)")
        if not isinstance(array, np.ndarray) or array.shape != self.shape:
            raise ValueError("set needs a numpy.ndarray of the same shape")
        if array.dtype != self.dtype:
            raise TypeError(f"{array.dtype} array cannot be set to {self.dtype} array")
        self._array[...] = array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return self._call(getattr(ufunc, method), *inputs, **kwargs)

    def __array_function__(self, function: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        return self._call(function, *args, **kwargs)

    def __reduce__(self) -> tuple:
        return _restore, (self.get(),)

    # -- attributes
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    strides = property(lambda self: self._array.strides)
    flags = property(lambda self: self._array.flags)
    T = property(lambda self: DeviceArray._wrap(self._array.T, self._device))
    real = property(lambda self: DeviceArray._wrap(self._array.real, self._device))
    imag = property(lambda self: DeviceArray._wrap(self._array.imag, self._device))

    @property
    def device(self) -> Device:
        return self._device

    # -- indexing: views share memory; a full integer index gives a 0-d view
    def __getitem__(self, key: Any) -> DeviceArray:
        key = _index(key)
        if not any(part is Ellipsis for part in key):
            key = (*key, Ellipsis)
        return DeviceArray._wrap(self._array[key], self._device)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._sync("an element assignment")
        if isinstance(value, DeviceArray):
            value = value._array
        elif isinstance(value, np.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        elif not is_scalar(value):
            raise TypeError(f"Unsupported type {type(value)}")
        self._array[_index(key)] = value

    def __len__(self) -> int:
        return len(self._array)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[index] for index in range(len(self)))

    # -- conversions CuPy allows (each one a device-to-host copy there)
    def __bool__(self) -> bool:
        self._sync("a conversion to a Python scalar")
        return bool(self._array)

    def __int__(self) -> int:
        self._sync("a conversion to a Python scalar")
        return int(self._array)

    def __float__(self) -> float:
        self._sync("a conversion to a Python scalar")
        return float(self._array)

    def __complex__(self) -> complex:
        self._sync("a conversion to a Python scalar")
        return complex(self._array)

    def __index__(self) -> int:
        self._sync("a conversion to a Python scalar")
        return operator.index(self._array)

    def __format__(self, spec: str) -> str:
        return format(self._array, spec)

    def __repr__(self) -> str:
        return repr(self._array)

    def __str__(self) -> str:
        return str(self._array)

    def item(self, *args: Any) -> Any:
        self._sync("item()")
        return self._array.item(*args)

    def tolist(self) -> Any:
        self._sync("tolist()")
        return self._array.tolist()

    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None,
               copy: bool = True) -> DeviceArray:  # fmt: skip
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        kwargs = {} if casting is None else {"casting": casting}
        return self._call(self._array.astype, dtype, order=order, copy=True, **kwargs)

    def __copy__(self) -> DeviceArray:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> DeviceArray:
        return self.copy()


def _restore(array: np.ndarray) -> DeviceArray:
    return DeviceArray._wrap(array, Device())


def _index(key: Any) -> tuple:
    """An index as a tuple, device arrays in it replaced by their NumPy arrays (CuPy takes
    NumPy arrays and lists as indices too)."""
    parts = key if isinstance(key, tuple) else (key,)
    return tuple(part._array if isinstance(part, DeviceArray) else part for part in parts)


def _method(name: str):
    def method(self: DeviceArray, *args: Any, **kwargs: Any) -> Any:
        return self._call(getattr(self._array, name), *args, **kwargs)

    method.__name__ = name
    return method


_METHODS = (
    "all any argmax argmin argsort clip conj conjugate copy cumprod cumsum diagonal dot fill "
    "flatten max mean min nonzero prod ravel repeat reshape round sort squeeze std sum swapaxes "
    "take trace transpose var view"
)
for _name in _METHODS.split():
    setattr(DeviceArray, _name, _method(_name))


def _operator(function: Any, reflected: bool = False, in_place: bool = False):
    def apply(self: DeviceArray, other: Any) -> Any:
        if not (isinstance(other, DeviceArray) or is_scalar(other)):
            if isinstance(other, np.ndarray):
                raise TypeError(f"Unsupported type {type(other)}")
            return NotImplemented
        if in_place:
            self._call(function, self, other, out=self)
            return self
        return self._call(function, other, self) if reflected else self._call(function, self, other)

    return apply


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
    "lshift": np.left_shift, "rshift": np.right_shift,
}  # fmt: skip
for _name, _function in _BINARY.items():
    setattr(DeviceArray, f"__{_name}__", _operator(_function))
    setattr(DeviceArray, f"__r{_name}__", _operator(_function, reflected=True))
    if _name != "matmul":
        setattr(DeviceArray, f"__i{_name}__", _operator(_function, in_place=True))
_COMPARISONS = {
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal,
}  # fmt: skip
for _name, _function in _COMPARISONS.items():
    setattr(DeviceArray, f"__{_name}__", _operator(_function))
for _name, _function in {
    "neg": np.negative,
    "pos": np.positive,
    "abs": np.absolute,
    "invert": np.invert,
}.items():
    setattr(DeviceArray, f"__{_name}__", lambda self, f=_function: self._call(f, self))
