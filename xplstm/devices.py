"""Device strings and GPU probing: the one place that asks whether a GPU is usable.

:func:`parse_device` reads ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` without touching CuPy;
:func:`gpu_unavailable_reason` says in one sentence why no GPU is usable (or ``None``);
:func:`require_cupy` returns CuPy or raises that sentence; :func:`select_device` turns a device
string into the canonical name, CUDA index and array module a layer keeps. CuPy is imported only
inside these functions, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "ParsedDevice",
    "SelectedDevice",
    "device_scope",
    "gpu_unavailable_reason",
    "parse_device",
    "require_cupy",
    "select_device",
]

_CUDA_DEVICE = re.compile(r"cuda(?::(\d+))?")


@dataclass(frozen=True)
class ParsedDevice:
    """A device string taken apart.

    Attributes
    ----------
    kind : str
        ``"cpu"`` or ``"cuda"``.
    index : int or None
        The CUDA device number the string names; ``None`` for ``"cpu"`` and plain ``"cuda"``.
    """

    kind: str
    index: int | None


@dataclass(frozen=True)
class SelectedDevice:
    """A usable device, as a layer keeps it.

    Attributes
    ----------
    name : str
        Canonical: ``"cpu"`` or ``"cuda:N"``.
    index : int or None
        The CUDA device number; ``None`` on the CPU.
    xp : module
        ``numpy`` or ``cupy``.
    """

    name: str
    index: int | None
    xp: ModuleType


def parse_device(device: Any) -> ParsedDevice:
    """Read a device string; CuPy is not imported.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` (the current CUDA device) or ``"cuda:N"``.

    Returns
    -------
    ParsedDevice
        E.g. ``ParsedDevice(kind="cuda", index=1)`` for ``"cuda:1"``.

    Raises
    ------
    TypeError
        If ``device`` is not a string.
    ValueError
        If it is a string of another form.
    """
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a string such as 'cpu', 'cuda' or 'cuda:0', "
            f"got {type(device).__name__} {device!r}"
        )
    if device == "cpu":
        return ParsedDevice("cpu", None)
    match = _CUDA_DEVICE.fullmatch(device)
    if match is None:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return ParsedDevice("cuda", None if match.group(1) is None else int(match.group(1)))


def _probe() -> tuple[ModuleType | None, str | None, BaseException | None]:
    """``(cupy, None, None)`` when a CUDA device is usable, else ``(None, reason, cause)``."""
    try:
        import cupy
    except ImportError as error:
        reason = "CuPy is not installed: install xplstm[cuda12] or xplstm[cuda13] to use a GPU"
        return None, reason, error
    except Exception as error:  # a broken CUDA installation can fail at import
        return None, f"CuPy is installed but fails to import: {error}", error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA driver or runtime missing
        return None, f"CuPy is installed but CUDA is not usable: {error}", error
    if count == 0:
        return None, "CuPy is installed but no CUDA device was found", None
    return cupy, None, None


def gpu_unavailable_reason() -> str | None:
    """Why no GPU is usable here, in one sentence; ``None`` when CuPy sees a CUDA device.

    Never raises: a missing CuPy, a CuPy that fails to import, a missing driver and a machine
    without devices each give their own sentence.
    """
    return _probe()[1]


def require_cupy() -> ModuleType:
    """CuPy, once it imports and sees a CUDA device.

    Raises
    ------
    RuntimeError
        With the sentence of :func:`gpu_unavailable_reason`.
    """
    cupy, reason, cause = _probe()
    if cupy is None:
        raise RuntimeError(reason) from cause
    return cupy


def select_device(device: Any) -> SelectedDevice:
    """Parse ``device`` and, for CUDA, check that the GPU exists.

    Parameters
    ----------
    device : str
        As for :func:`parse_device`.

    Returns
    -------
    SelectedDevice
        ``name, index, xp`` = ``"cpu", None, numpy`` or ``"cuda:N", N, cupy``; plain ``"cuda"``
        is the current CUDA device.

    Raises
    ------
    TypeError, ValueError
        As :func:`parse_device`; also ``ValueError`` for a CUDA index CUDA does not report.
    RuntimeError
        For a CUDA device when no GPU is usable (:func:`require_cupy`).
    """
    parsed = parse_device(device)
    if parsed.kind == "cpu":
        return SelectedDevice("cpu", None, np)
    cupy = require_cupy()
    count = cupy.cuda.runtime.getDeviceCount()
    index = cupy.cuda.Device().id if parsed.index is None else parsed.index
    if index >= count:
        raise ValueError(f"device {device!r} does not exist: CUDA reports {count} device(s)")
    return SelectedDevice(f"cuda:{index}", index, cupy)


def device_scope(index: int | None, xp: ModuleType) -> Any:
    """A context that makes CUDA device ``index`` current; does nothing on the CPU (``None``)."""
    if index is None:
        return contextlib.nullcontext()
    return xp.cuda.Device(index)
