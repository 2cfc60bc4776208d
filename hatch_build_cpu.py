"""Build hook: compile the CPU kernels (``xplstm.cpu._kernels``) into the wheel when possible.

The module is ``xplstm/cpu/_kernels.cpp`` around the element functions of ``kernels/*.cuh``,
compiled with the C++ compiler of ``CXX`` (else the one Python was built with), OpenMP SIMD
directives and glibc's vector math library, without ``-ffast-math``. When any of that is
missing or fails (no compiler, ``CXX=/bin/false``, not Linux, no libmvec) the build goes on
without it and the wheel is pure Python: xplstm then runs the NumPy twin.
``XPLSTM_BUILD_CPU_KERNELS=0`` skips the compilation. A wheel with the module is tagged for
this Python and platform; an editable install writes it into ``xplstm/cpu/`` beside its source
(ignored by git).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_OFF = ("0", "false", "no", "off")
# -fno-math-errno: the loops never read errno, and while a math call may set it GCC keeps the
# loops with a select around a call (the header's double tanh) scalar. Results are unchanged.
FLAGS = (
    "-std=c++11", "-O3", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared",
    "-Wall", "-Wextra",
)  # fmt: skip
LIBRARIES = ("-lmvec",)


def _sources_module(root: str) -> Any:
    """``xplstm/cpu/sources.py`` loaded by path (xplstm itself needs NumPy)."""
    spec = importlib.util.spec_from_file_location(
        "_xplstm_cpu_sources", Path(root) / "xplstm" / "cpu" / "sources.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def compiler_command() -> list[str]:
    """``CXX`` split into words, else the C++ compiler Python was built with, else ``c++``."""
    return shlex.split(os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++")


def compile_command(root: str, target: Path) -> list[str]:
    """The command that builds the extension at ``target`` from the checkout at ``root``."""
    sources = _sources_module(root)
    kernels = Path(root) / "kernels"
    digest = sources.header_digest(kernels)
    return [
        *compiler_command(), *FLAGS,
        f"-I{sysconfig.get_paths()['include']}", f"-I{kernels}",
        f'-DXPLSTM_HEADER_DIGEST="{digest}"',
        str(sources.SOURCE), "-o", str(target), *LIBRARIES,
    ]  # fmt: skip


def _loads(path: Path) -> str:
    """``""`` when ``path`` imports as the extension in this Python, else the error."""
    probe = (
        "import importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('xplstm.cpu._kernels', sys.argv[1]); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return "" if result.returncode == 0 else result.stderr.strip().splitlines()[-1:][0]


def _vector_math(path: Path) -> str:
    """``""`` when the module calls libmvec's vector tanh, else why it would not pay: with
    scalar tanh calls the loops run several times slower than the NumPy twin."""
    if b"_ZGV" in path.read_bytes():
        return ""
    return "the compiler did not vectorize the tanh calls (no libmvec variants referenced)"


class CPUKernels(BuildHookInterface):
    """Compile ``xplstm.cpu._kernels`` into the wheel, or leave it out and say why."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._scratch: str | None = None
        if self.target_name != "wheel":
            return
        if os.environ.get("XPLSTM_BUILD_CPU_KERNELS", "").strip().lower() in _OFF:
            self.app.display_info("xplstm: XPLSTM_BUILD_CPU_KERNELS=0, CPU kernels not built")
            return
        if not sys.platform.startswith("linux"):
            self._skip(f"the build of the CPU kernels supports Linux only, not {sys.platform}")
            return
        name = "_kernels" + sysconfig.get_config_var("EXT_SUFFIX")
        if version == "editable":  # the editable install imports from the source tree
            target = Path(self.root) / "xplstm" / "cpu" / name
        else:
            self._scratch = tempfile.mkdtemp(prefix="xplstm-cpu-kernels-")
            target = Path(self._scratch) / name
        command = compile_command(self.root, target)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.SubprocessError) as error:
            self._skip(f"{command[0]} did not run ({error})")
            return
        if result.returncode != 0:
            log = (result.stdout + result.stderr).strip()
            self._skip(f"{shlex.join(command)} failed with status {result.returncode}:\n{log}")
            return
        problem = _loads(target) or _vector_math(target)
        if problem:
            target.unlink(missing_ok=True)
            self._skip(f"the compiled module does not import ({problem})")
            return
        self.app.display_info(f"xplstm: built the CPU kernels: {shlex.join(command)}")
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(target)] = f"xplstm/cpu/{name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _skip(self, reason: str) -> None:
        self.app.display_warning(
            f"xplstm: building without the compiled CPU kernels (the NumPy twin runs): {reason}"
        )
