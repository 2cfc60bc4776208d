"""Device memory of the stand-in: addresses, the live allocations behind them, safe host reads.

A :class:`~kernel_harness.device_array.DeviceArray` lives in host memory, so its "device pointer"
(``a.data.ptr``, a :class:`MemoryPointer` like CuPy's) is the host address of its first element.
Raw calls (cuBLAS, ``RawKernel`` launches) get bare integers; :data:`ALLOCATIONS` maps them back:

- an allocation is the NumPy buffer that owns a device array's memory (the root of its ``base``
  chain), registered the first time an address inside it is handed out (``.data``, or a device
  array passed to a raw call); it stays registered exactly as long as that buffer is alive (a
  weak reference), so a pointer kept past its array's life is refused, never followed;
- :meth:`Allocations.span` turns ``(address, nbytes)`` into a NumPy byte view of that memory,
  or raises :class:`IllegalAddress` when the span is not inside one live allocation, is
  misaligned for its element type, or is a null pointer; nothing reads or writes memory the
  stand-in has not checked;
- an allocation remembers its dtype, so a caller that reads it as another element type (an
  ``sgemm`` on float64 arrays, a ``float*`` kernel argument into int64 memory) gets
  :class:`PointerTypeMismatch` instead of reinterpreted bits;
- :func:`read_host` reads a *host* pointer (cuBLAS's alpha/beta in host pointer mode) through
  the kernel (``write`` to a pipe), so a bad address is an ``EFAULT`` error, not a segfault.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .host import LaunchError

__all__ = ["ALLOCATIONS", "Allocation", "Allocations", "IllegalAddress", "MemoryPointer",
           "PointerTypeMismatch", "read_host"]  # fmt: skip


class IllegalAddress(LaunchError):
    """A raw call names memory that is not (all) inside one live device allocation.

    On a GPU this is ``CUDA_ERROR_ILLEGAL_ADDRESS`` (or silent corruption); the stand-in raises
    before touching anything. It is a ``cupy.cuda.driver.CUDADriverError`` of the stand-in.
    """


class PointerTypeMismatch(LaunchError, TypeError):
    """A raw call reads an allocation as an element type other than the one it holds."""


@dataclass(eq=False)
class Allocation:
    """One live device allocation: ``ptr`` (base address), ``size`` (bytes), ``device`` (id),
    ``dtype`` (of the array that owns it)."""

    ptr: int
    size: int
    device: int
    dtype: np.dtype
    _root: Any = field(repr=False)  # weakref.ref to the owning NumPy array

    def alive(self) -> bool:
        return self._root() is not None

    def bytes(self) -> np.ndarray:
        """The whole allocation as a 1-D ``uint8`` view (keeps the memory alive while held)."""
        root = self._root()
        if root is None:
            raise IllegalAddress(f"CUDA_ERROR_ILLEGAL_ADDRESS: allocation {self.ptr:#x} was freed")
        flat = root.reshape(-1) if root.flags.c_contiguous else root.T.reshape(-1)
        return flat.view(np.uint8)


def _root(array: np.ndarray) -> np.ndarray:
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root


class Allocations:
    """The registry of live device allocations (one per process: addresses are global)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_base: dict[int, Allocation] = {}
        self._bases: list[int] = []
        self._dead: list[Allocation] = []  # appended by weakref callbacks, purged under the lock

    def register(self, array: np.ndarray, device: int = 0) -> Allocation | None:
        """The allocation holding ``array``'s memory (registered now if new); ``None`` if empty."""
        root = _root(array)
        if root.nbytes == 0:
            return None
        if not (root.flags.c_contiguous or root.flags.f_contiguous):
            raise IllegalAddress("the stand-in cannot map a non-contiguous owning buffer")
        base = root.ctypes.data
        with self._lock:
            self._purge()
            known = self._by_base.get(base)
            if known is not None and known._root() is root:
                return known
            allocation = Allocation(base, root.nbytes, device, root.dtype, None)
            allocation._root = weakref.ref(root, lambda _, a=allocation: self._dead.append(a))
            if known is None:
                bisect.insort(self._bases, base)
            self._by_base[base] = allocation
            return allocation

    def _purge(self) -> None:
        while self._dead:
            allocation = self._dead.pop()
            if self._by_base.get(allocation.ptr) is allocation:
                del self._by_base[allocation.ptr]
                self._bases.remove(allocation.ptr)

    def find(self, address: int, nbytes: int = 1) -> Allocation | None:
        """The live allocation holding ``[address, address + nbytes)``, else ``None``."""
        with self._lock:
            self._purge()
            index = bisect.bisect_right(self._bases, address) - 1
            if index < 0:
                return None
            allocation = self._by_base[self._bases[index]]
        inside = address + max(nbytes, 1) <= allocation.ptr + allocation.size
        return allocation if inside and allocation.alive() else None

    def live(self) -> list[Allocation]:
        """Every registered allocation that is still alive."""
        with self._lock:
            self._purge()
            return [a for a in self._by_base.values() if a.alive()]

    def check(self, address: int, nbytes: int, what: str, align: int = 1,
              element: tuple[str, int] | None = None) -> Allocation | None:  # fmt: skip
        """Raise :class:`IllegalAddress` unless ``nbytes`` at ``address`` are device memory.

        ``element`` (``("f", 4)`` for ``float``, ``("i", 8)`` for any 8-byte integer) is the
        element type the caller reads; an allocation of another kind or size raises
        :class:`PointerTypeMismatch`. ``nbytes == 0`` touches nothing and passes (``None``).
        """
        if nbytes == 0:
            return None
        if address == 0:
            raise IllegalAddress(f"CUDA_ERROR_ILLEGAL_ADDRESS: {what} is a null pointer")
        if address % align:
            raise IllegalAddress(
                f"CUDA_ERROR_MISALIGNED_ADDRESS: {what} = {address:#x} is not aligned to "
                f"{align} bytes"
            )
        allocation = self.find(address, nbytes)
        if allocation is None:
            near = self.find(address, 1)
            where = (
                f"it starts inside allocation {near.ptr:#x} of {near.size} bytes but runs "
                f"{address + nbytes - near.ptr - near.size} bytes past its end"
                if near is not None
                else "no live device allocation holds it (freed, host memory, or made up)"
            )
            raise IllegalAddress(
                f"CUDA_ERROR_ILLEGAL_ADDRESS: {what} spans {nbytes} bytes at {address:#x}: {where}"
            )
        if element is not None:
            kind = {"f": "f", "i": "i", "u": "i", "b": "i"}.get(allocation.dtype.kind, "?")
            if (kind, allocation.dtype.itemsize) != element:
                name = {("f", 4): "float32", ("f", 8): "float64"}.get(
                    element, f"{element[1]}-byte integer"
                )
                raise PointerTypeMismatch(
                    f"{what} reads {name} elements from an allocation of {allocation.dtype} "
                    f"(at {allocation.ptr:#x}): on a GPU it would reinterpret the bits"
                )
        return allocation

    def span(self, address: int, nbytes: int, what: str, align: int = 1,
             element: tuple[str, int] | None = None) -> np.ndarray:  # fmt: skip
        """``nbytes`` at ``address`` as a ``uint8`` view, after :meth:`check`."""
        allocation = self.check(address, nbytes, what, align, element)
        if allocation is None:
            return np.empty(0, np.uint8)
        offset = address - allocation.ptr
        return allocation.bytes()[offset : offset + nbytes]


