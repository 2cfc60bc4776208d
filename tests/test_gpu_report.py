"""``benchmarks/gpu_report.py``: its pieces on fake timings, the whole script on the stand-in."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from kernel_harness.host import host_compiler
from kernel_harness.stand_in import fake_cupy, install_stand_in

REPO = Path(__file__).resolve().parent.parent
needs_compiler = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
TINY_SIZES = ({"n_x": 5, "n_a": 6, "m": 3, "T": 4}, {"n_x": 7, "n_a": 7, "m": 2, "T": 3})
XPLSTM_PATHS = ("cupy_fused", "cupy_unfused", "plan", "graph")


@pytest.fixture(scope="module")
def gpu_report():
    path = REPO / "benchmarks" / "gpu_report.py"
    spec = importlib.util.spec_from_file_location("xplstm_gpu_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------- arguments, no GPU


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
    assert "usage: gpu_report.py" in result.stdout
    assert "--repeats" in result.stdout and "--quick" in result.stdout


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


def test_gpu_report_arguments_full_and_quick(gpu_report):
    full = gpu_report.parse_args([])
    assert (full.repeats, full.warmup, full.quick) == (25, 3, False)
    quick = gpu_report.parse_args(["--quick"])
    assert (quick.repeats, quick.warmup, quick.quick) == (5, 1, True)
    assert gpu_report.parse_args(["--quick", "--repeats", "3"]).repeats == 3
    for wrong in (["--repeats", "5"], ["--quick", "--repeats", "2"], ["--warmup", "0"]):
        with pytest.raises(SystemExit):
            gpu_report.parse_args(wrong)


def test_gpu_report_reads_pytest_summaries(gpu_report):
    text = "....F\nFAILED tests/x.py::y\n3 passed, 1 failed, 2 skipped, 1 error in 1.2s\n"
    counts = gpu_report.parse_pytest_summary(text)
    assert counts == {"passed": 3, "failed": 1, "skipped": 2, "errors": 1, "deselected": 0}
    assert gpu_report.parse_pytest_summary("")["passed"] == 0
    assert gpu_report.parse_pytest_summary("12 deselected in 0.1s")["deselected"] == 12


def test_gpu_report_judges_test_runs(gpu_report):
    def run(**counts):
        base = {"passed": 5, "failed": 0, "errors": 0, "skipped": 0, "timed_out": False}
        return {**base, **counts}

    assert not gpu_report.tests_failed(None) and not gpu_report.tests_failed(run())
    assert gpu_report.tests_failed(run(failed=1)) and gpu_report.tests_failed(run(errors=1))
    assert gpu_report.tests_failed(run(timed_out=True))
    assert gpu_report.tests_failed(run(passed=0, skipped=5))  # nothing ran: not a pass


# -------------------------------------------------------------------------- fake timings


class FakeTime:
    """``time.perf_counter`` that only moves when told to."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


