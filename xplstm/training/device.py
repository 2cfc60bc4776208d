"""Where training runs and what this machine offers.

:func:`resolve_device` picks the device (``auto`` takes the GPU when CuPy and a CUDA device are
usable); :func:`environment_report` describes versions, BLAS, CUDA and the kernel sources.
"""

from __future__ import annotations

import numpy as np

from ..devices import require_cupy

__all__ = ["DEVICE_CHOICES", "environment_report", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def _gpu_description(cupy) -> str:
    device = cupy.cuda.Device()
    try:
        name = cupy.cuda.runtime.getDeviceProperties(device.id)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # properties are informative only
        name = "CUDA device"
    return f"GPU {device.id}: {name} (CuPy {cupy.__version__})"


def resolve_device(requested: str) -> tuple[str, str]:
    """Resolve ``"auto"``, ``"cpu"`` or ``"cuda"`` to a device and a sentence saying which.

    Returns
    -------
    device : str
        ``"cpu"`` or ``"cuda"``.
    description : str
        E.g. ``"GPU 0: NVIDIA H200 (CuPy 13.3.0)"`` or ``"CPU (NumPy 2.1.0): CuPy is not
        installed ..."``.

    Raises
    ------
    RuntimeError
        ``"cuda"`` was requested but CuPy or a device is not usable.
    """
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {requested!r}")
    cpu = f"CPU (NumPy {np.__version__})"
    if requested == "cpu":
        return "cpu", cpu
    try:
        cupy = require_cupy()
    except RuntimeError as error:
        if requested == "cuda":
            raise
        return "cpu", f"{cpu}; no GPU: {error}"
    return "cuda", _gpu_description(cupy)


def _blas_lines() -> list[str]:
    """The BLAS libraries NumPy uses: from threadpoolctl when installed, else NumPy's config."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        libraries = [info for info in threadpool_info() if info.get("user_api") == "blas"]
        return [
            f"BLAS: {info.get('internal_api')} {info.get('version')}, "
            f"{info.get('num_threads')} threads ({info.get('filepath')})"
            for info in libraries
        ] or ["BLAS: none loaded"]
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return [f"BLAS: {blas.get('name')} {blas.get('version')} (from numpy.show_config)"]
    except Exception:  # older NumPy without mode="dicts"
        return ["BLAS: unknown (install threadpoolctl for details)"]


def _cupy_lines() -> list[str]:
    try:
        import cupy
    except ImportError:
        return ["CuPy: not installed (pip install 'xplstm[cuda12]' or 'xplstm[cuda13]')"]
    except Exception as error:  # a broken CUDA installation can fail at import
        return [f"CuPy: installed but fails to import: {error}"]
    lines = [f"CuPy: {cupy.__version__}"]
    try:
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        driver = cupy.cuda.runtime.driverGetVersion()
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, no device
        return [*lines, f"CUDA: not usable ({error})"]
    lines.append(
        f"CUDA: runtime {runtime // 1000}.{runtime % 1000 // 10}, "
        f"driver {driver // 1000}.{driver % 1000 // 10}, {count} device(s)"
    )
    for index in range(count):
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        lines.append(f"  device {index}: {name}")
    return lines


def _kernel_lines() -> list[str]:
    try:
        from ..cuda.specs import kernel_source_dir
    except ImportError as error:
        return [f"CUDA kernel sources: not available ({error})"]
    try:
        directory = kernel_source_dir()
    except Exception as error:  # missing files are reported, not raised
        return [f"CUDA kernel sources: not found ({error})"]
    return [f"CUDA kernel sources: {directory}"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def pointwise_paths() -> list[str]:
    """Which implementation runs the pointwise cell steps on each backend, and the GPU loop."""
    from ..cells import fused_enabled
    from ..cuda.plan import gpu_loop

    gpu = "fused CUDA kernels" if fused_enabled() else "unfused CuPy ufuncs"
    try:
        loop = gpu_loop()
    except ValueError as error:
        loop = f"invalid ({error})"
    from ..cpu import describe

    return [describe(), f"GPU kernels: {gpu} on CuPy (XPLSTM_GPU_LOOP: {loop})"]


def environment_report() -> list[str]:
    """Lines describing versions and backends, for ``xplstm info``."""
    import platform

    from .. import __version__

    lines = [
        f"xplstm: {__version__}",
        f"Python: {platform.python_version()} ({platform.python_implementation()})",
        f"CPU: {cpu_model()}",
        f"NumPy: {np.__version__}",
        *_blas_lines(),
        *pointwise_paths(),
        *_cupy_lines(),
        *_kernel_lines(),
    ]
    device, description = resolve_device("auto")
    lines.append(f"training device (auto): {description}")
    return lines