ALLOCATIONS = Allocations()
"""The stand-in's device allocations (every stand-in module shares the process's memory)."""


class MemoryPointer:
    """``cupy.cuda.MemoryPointer``: ``ptr`` (int address), ``device_id``, ``mem`` (allocation).

    ``pointer + bytes`` offsets it, as in CuPy.
    """

    __slots__ = ("device_id", "mem", "ptr")

    def __init__(self, ptr: int, device_id: int, mem: Allocation | None) -> None:
        self.ptr, self.device_id, self.mem = int(ptr), device_id, mem

    def __int__(self) -> int:
        return self.ptr

    def __add__(self, offset: int) -> MemoryPointer:
        return MemoryPointer(self.ptr + int(offset), self.device_id, self.mem)

    def __sub__(self, offset: int) -> MemoryPointer:
        return MemoryPointer(self.ptr - int(offset), self.device_id, self.mem)

    def __repr__(self) -> str:
        return f"<MemoryPointer {self.ptr:#x} on device {self.device_id}>"


_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
_LIBC.write.restype = ctypes.c_ssize_t
_PIPE: dict[int, tuple[int, int]] = {}
_PIPE_LOCK = threading.Lock()


def read_host(address: int, nbytes: int, what: str) -> bytes:
    """``nbytes`` of host memory at ``address``, read so that a bad address raises.

    The bytes go through a pipe (``write(2)`` checks the address and fails with ``EFAULT``), so
    an invalid pointer never faults the process. A pointer into device memory is refused: a GPU
    program would dereference it on the host and crash.
    """
    if ALLOCATIONS.find(address, nbytes) is not None:
        raise IllegalAddress(
            f"CUDA_ERROR_ILLEGAL_ADDRESS: {what} = {address:#x} is device memory, but the "
            "handle's pointer mode is CUBLAS_POINTER_MODE_HOST"
        )
    with _PIPE_LOCK:
        pid = os.getpid()
        if pid not in _PIPE:
            _PIPE[pid] = os.pipe()
        read_end, write_end = _PIPE[pid]
        written = _LIBC.write(write_end, ctypes.c_void_p(address), nbytes)
        if written != nbytes:
            code = ctypes.get_errno() if written < 0 else errno.EFAULT
            if written > 0:
                os.read(read_end, written)  # a partial copy: leave the pipe empty
            reason = "EFAULT" if code == errno.EFAULT else os.strerror(code)
            raise IllegalAddress(
                f"CUDA_ERROR_ILLEGAL_ADDRESS: {what} = {address:#x} cannot be read on the host "
                f"({reason})"
            )
        return os.read(read_end, nbytes)