def test_gpu_report_times_wall_issue_and_gpu_separately(gpu_report, monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(gpu_report, "time", fake)
    # Per call: ms to enqueue, then ms until the device is done; the first call warms up.
    work = iter([(50.0, 50.0), (2.0, 1.0), (4.0, 5.0), (3.0, 2.0)])
    pending = []

    def function():
        issue, device = next(work)
        fake.now += issue / 1e3
        pending.append(device / 1e3)

    def synchronize():
        fake.now += sum(pending)
        pending.clear()

    gpu_ms = iter([2.5, 8.0, 4.5])
    clock = gpu_report.Clock(synchronize, lambda: lambda: next(gpu_ms))
    timing = gpu_report.time_pass(function, clock, steps=10, repeats=3, warmup=1)
    assert timing["issue_ms"]["samples"] == pytest.approx([2.0, 4.0, 3.0])
    assert timing["wall_ms"]["samples"] == pytest.approx([3.0, 9.0, 5.0])
    assert timing["gpu_ms"]["samples"] == [2.5, 8.0, 4.5]
    assert timing["wall_ms"]["median"] == pytest.approx(5.0)
    assert timing["issue_us_per_step"] == pytest.approx(300.0)  # 3 ms / 10 steps
    assert timing["gpu_us_per_step"] == pytest.approx(450.0)
    without_events = gpu_report.Clock(lambda: None, None)
    timing = gpu_report.time_pass(lambda: None, without_events, 10, repeats=3, warmup=1)
    assert timing["gpu_ms"] is None and timing["gpu_us_per_step"] is None  # never invented


def _case(forward, both, error=1e-6, limit=1e-3):
    def timing(ms):
        return {"wall_ms": {"median": ms, "samples": [ms] * 20}, "issue_ms": None,
                "gpu_ms": None, "issue_us_per_step": ms, "gpu_us_per_step": None}  # fmt: skip

    return {"forward": timing(forward), "forward_backward": timing(both), "max_rel_error": error,
            "accuracy_ok": error <= limit}  # fmt: skip


def _fake_size(gpu_report, n_a, scale=1.0, plan_error=1e-6):
    """Forward, forward+backward ms per path: plan fastest, then graph, cupy, unfused."""
    times = {"cupy_fused": (4.0, 10.0), "cupy_unfused": (8.0, 30.0), "plan": (2.0, 5.0),
             "graph": (2.2, 4.8), "cudnn": (1.0, 2.5)}  # fmt: skip
    size = {"n_x": n_a, "n_a": n_a, "m": 64, "T": 100, "dtype": "float32"}
    for setting in gpu_report.TF32_SETTINGS:
        size[setting] = {
            path: _case(f * scale, b * scale, plan_error if path == "plan" else 1e-6)
            for path, (f, b) in times.items()
        }
        del size[setting]["cudnn"]["accuracy_ok"]
    size["ratios"] = {s: gpu_report.size_ratios(size[s]) for s in gpu_report.TF32_SETTINGS}
    return size


def test_gpu_report_picks_the_best_loop_and_judges_targets_on_it(gpu_report):
    sizes = [_fake_size(gpu_report, 512), _fake_size(gpu_report, 1024, scale=2.0)]
    ratios = sizes[0]["ratios"]["tf32_off"]
    assert ratios["plan"] == pytest.approx(
        {"speedup_vs_unfused": 4.0, "fwd_vs_cudnn": 2.0, "fwd_bwd_vs_cudnn": 2.0}
    )
    assert ratios["cupy_fused"]["speedup_vs_unfused"] == pytest.approx(2.0)
    headline = gpu_report.summarize(sizes)
    assert headline["best_loop"] == "graph"  # shortest forward+backward, not forward
    assert headline["fused_speedup_vs_unfused"] == pytest.approx(8.0 / 2.2)
    assert headline["fwd_ratio_vs_cudnn"] == pytest.approx(2.2)
    assert headline["fwd_bwd_ratio_vs_cudnn"] == pytest.approx(4.8 / 2.5)
    assert headline["targets_met"] == {
        "fused_speedup_vs_unfused": True, "fwd_ratio_vs_cudnn": False,
        "fwd_bwd_ratio_vs_cudnn": True,
    }  # fmt: skip
    assert headline["targets"]["fused_speedup_vs_unfused"] == ">= 2.0"
    assert headline["accuracy_ok"] is True and headline["max_rel_error"] == pytest.approx(1e-6)
    # A loop whose gpu tests failed is never the best one.
    tests = {loop: {"passed": 9, "failed": 0, "errors": 0, "timed_out": False}
             for loop in gpu_report.GPU_LOOPS}  # fmt: skip
    tests["graph"] = {**tests["graph"], "failed": 1}
    assert gpu_report.summarize(sizes, tests)["best_loop"] == "plan"
    # Nor one that misses the accuracy limit anywhere (here the second size); that fails the run.
    sizes[1] = _fake_size(gpu_report, 1024, plan_error=0.5)
    headline = gpu_report.summarize(sizes, tests)
    assert headline["best_loop"] == "cupy_fused"
    assert headline["accuracy_ok"] is False and headline["max_rel_error"] == 0.5
    # A path that raised has no figures and fails the accuracy check.
    sizes[0]["tf32_on"]["cupy_fused"] = {"error": "boom", "max_rel_error": None,
                                         "accuracy_ok": False}  # fmt: skip
    headline = gpu_report.summarize(sizes, tests)
    assert headline["best_loop"] is None and headline["fwd_ratio_vs_cudnn"] is None
    assert headline["targets_met"]["fwd_ratio_vs_cudnn"] is None


def test_gpu_report_json_and_table_from_fake_timings(gpu_report, tmp_path, monkeypatch):
    sizes = [_fake_size(gpu_report, 512), _fake_size(gpu_report, 1024, scale=2.0)]
    sizes[1]["tf32_on"]["plan"] = {"error": "ValueError: boom", "max_rel_error": None,
                                   "accuracy_ok": False}  # fmt: skip
    report = {
        **gpu_report.summarize(sizes),
        "device": "test",
        "measured_on_gpu": True,
        "warning": None,
        "gpu_tests": {"plan": {"passed": 3, "failed": 1, "errors": 0, "skipped": 2}},
        "launches_per_step": {"paths": {"plan": {"forward": 2.0, "backward": 2.0}}},
        "sizes": sizes,
        "seconds": 1.0,
    }
    results = tmp_path / "results"
    monkeypatch.setattr(gpu_report, "RESULTS", results)
    path = results / "gpu.json"
    gpu_report.write_report(path, report)
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["gpu.json"]
    table = gpu_report.format_table(report).splitlines()
    assert "n_x=1024 n_a=1024 m=64 T=100  TF32 ON" in table
    assert any(row.startswith("plan") and row.split()[-2] == "2/2" for row in table)
    assert "plan          error: ValueError: boom" in table
    assert "best loop: graph" in "\n".join(table)  # plan raised at the second size
    assert "gpu tests (plan loop): 3 passed, 1 failed, 0 errors, 2 skipped" in table
    assert table[-1].startswith("device: test; measured on a GPU: True")
    assert not any("NOT GPU RESULTS" in row for row in table)
    # Not measured on a GPU: marked as such, and never written into benchmarks/results/.
    report = {**report, "measured_on_gpu": False, "warning": gpu_report.STAND_IN_WARNING}
    with pytest.raises(ValueError, match="refusing"):
        gpu_report.write_report(results / "other.json", report)
    with pytest.raises(ValueError, match="refusing"):
        gpu_report.write_report(results / "deeper" / "gpu.json", report)
    assert not (results / "other.json").exists() and not (results / "deeper").exists()
    gpu_report.write_report(tmp_path / "elsewhere.json", report)
    assert gpu_report.format_table(report).startswith("*** NOT GPU RESULTS")


def test_gpu_report_refuses_the_results_folder_by_default(gpu_report):
    assert gpu_report.refuses_output(gpu_report.DEFAULT_OUTPUT, measured_on_gpu=False)
    assert gpu_report.refuses_output(gpu_report.RESULTS, measured_on_gpu=False)
    assert not gpu_report.refuses_output(gpu_report.DEFAULT_OUTPUT, measured_on_gpu=True)
    assert not gpu_report.refuses_output(REPO / "benchmarks" / "gpu.json", measured_on_gpu=False)


def test_gpu_report_records_a_path_that_raises(gpu_report):
    class Broken:
        def forward(self):
            raise ValueError("no such loop")

    clock = gpu_report.Clock(lambda: None, None)
    args = SimpleNamespace(repeats=3, warmup=1)
    case = gpu_report.measure_case(Broken(), clock, {}, 4, args, 1e-3)
    assert case == {"error": "ValueError: no such loop", "max_rel_error": None,
                    "accuracy_ok": False}  # fmt: skip


def test_gpu_report_tf32_switches_and_restores(gpu_report, monkeypatch):
    torch = SimpleNamespace(
        backends=SimpleNamespace(
            cuda=SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False)),
            cudnn=SimpleNamespace(allow_tf32=False),
        )
    )
    monkeypatch.setenv("XPLSTM_TF32", "0")
    cupy = fake_cupy()
    with gpu_report.tf32_mode(cupy, torch, on=True):
        assert os.environ["XPLSTM_TF32"] == "1"
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert os.environ["XPLSTM_TF32"] == "0"
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    monkeypatch.delenv("XPLSTM_TF32")
    with gpu_report.tf32_mode(cupy, None, on=False):
        assert os.environ["XPLSTM_TF32"] == "0"
    assert "XPLSTM_TF32" not in os.environ
    controls = gpu_report.tf32_controls(cupy, None, "torch is not installed")
    assert all("not" in text for name, text in controls.items() if name != "plan, graph")


