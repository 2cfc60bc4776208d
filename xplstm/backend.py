"""Backend dispatch: pick NumPy or CuPy from the arrays a caller passes.

CuPy is never imported here unless the caller has already imported it (it is then in
``sys.modules``), so xplstm installs and runs without CuPy.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from .devices import require_cupy  # re-exported: GPU probing lives in xplstm.devices

__all__ = ["asnumpy", "device_name", "get_array_module", "is_cupy_array", "require_cupy"]


def is_cupy_array(obj: Any) -> bool:
    """True if ``obj`` is a ``cupy.ndarray`` (without importing CuPy)."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(obj, cupy.ndarray)


def device_name(obj: Any) -> str:
    """A short description of where an array lives, for error messages."""
    if is_cupy_array(obj):
        return f"GPU (cupy, device {obj.device.id})"
    if isinstance(obj, np.ndarray):
        return "CPU (numpy)"
    return f"not an array ({type(obj).__name__})"


def get_array_module(*arrays: Any, names: tuple[str, ...] | None = None) -> ModuleType:
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    ``None`` arguments are ignored. Mixing NumPy and CuPy arrays is a ``TypeError`` that says
    which argument lives where; ``names`` (one per array) makes that message precise.

    Parameters
    ----------
    *arrays : array_like or None
    names : tuple of str, optional
        Argument names used in error messages.

    Returns
    -------
    module
        ``numpy`` or ``cupy``.
    """
    if names is None:
        names = tuple(f"argument {position}" for position in range(len(arrays)))
    on_gpu = [
        (n, a) for n, a in zip(names, arrays, strict=True) if a is not None and is_cupy_array(a)
    ]
    if not on_gpu:
        return np
    on_cpu = [(n, a) for n, a in zip(names, arrays, strict=True) if isinstance(a, np.ndarray)]
    if on_cpu:
        gpu_name, gpu_array = on_gpu[0]
        cpu_name, _ = on_cpu[0]
        raise TypeError(
            f"cannot mix devices: {gpu_name} is on the {device_name(gpu_array)} but "
            f"{cpu_name} is on the CPU (numpy); move both to one backend "
            "(cupy.asarray or xplstm.asnumpy)"
        )
    return sys.modules["cupy"]


def asnumpy(array: Any) -> np.ndarray:
    """Return ``array`` as a NumPy array, copying from the GPU when it is a CuPy array."""
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)
