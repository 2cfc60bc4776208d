"""pytest plugin: swap two arguments in one kernel operation, to show the ``gpu`` tests notice.

``XPLSTM_CORRUPT_OPERATION="CELL STEP FIRST SECOND"`` (default ``lstm backward c_prev c_next``)
makes :func:`xplstm.cuda.specs.kernel_specs`, as :mod:`xplstm.cuda.fused` sees it, return the
``STEP`` kernel of ``CELL`` with ``&FIRST[0]`` and ``&SECOND[0]`` swapped in its operation string;
nothing else changes. Used with :mod:`kernel_harness.stand_in_gpu` by ``tests/test_stand_in.py``.
"""

from __future__ import annotations

import dataclasses
import os

DEFAULT = "lstm backward c_prev c_next"


def swapped(operation: str, first: str, second: str) -> str:
    """``operation`` with the arguments ``&first[0]`` and ``&second[0]`` exchanged."""
    a, b = f"&{first}[0]", f"&{second}[0]"
    if a not in operation or b not in operation:
        raise ValueError(f"{operation!r} does not pass both {a} and {b}")
    return operation.replace(a, "\0").replace(b, a).replace("\0", b)


def pytest_configure(config) -> None:
    from xplstm.cuda import fused, specs

    cell, step, first, second = os.environ.get("XPLSTM_CORRUPT_OPERATION", DEFAULT).split()
    original = specs.kernel_specs

    def corrupted(kind, dtype):
        result = original(kind, dtype)
        if kind == cell:
            spec = result[step]
            result[step] = dataclasses.replace(
                spec, operation=swapped(spec.operation, first, second)
            )
        return result

    specs.kernel_specs = fused.kernel_specs = corrupted
    fused._KERNELS.clear()