def _fake_test_command(code):
    """A stand-in for the script's pytest command: ``python -c code``."""
    return lambda stand_in: ([sys.executable, "-c", code], dict(os.environ))


def test_gpu_report_runs_the_gpu_tests_once_per_loop(gpu_report, monkeypatch):
    code = (
        "import os, sys, time; loop = os.environ['XPLSTM_GPU_LOOP']; "
        "time.sleep(30) if loop == 'graph' else None; "
        "print('4 passed in 0.1s' if loop == 'cupy' else '1 failed, 3 passed in 0.1s')"
    )
    original = gpu_report._test_command
    monkeypatch.setattr(gpu_report, "_test_command", _fake_test_command(code))
    runs = gpu_report.run_gpu_tests(timeout=3.0)
    assert list(runs) == ["cupy", "plan", "graph"]
    assert (runs["cupy"]["passed"], runs["cupy"]["failed"], runs["cupy"]["returncode"]) == (4, 0, 0)
    assert (runs["plan"]["passed"], runs["plan"]["failed"]) == (3, 1)
    assert runs["graph"]["timed_out"] and runs["graph"]["returncode"] is None
    assert runs["cupy"]["seconds"] < 20  # side by side, one timeout for all
    command, env = original(stand_in=True)
    assert command[1:5] == ["-m", "pytest", "-m", "gpu"]
    assert "kernel_harness.stand_in_gpu" in command
    assert str(REPO / "tests") in env["PYTHONPATH"].split(os.pathsep)
    assert "kernel_harness.stand_in_gpu" not in original(stand_in=False)[0]


