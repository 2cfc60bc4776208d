"""Named buffers that outlive one call, so repeated calls of one shape allocate nothing.

A fresh ``(T, m, 4H)`` array on every forward costs a page fault per 4 KiB on first touch (the
allocator hands large blocks back to the system when they are freed): at training sizes that is
a noticeable share of a step. The layer keeps one :class:`Workspace` per layer and direction and
passes it to the engine, which takes its large buffers from it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Workspace", "allocate"]


class Workspace:
    """Buffers by name, reallocated only when the shape, dtype or backend changes."""

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype: Any, xp: Any) -> Any:
        """An uninitialised ``shape`` array named ``name``: the one from last time if it fits."""
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.shape != tuple(shape)
            or buffer.dtype != dtype
            or not isinstance(buffer, xp.ndarray)
        ):
            buffer = self._buffers[name] = xp.empty(shape, dtype=dtype)
        return buffer


def allocate(
    workspace: Workspace | None, name: str, shape: tuple[int, ...], dtype: Any, xp: Any
) -> Any:
    """``workspace.empty(...)``, or a new array when there is no workspace."""
    if workspace is None:
        return xp.empty(shape, dtype=dtype)
    return workspace.empty(name, shape, dtype, xp)
