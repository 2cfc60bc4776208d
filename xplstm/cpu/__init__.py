"""The pointwise steps compiled for the host CPU, and the switch that picks the CPU kernels.

``xplstm.cpu._kernels`` is a C++ extension that runs the element functions of
``kernels/lstm.cuh`` and ``kernels/rnn.cuh`` in vectorized loops on the calling thread
(``xplstm/cpu/_kernels.cpp``). It is optional: ``pip install`` builds it when a C++ compiler
and glibc's vector math library are found (``hatch_build_cpu.py``), and NumPy arrays run the
NumPy twin wherever it is missing.

``XPLSTM_CPU_KERNELS`` (or ``cpu_kernels=`` on :func:`cpu_kernels`) chooses: ``auto`` (the
default: the compiled kernels when built), ``compiled`` (an error when they are not) or
``numpy`` (always the twin).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from ..switches import env_choice

__all__ = ["COMPILED_KINDS", "CPU_KERNEL_CHOICES", "compiled_module", "cpu_kernels", "describe"]

CPU_KERNEL_CHOICES = ("auto", "compiled", "numpy")
COMPILED_KINDS = ("lstm", "rnn", "rnn_relu")
"""The cell kinds the factory gives the compiled steps; the others run the twin. The tanh RNN
joined once the header's double tanh became libmvec's vector ``expm1`` (before, its compiled
forward lost to NumPy's ``tanh``): the ``xplstm.RNN(128, 256)`` layer at T=100, m=64 now takes
15.5 against 16.2 ms forward and 36.3 against 39.2 ms forward+backward in float32, 32.7
against 32.0 and 83.3 against 85.6 ms in float64 (interleaved medians, Ice Lake, 2 threads)."""


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Any, str]:
    """The compiled module and ``""``, or ``None`` and why it is not usable."""
    from ..cuda.specs import kernel_source_dir
    from .sources import EXTENSION, header_digest

    try:
        module = importlib.import_module(EXTENSION)
    except ImportError as error:
        return None, f"not built ({error})"
    try:
        expected = header_digest(kernel_source_dir())
    except OSError as error:
        return None, f"cannot read the kernel headers to check the build ({error})"
    if module.HEADER_DIGEST != expected:
        return None, "built from other kernels/*.cuh than these (reinstall xplstm to rebuild)"
    return module, ""


def compiled_module() -> Any:
    """The loaded ``xplstm.cpu._kernels``, or ``None`` when it is not built or is stale."""
    return _load()[0]


def cpu_kernels(choice: str | None = None) -> str:
    """Which kernels NumPy arrays run: ``"compiled"`` or ``"numpy"``.

    Parameters
    ----------
    choice : {"auto", "compiled", "numpy"}, optional
        Wins over ``XPLSTM_CPU_KERNELS`` (unset: ``"auto"``).

    Raises
    ------
    RuntimeError
        ``"compiled"`` was chosen but the module is not built or was built from other headers.
    """
    chosen = env_choice("XPLSTM_CPU_KERNELS", CPU_KERNEL_CHOICES, "auto", choice)
    if chosen == "numpy":
        return "numpy"
    module, reason = _load()
    if module is not None:
        return "compiled"
    if chosen == "compiled":
        raise RuntimeError(f"XPLSTM_CPU_KERNELS=compiled, but xplstm.cpu._kernels is {reason}")
    return "numpy"


def describe() -> str:
    """One line for ``xplstm info``: which CPU kernels run, and why."""
    try:
        active = cpu_kernels()
    except (RuntimeError, ValueError) as error:
        return f"CPU kernels: {error}"
    module, reason = _load()
    if active == "compiled":
        return (
            "CPU kernels: compiled kernels/lstm.cuh and rnn.cuh (xplstm.cpu._kernels, SIMD on "
            f"the calling thread) for {', '.join(COMPILED_KINDS)}; the NumPy twin for the others"
        )
    why = "XPLSTM_CPU_KERNELS=numpy" if module is not None else f"xplstm.cpu._kernels is {reason}"
    return f"CPU kernels: the NumPy twin of kernels/*.cuh ({why})"
