"""Sessions: `nox -l` lists them, `nox -s tests` runs the CPU tests."""

from __future__ import annotations

import re
import shutil
import subprocess

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
LOWEST_NUMPY = "1.24"  # keep equal to the floor in pyproject.toml


@nox.session(python=PYTHON)
@nox.parametrize("numpy", [LOWEST_NUMPY, "latest"])
def tests(session: nox.Session, numpy: str) -> None:
    """Run the CPU test suite, with the lowest supported and the latest NumPy."""
    # One resolve, so SciPy, scikit-learn and matplotlib come in versions that fit this NumPy.
    pin = "numpy" if numpy == "latest" else f"numpy=={numpy}.*"
    session.install("--upgrade", "-e", ".[test]", pin)
    session.run("pytest", "-m", "not gpu", *session.posargs)


@nox.session(python=PYTHON)
def oracle(session: nox.Session) -> None:
    """Compare against torch.nn.LSTM (installs the CPU wheel torch==2.13.0)."""
    session.install("-e", ".[test]", "torch==2.13.0")
    session.run("pytest", "-m", "oracle", *session.posargs)


def _cuda_major_version() -> int | None:
    if shutil.which("nvidia-smi") is None:
        return None
    output = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"CUDA Version:\s*(\d+)", output)
    return int(match.group(1)) if match else None


@nox.session(python=PYTHON, default=False)
def tests_gpu(session: nox.Session) -> None:
    """Run the gpu-marked tests on CuPy (only where nvidia-smi finds a CUDA driver)."""
    major = _cuda_major_version()
    if major is None:
        session.skip("no NVIDIA driver here (nvidia-smi not found or reports no CUDA version)")
    extra = "cuda13" if major >= 13 else "cuda12"
    session.install("-e", f".[test,{extra}]")
    session.run("pytest", "-m", "gpu", *session.posargs)


@nox.session(python=PYTHON)
def gpu_stand_in(session: nox.Session) -> None:
    """Run the gpu-marked tests on the host stand-in for CuPy (kernels rendered for g++)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "-p", "kernel_harness.stand_in_gpu", "-m", "gpu", *session.posargs,
        env={"PYTHONPATH": "tests"},
    )  # fmt: skip


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Quick asv pass over benchmarks/suites against the current environment."""
    session.install("-e", ".[bench]")
    config = "benchmarks/asv.conf.json"
    session.run("asv", "machine", "--yes", "--config", config)
    session.run(
        "asv", "run", "--config", config, "--python=same", "--quick", "--show-stderr",
        *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format-check with ruff, type-check the package with mypy."""
    session.install("ruff==0.17.6", "mypy==2.4.1", "numpy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
