"""Packaging: the wheel carries ``kernels/*.cuh`` and an installed xplstm finds them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xplstm.cuda.specs import CELL_HEADERS

REPO = Path(__file__).resolve().parent.parent
KERNEL_DIR = REPO / "kernels"
HEADERS = sorted(path.name for path in KERNEL_DIR.glob("*.cuh"))


def test_every_header_is_a_kernel_source():
    assert HEADERS == sorted({"activations.cuh", *CELL_HEADERS.values()})


@pytest.mark.slow
def test_installed_wheel_carries_and_finds_the_kernels(tmp_path):
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("the build backend hatchling is not installed (pip install hatchling)")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    flags = ["--no-deps", "--no-index", "--no-build-isolation"]
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run(
        [*pip, "wheel", *flags, "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("xplstm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for header in HEADERS:
        assert f"xplstm/kernels/{header}" in names, header
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import json, xplstm, xplstm.cuda.specs as k; d = k.kernel_source_dir(); "
        "p = {c: k.kernel_preamble(c) for c in k.CELL_HEADERS}; "
        "import xplstm.cpu as c, xplstm.cpu.sources as s; import importlib.util as u; "
        "built = u.find_spec(s.EXTENSION) is not None; "
        "print(json.dumps([xplstm.__file__, str(d), p, built, c._load()[1]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    package_file, source_dir, preambles, built, problem = json.loads(result.stdout)
    if built:  # a wheel with the compiled CPU kernels loads them against its own headers
        assert problem == "", problem
    installed = (target / "xplstm" / "kernels").resolve()
    assert Path(package_file).resolve().is_relative_to(target.resolve())
    assert Path(source_dir) == installed
    assert sorted(preambles) == sorted(CELL_HEADERS)
    for cell, preamble in preambles.items():
        for header in ("activations.cuh", CELL_HEADERS[cell]):
            assert f'#line 1 "{(installed / header).as_posix()}"' in preamble, (cell, header)
            assert (KERNEL_DIR / header).read_text().rstrip() in preamble, (cell, header)