def test_gpu_report_launch_counts_need_a_counter(gpu_report, monkeypatch):
    monkeypatch.setattr(gpu_report, "stand_in_counter", lambda cupy: None)
    launches = gpu_report.launches_per_step(None, fake_cupy(), None, TINY_SIZES[0])
    assert launches["source"] is None and launches["paths"] == {}
    assert "no launch counter" in launches["error"]


@needs_compiler
def test_gpu_report_launch_counts_from_a_profiler(gpu_report, monkeypatch):
    """Off the stand-in the counts come from torch's profiler (here a fake one that counts the
    stand-in's launches, at 1.5 us each): per step = difference of two lengths / extra steps."""
    fake = install_stand_in(monkeypatch)
    counter = gpu_report.stand_in_counter(fake)
    torch_launches = [0]

    class FakeTorchLSTM:
        def __init__(self, torch, problem):
            self.steps = problem["x"].shape[0]

        def forward(self):
            torch_launches[0] += 3 + self.steps  # 3 once per call, 1 per step

        def forward_backward(self):
            torch_launches[0] += 5 + 4 * self.steps

    def fake_profiler(torch, synchronize):
        def count(function):
            before = counter() + torch_launches[0]
            function()
            launched = counter() + torch_launches[0] - before
            return launched, 1.5 * launched

        return count

    monkeypatch.setattr(gpu_report, "stand_in_counter", lambda cupy: None)
    monkeypatch.setattr(gpu_report, "profiler_counter", fake_profiler)
    monkeypatch.setattr(gpu_report, "TorchLSTM", FakeTorchLSTM)
    from xplstm import engine

    launches = gpu_report.launches_per_step(engine, fake, object(), TINY_SIZES[0])
    assert launches["source"] == "torch.profiler (CUPTI)" and launches["steps"] == [8, 16]
    paths = launches["paths"]
    assert paths["plan"] == paths["graph"] == {
        "forward": 2.0, "forward_kernel_us": 3.0, "backward": 2.0, "backward_kernel_us": 3.0
    }  # fmt: skip
    assert paths["cudnn"] == {
        "forward": 1.0, "forward_kernel_us": 1.5, "forward_backward": 4.0,
        "forward_backward_kernel_us": 6.0,
    }  # fmt: skip
    assert set(paths) == {"cupy_fused", "cupy_unfused", "plan", "graph", "cudnn"}


# ------------------------------------------------------------------------ the whole script


def _only_layer_tests(gpu_report):
    """The script's gpu test command, limited to tests/test_layer.py (to keep this test short)."""
    original = gpu_report._test_command

    def command(stand_in):
        arguments, env = original(stand_in)
        return [*arguments[:-1], str(REPO / "tests" / "test_layer.py")], env

    return command


