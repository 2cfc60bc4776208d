"""``benchmarks/gpu_report.py``: its pieces on fake timings, the whole script on the stand-in."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_harness.host import host_compiler
from kernel_harness.stand_in import fake_cupy, install_stand_in

REPO = Path(__file__).resolve().parent.parent
needs_compiler = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")


@pytest.fixture(scope="module")
def gpu_report():
    path = REPO / "benchmarks" / "gpu_report.py"
    spec = importlib.util.spec_from_file_location("xplstm_gpu_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_report_help_works_without_cupy():
    script = REPO / "benchmarks" / "gpu_report.py"
    code = (
        "import runpy, sys; sys.modules['cupy'] = None; sys.argv = ['gpu_report.py', '--help']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage: gpu_report.py" in result.stdout and "--repeats" in result.stdout


def test_gpu_report_stops_clearly_without_a_gpu(gpu_report, tmp_path, monkeypatch):
    output = tmp_path / "gpu.json"
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(SystemExit) as stop:
        gpu_report.main(["--skip-tests", "--output", str(output)])
    assert "CuPy is not installed" in str(stop.value.code)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(device_count=0))
    with pytest.raises(SystemExit) as stop:
        gpu_report.main(["--skip-tests", "--output", str(output)])
    assert "no CUDA device" in str(stop.value.code)
    assert not output.exists()
    with pytest.raises(SystemExit):
        gpu_report.parse_args(["--repeats", "5"])


def test_gpu_report_reads_pytest_summaries(gpu_report):
    text = "....F\nFAILED tests/x.py::y\n3 passed, 1 failed, 2 skipped, 1 error in 1.2s\n"
    counts = gpu_report.parse_pytest_summary(text)
    assert counts == {"passed": 3, "failed": 1, "skipped": 2, "errors": 1, "deselected": 0}
    assert gpu_report.parse_pytest_summary("")["passed"] == 0
    assert gpu_report.parse_pytest_summary("12 deselected in 0.1s")["deselected"] == 12


def _fake_size(n_a, forward, both, error):
    timings = {}
    for path, scale in (("fused", 1.0), ("unfused", 2.0), ("cudnn", 0.5)):
        for name, value in (("forward", forward), ("forward_backward", both)):
            samples = [value * scale] * 20
            timings[f"{path}_{name}"] = {"median": value * scale, "samples": samples}
    errors = {"fused": error, "unfused": error / 2, "cudnn": 1e-6}
    return {
        "n_x": n_a,
        "n_a": n_a,
        "m": 64,
        "T": 100,
        "timings_ms": timings,
        "max_rel_error": errors,
    }


def test_gpu_report_summary_and_json_from_fake_timings(gpu_report, tmp_path):
    sizes = [_fake_size(512, 4.0, 10.0, 3e-6), _fake_size(1024, 9.0, 20.0, 5e-6)]
    headline = gpu_report.summarize(sizes)
    assert headline["fused_speedup_vs_unfused"] == pytest.approx(2.0)
    assert headline["fwd_ratio_vs_cudnn"] == pytest.approx(2.0)
    assert headline["fwd_bwd_ratio_vs_cudnn"] == pytest.approx(2.0)
    assert headline["max_rel_error"] == pytest.approx(5e-6)
    assert headline["targets_met"]["fused_speedup_vs_unfused"] is True
    assert headline["accuracy_ok"] is True
    report = {**headline, "device": "test", "gpu_tests": None, "sizes": sizes}
    path = tmp_path / "results" / "gpu.json"
    gpu_report.write_report(path, report)
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["gpu.json"]
    table = gpu_report.format_table(report)
    assert "n_x=1024 n_a=1024 m=64 T=100" in table and "2.00x" in table


@needs_compiler
def test_gpu_report_end_to_end_on_a_stand_in_gpu(gpu_report, tmp_path, monkeypatch, capsys):
    """The whole script, tiny sizes, with the host rendering of the kernels standing in for CuPy."""
    fake = install_stand_in(monkeypatch)
    monkeypatch.setattr(gpu_report, "optional_torch", lambda: (None, "not in this test"))
    sizes = ({"n_x": 5, "n_a": 6, "m": 3, "T": 4}, {"n_x": 7, "n_a": 7, "m": 2, "T": 3})
    monkeypatch.setattr(gpu_report, "SIZES", sizes)
    output = tmp_path / "gpu.json"
    status = gpu_report.main(["--skip-tests", "--warmup", "1", "--output", str(output)])
    assert status == 0
    report = json.loads(output.read_text())
    for key in ("device", "cupy_version", "commit", "max_rel_error", "fused_speedup_vs_unfused"):
        assert key in report
    assert report["fwd_ratio_vs_cudnn"] is None and report["launches_per_step"]["error"]
    assert report["max_rel_error"] < 1e-5
    assert [kernel.launches > 0 for kernel in fake.kernels] == [True, True]
    first = report["sizes"][0]["timings_ms"]
    assert set(first) == {
        f"{p}_{c}" for p in ("fused", "unfused") for c in ("forward", "forward_backward")
    }
    assert all(len(timing["samples"]) == 25 for timing in first.values())
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("max relative error")
