"""Build-once caches for compiled kernels, safe when threads ask at the same time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["build_once"]

_LOCK = threading.Lock()


def build_once(cache: dict, key: Any, build: Callable[[], Any]) -> Any:
    """``cache[key]``, calling ``build()`` under a lock the first time (one build per key)."""
    value = cache.get(key)
    if value is None:
        with _LOCK:
            value = cache.get(key)
            if value is None:
                value = cache[key] = build()
    return value
