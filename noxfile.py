"""Sessions: `nox -l` lists them, `nox -s tests` runs the CPU tests on every Python and NumPy end.

Every session names its Python (``tests-3.13(numpy='lowest')``, ``lint-3.11``), and so does its
venv under ``.nox/``. ``--force-python X`` makes nox drop the version from the names, so each
session first checks the Python of the venv it was handed and recreates the venv if it is
another one (:func:`_venv_of_this_python`): a session never runs on an interpreter it did not ask
for. Interpreters that are not on PATH are skipped with a message (an error when ``CI`` is set).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.11"]  # single-Python sessions: a list, so the version is in the session's name
LOWEST_NUMPY = {  # per Python, the oldest NumPy with wheels for it (3.10's: the pyproject floor)
    "3.10": "1.24",
    "3.11": "1.24",
    "3.12": "1.26",
    "3.13": "2.1",
}
PYTHONS = list(LOWEST_NUMPY)


def _venv_of_this_python(session: nox.Session) -> None:
    """Recreate the session's venv when it holds another Python than the session asks for."""
    wanted = session.python
    if not isinstance(wanted, str):
        return
    program = "import sys; print('%d.%d' % sys.version_info[:2])"
    found = str(session.run("python", "-c", program, silent=True)).strip()
    if found != wanted:
        session.log(f"{session.virtualenv.location} holds Python {found}, not {wanted}: recreating")
        session.virtualenv.reuse_existing = False  # type: ignore[union-attr]
        session.virtualenv.create()


@nox.session(python=PYTHONS)
@nox.parametrize("numpy", ["lowest", "latest"])
def tests(session: nox.Session, numpy: str) -> None:
    """CPU test suite; lowest: the oldest NumPy with wheels for this Python (LOWEST_NUMPY)."""
    _venv_of_this_python(session)
    if numpy == "lowest":
        if session.python not in LOWEST_NUMPY:
            session.error(
                f"no lowest NumPy known for Python {session.python}: add it to LOWEST_NUMPY"
            )
        numpy = LOWEST_NUMPY[str(session.python)]
    # One resolve, so SciPy, scikit-learn and matplotlib come in versions that fit this NumPy.
    pin = "numpy" if numpy == "latest" else f"numpy=={numpy}.*"
    session.install("--upgrade", "-e", ".[test]", pin)
    session.run("pytest", "-m", "not gpu", *session.posargs)


@nox.session(python=PYTHON)
def oracle(session: nox.Session) -> None:
    """Compare against torch.nn.LSTM (installs the CPU wheel torch==2.13.0)."""
    _venv_of_this_python(session)
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


GPU_LOOPS = ("cupy", "plan", "graph")  # xplstm.cuda.plan.GPU_LOOPS (nox runs without xplstm)


@nox.session(python=PYTHON)
def gpu_stand_in(session: nox.Session) -> None:
    """Run the gpu-marked tests on the host stand-in for CuPy, once per GPU step loop."""
    _venv_of_this_python(session)
    session.install("-e", ".[test]")
    for loop in GPU_LOOPS:
        session.log(f"XPLSTM_GPU_LOOP={loop}")
        session.run(
            "pytest", "-p", "kernel_harness.stand_in_gpu", "-m", "gpu", *session.posargs,
            env={"PYTHONPATH": "tests", "XPLSTM_GPU_LOOP": loop},
        )  # fmt: skip


CPU_KERNELS = ("compiled", "numpy")  # xplstm.cpu.CPU_KERNEL_CHOICES without "auto"


@nox.session(python=PYTHON)
def cpu_kernels(session: nox.Session) -> None:
    """Run the CPU tests once on the compiled CPU kernels and once on the NumPy twin."""
    _venv_of_this_python(session)
    session.install("-e", ".[test]")
    for kernels in CPU_KERNELS:
        session.log(f"XPLSTM_CPU_KERNELS={kernels}")
        session.run(
            "pytest", "-m", "not gpu", *session.posargs, env={"XPLSTM_CPU_KERNELS": kernels}
        )


NO_COMPILER_PROBE = """
import pathlib, sys, xplstm, xplstm.cpu
from xplstm.training.device import pointwise_paths
package = pathlib.Path(xplstm.__file__).parent
assert "site-packages" in package.parts, package  # the installed wheel, not the checkout
built = [path for path in (package / "cpu").glob("_kernels.*") if path.suffix != ".cpp"]
assert not built, built  # the wheel carries no compiled kernels
assert xplstm.cpu.compiled_module() is None and xplstm.cpu.cpu_kernels() == "numpy"
print(pointwise_paths()[0])
"""


@nox.session(python=PYTHON)
def no_compiler(session: nox.Session) -> None:
    """Install from source with the C and C++ compilers disabled: the NumPy twin runs."""
    _venv_of_this_python(session)
    disabled = {"CC": "/bin/false", "CXX": "/bin/false"}
    session.install("pytest>=7.4", "hypothesis>=6.80")
    session.install("--no-cache-dir", "--force-reinstall", "--no-deps", ".", env=disabled)
    session.install("numpy")
    # -I: not the checkout in the current folder (its editable build may hold the module).
    session.run("python", "-I", "-c", NO_COMPILER_PROBE, env=disabled)
    tests = ["tests/test_cells.py", "tests/test_cpu_kernels.py", "tests/test_course.py"]
    session.run(
        "python", "-I", "-m", "pytest", "-m", "not gpu", "-p", "no:cacheprovider", "-rs",
        *(session.posargs or tests), env=disabled,
    )  # fmt: skip


ASV_CONFIG = "benchmarks/asv.conf.json"


def _asv(session: nox.Session, *run_arguments: str) -> None:
    """``asv run`` for the committed ``HEAD`` in asv's own virtualenv (built from the commit)."""
    _venv_of_this_python(session)
    session.install("asv>=0.6", "virtualenv")
    session.run("asv", "machine", "--yes", "--config", ASV_CONFIG)
    session.run("asv", "run", "--config", ASV_CONFIG, "--show-stderr", *run_arguments, "HEAD^!")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Run the asv suites for the committed HEAD and keep the results (for asv compare/publish)."""
    _asv(session, *session.posargs)  # e.g. nox -s bench -- --bench LSTMLayer


@nox.session(python=PYTHON, default=False)
def asv_smoke(session: nox.Session) -> None:
    """CI: build HEAD in asv's environment, run one benchmark once, publish the HTML."""
    _asv(session, "--quick", "--bench", "LSTMLayer.time_forward_no_grad")
    session.run("asv", "publish", "--config", ASV_CONFIG)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format-check with ruff, type-check the package with mypy."""
    _venv_of_this_python(session)
    session.install("ruff==0.17.6", "mypy==2.4.1", "numpy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