@needs_compiler
def test_gpu_report_quick_end_to_end_on_the_stand_in(gpu_report, tmp_path, monkeypatch, capsys):
    """The whole script with ``--quick`` (gpu tests per loop included), tiny sizes, on the host
    stand-in: a complete report, marked as not measured on a GPU."""
    fake = install_stand_in(monkeypatch)
    monkeypatch.setattr(gpu_report, "optional_torch", lambda: (None, "not in this test"))
    monkeypatch.setattr(gpu_report, "SIZES", TINY_SIZES)
    monkeypatch.setattr(gpu_report, "_test_command", _only_layer_tests(gpu_report))
    with pytest.raises(SystemExit, match="refusing to write into"):
        gpu_report.main(["--quick", "--skip-tests"])  # default output: benchmarks/results/
    output = tmp_path / "gpu.json"
    status = gpu_report.main(["--quick", "--output", str(output)])
    assert status == 0
    report = json.loads(output.read_text())
    assert report["device"] == "host stand-in (not a GPU)" and report["measured_on_gpu"] is False
    assert "NOT GPU RESULTS" in report["warning"] and report["quick"] is True
    for loop in ("cupy", "plan", "graph"):
        tests = report["gpu_tests"][loop]
        assert tests["passed"] > 0 and not tests["failed"] and not tests["errors"]
    assert [(size["n_x"], size["T"]) for size in report["sizes"]] == [(5, 4)]  # first size only
    size = report["sizes"][0]
    for setting in ("tf32_off", "tf32_on"):
        assert set(size[setting]) == set(XPLSTM_PATHS)  # no cuDNN without torch on CUDA
        for case in size[setting].values():
            assert "error" not in case and case["accuracy_ok"]
            assert set(case["rel_errors"]) == {
                "h", "h_n", "c_n", "dx", "dh0", "dc0", "dw_ih", "dw_hh", "dbias"
            }  # fmt: skip
            for pass_ in ("forward", "forward_backward"):
                timing = case[pass_]
                assert len(timing["wall_ms"]["samples"]) == 5
                assert timing["issue_us_per_step"] > 0
                assert timing["gpu_ms"] is None  # the stand-in has no timing events
    # The stand-in's cuBLAS rounds to TF32 when asked: the planned loops see it, the cupy loop
    # (NumPy's matmul on the stand-in) does not.
    assert size["tf32_on"]["plan"]["max_rel_error"] > 10 * size["tf32_off"]["plan"]["max_rel_error"]
    assert (
        size["tf32_on"]["cupy_fused"]["max_rel_error"]
        == size["tf32_off"]["cupy_fused"]["max_rel_error"]
    )
    assert report["best_loop"] in ("cupy_fused", "plan", "graph")
    assert report["fused_speedup_vs_unfused"] is not None and report["fwd_ratio_vs_cudnn"] is None
    launches = report["launches_per_step"]
    assert launches["source"] == "stand-in counters"
    assert launches["paths"]["plan"] == {"forward": 2.0, "backward": 2.0}
    assert launches["paths"]["graph"] == {"forward": 2.0, "backward": 2.0}
    assert launches["paths"]["cupy_fused"] is None  # the stand-in cannot count cupy.matmul
    assert any(kernel.launches > 0 for kernel in fake.raw_kernels)
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[1].startswith("*** NOT GPU RESULTS")
    assert lines[-1].startswith("device: host stand-in (not a GPU); measured on a GPU: False")


@needs_compiler
def test_gpu_report_fails_on_a_failed_test_run_or_accuracy(gpu_report, tmp_path, monkeypatch):
    install_stand_in(monkeypatch)
    monkeypatch.setattr(gpu_report, "optional_torch", lambda: (None, "not in this test"))
    monkeypatch.setattr(gpu_report, "SIZES", TINY_SIZES[1:])
    code = (
        "import os; plan = os.environ['XPLSTM_GPU_LOOP'] == 'plan'; "
        "print('1 failed, 2 passed' if plan else '3 passed')"
    )
    monkeypatch.setattr(gpu_report, "_test_command", _fake_test_command(code))
    output = tmp_path / "gpu.json"
    assert gpu_report.main(["--quick", "--output", str(output)]) == 1
    report = json.loads(output.read_text())  # still written
    assert report["gpu_tests"]["plan"]["failed"] == 1 and report["best_loop"] != "plan"
    assert report["accuracy_ok"] is True
    monkeypatch.setattr(gpu_report, "ACCURACY_LIMITS", {"tf32_off": 0.0, "tf32_on": 0.0})
    assert gpu_report.main(["--quick", "--skip-tests", "--output", str(output)]) == 1
    report = json.loads(output.read_text())
    assert report["accuracy_ok"] is False and report["best_loop"] is None
