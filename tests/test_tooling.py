"""The tools around the package: the nox matrix, the CI script, the asv configuration, the sdist."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _noxfile_constant(name: str):
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py defines no {name}")


def _classifier_pythons() -> list[str]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)


def test_nox_matrix_covers_every_supported_python_from_the_numpy_floor():
    lowest = _noxfile_constant("LOWEST_NUMPY")
    assert sorted(lowest, key=lambda v: tuple(map(int, v.split(".")))) == _classifier_pythons()
    floor = re.search(r'"numpy>=([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    oldest = min(lowest, key=lambda v: tuple(map(int, v.split("."))))
    assert lowest[oldest] == floor  # the oldest Python tests the floor pyproject promises
    for python, numpy in lowest.items():  # never below the floor, never older than a 3.x before
        assert tuple(map(int, numpy.split("."))) >= tuple(map(int, floor.split("."))), python


def test_ci_runs_the_oldest_and_newest_python_with_both_numpy_ends():
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pythons = sorted(_noxfile_constant("LOWEST_NUMPY"), key=lambda v: tuple(map(int, v.split("."))))
    for python in (pythons[0], pythons[-1]):
        for end in ("lowest", "latest"):
            assert f"\"tests-{python}(numpy='{end}')\"" in script, (python, end)
    for session in ("oracle", "lint", "gpu_stand_in", "cpu_kernels", "no_compiler", "asv_smoke"):
        assert re.search(rf"\b{session}\b", script), session
    assert "pyenv" in script  # the installed interpreters are made visible to nox


def test_asv_builds_in_its_own_environment_and_keeps_results_per_commit():
    config = json.loads((REPO / "benchmarks" / "asv.conf.json").read_text(encoding="utf-8"))
    build = " ".join(config["build_command"])
    # Without build isolation the build backend (hatchling) would have to be in asv's
    # environment, which installs only the matrix (numpy).
    assert "--no-build-isolation" not in build or "hatchling" in json.dumps(config["matrix"])
    assert config["environment_type"] == "virtualenv"
    noxfile = (REPO / "noxfile.py").read_text(encoding="utf-8")
    assert "--python=same" not in noxfile  # results without a commit cannot be compared
    assert '"HEAD^!"' in noxfile


def _git(*arguments: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.mark.slow
def test_sdist_holds_tracked_files_only(tmp_path):
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("the build backend hatchling is not installed (pip install hatchling)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        tracked = _git("ls-files", "-z", cwd=REPO).split("\0")
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout (an unpacked sdist, say)")
    # A copy of the tracked files (as they are now) in a fresh repository, plus stray files.
    work = tmp_path / "work"
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    _git("init", "-q", cwd=work)
    _git("add", "-A", cwd=work)
    expected = set(filter(None, _git("ls-files", "-z", cwd=work).split("\0")))
    stray = ["benchmarks/stray_results.json", "tests/scratch_test.py", "xplstm/notes.txt"]
    for name in stray:
        (work / name).write_text("not tracked\n", encoding="utf-8")

    from hatchling.builders.sdist import SdistBuilder

    (archive,) = SdistBuilder(str(work)).build(directory=str(tmp_path / "dist"))
    with tarfile.open(archive) as sdist:
        top, *_ = sdist.getnames()[0].split("/")
        members = {
            name.split("/", 1)[1]
            for name in sdist.getnames()
            if "/" in name and sdist.getmember(name).isfile()
        }
    assert not members & set(stray)
    assert members - {"PKG-INFO"} <= expected, sorted(members - expected - {"PKG-INFO"})
    for needed in ("LICENSE", "pyproject.toml", "hatch_build.py", "xplstm/__init__.py"):
        assert needed in members, needed
    assert top.startswith("xplstm-")
