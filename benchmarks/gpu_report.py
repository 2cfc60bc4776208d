"""GPU report: run the ``gpu`` tests per loop, time every xplstm loop against cuDNN, check accuracy.

For a machine with a CUDA GPU, CuPy, PyTorch (CUDA build), NumPy and pytest; nothing else is
needed. From the repository root::

    PYTHONPATH=. python benchmarks/gpu_report.py          # meant to take under 4 minutes
    PYTHONPATH=. python benchmarks/gpu_report.py --quick  # first size, 5 repeats (meant: a minute)

First runs ``pytest -m gpu`` once per CuPy loop (``XPLSTM_GPU_LOOP=cupy|plan|graph``, the three
runs side by side). Then, per size and with TF32 off and on, it times the whole-sequence forward
and forward+backward of :mod:`xplstm.engine` on CuPy for each path of :data:`PATHS` (the
``cupy`` loop fused and unfused, the ``plan`` and ``graph`` loops) and ``torch.nn.LSTM`` (cuDNN)
with the same weights. Each timed call is bracketed three ways: host wall time from the start of
the call until the device is synchronized (the headline figure), host time until the call
returns without synchronizing (the *issue* time), and CUDA events recorded on the current stream
before and after the call (the *GPU* time); figures are medians of ``--repeats`` calls after
``--warmup`` untimed ones, per step divided by ``T``. Launches per step come from the stand-in's
counters or from torch's profiler (CUPTI), else are ``None``. Every output and gradient is checked
against the engine on NumPy float64. The best loop is named and the targets are judged on it.

Writes the JSON report atomically (:mod:`xplstm.atomic`) and prints a table last. Exits non-zero
when no GPU (or stand-in) is usable, when a ``gpu`` test run fails, or when an xplstm accuracy
check fails or a path raises (the report is still written in the last two cases). On anything but
CuPy on a real GPU (the tests' host stand-in) the report says so (``"measured_on_gpu": false``)
and the script refuses to write into ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_OUTPUT = RESULTS / "gpu.json"
SIZES = (
    {"n_x": 512, "n_a": 512, "m": 64, "T": 100},
    {"n_x": 1024, "n_a": 1024, "m": 64, "T": 25},
)
GPU_LOOPS = ("cupy", "plan", "graph")
# Report name -> how the engine runs it.
PATHS = {
    "cupy_fused": {"gpu_loop": "cupy", "fused": True},
    "cupy_unfused": {"gpu_loop": "cupy", "fused": False},
    "plan": {"gpu_loop": "plan", "fused": True},
    "graph": {"gpu_loop": "graph", "fused": True},
}
CANDIDATES = ("cupy_fused", "plan", "graph")  # the fused loops the best one is chosen from
BASELINE = "cupy_unfused"
CUDNN = "cudnn"
TF32_SETTINGS = {"tf32_off": False, "tf32_on": True}
TARGETS = {
    "fused_speedup_vs_unfused": 2.0,
    "fwd_ratio_vs_cudnn": 2.0,
    "fwd_bwd_ratio_vs_cudnn": 2.0,
}
# Normwise relative error allowed against float64: 10^4 float32 eps with TF32 off; with TF32 on
# the GEMM inputs keep 10 mantissa bits (eps 2^-10), so 50 TF32 eps. A wrong transpose, leading
# dimension or grid gives errors of order one either way.
ACCURACY_LIMIT = 1e4 * float(np.finfo(np.float32).eps)
TF32_ACCURACY_LIMIT = 50 * 2.0**-10
ACCURACY_LIMITS = {"tf32_off": ACCURACY_LIMIT, "tf32_on": TF32_ACCURACY_LIMIT}
LAUNCH_COUNT_STEPS = (8, 16)
# CuPy's float32 GEMM compute types (cupy/_core/_routines_linalg.pxd; not exported to Python).
CUPY_COMPUTE_TYPE_DEFAULT, CUPY_COMPUTE_TYPE_TF32 = 1, 7
STAND_IN_DEVICE = "host stand-in (not a GPU)"
STAND_IN_WARNING = (
    "NOT GPU RESULTS: measured on the tests' host stand-in for CuPy (kernels compiled for the "
    "CPU); the figures say nothing about any GPU and must never be recorded as results"
)


# --------------------------------------------------------------------------- arguments, helpers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_report.py",
        description="Run the gpu tests for each CuPy loop, time xplstm's loops (cupy fused and "
        "unfused, plan, graph) against cuDNN with TF32 off and on, check accuracy against NumPy "
        "float64 and write a JSON report. Needs a CUDA GPU with CuPy and PyTorch.",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    parser.add_argument(
        "--quick", action="store_true",
        help="a short check (meant to take a minute): first size, 5 repeats, 1 warm-up run",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per case (>= 20; default 25)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed runs per case first (default 3)"
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m gpu")
    parser.add_argument(
        "--tests-timeout", type=float, default=150.0,
        help="seconds allowed for the gpu test runs (all loops, side by side)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 25
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    least = 3 if args.quick else 20
    if args.repeats < least:
        parser.error(
            f"--repeats must be at least {least}"
            + ("" if args.quick else " (the report quotes medians of >= 20 runs; or --quick)")
        )
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first run compiles the kernels)")
    return args


def parse_pytest_summary(text: str) -> dict[str, int]:
    """Counts from pytest's closing line, e.g. ``3 passed, 1 failed, 2 skipped in 1.2s``."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "deselected": 0}
    closing = r"\b\d+ (passed|failed|skipped|errors?|deselected)\b"
    lines = [line for line in text.splitlines() if re.search(closing, line)]
    for count, word in re.findall(r"(\d+) (\w+)", lines[-1] if lines else ""):
        word = "errors" if word in ("error", "errors") else word
        if word in counts:
            counts[word] = int(count)
    return counts


def git_commit(repo: Path = REPO) -> dict[str, Any]:
    """The checked-out commit (``git rev-parse HEAD``), else ``$XPLSTM_COMMIT``, else unknown."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
        return {"commit": head, "commit_source": "git", "dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        commit = os.environ.get("XPLSTM_COMMIT", "unknown")
        return {"commit": commit, "commit_source": "environment", "dirty": None}


def use_checkout() -> None:
    """Import xplstm from this checkout, installed or not (the script runs from the repository)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def median(samples: list[float]) -> float:
    return float(statistics.median(samples))


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |actual - expected| / max(|expected|, tiny)`` (normwise, in float64)."""
    expected = np.asarray(expected, dtype=np.float64)
    difference = np.abs(np.asarray(actual, dtype=np.float64) - expected).max(initial=0.0)
    return float(difference / max(float(np.abs(expected).max(initial=0.0)), 1e-30))


def size_label(size: dict[str, Any]) -> str:
    return f"n_x={size['n_x']} n_a={size['n_a']} m={size['m']} T={size['T']}"


def _median_of(timing: dict[str, Any] | None, key: str = "wall_ms") -> float | None:
    """``timing[key]["median"]``, or ``None`` where the case failed or was not measured."""
    if not timing or not timing.get(key):
        return None
    return timing[key]["median"]


def _case_time(case: dict[str, Any] | None, pass_: str) -> float | None:
    return None if case is None or "error" in case else _median_of(case.get(pass_))


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom <= 0 else top / bottom


def size_ratios(cases: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per fused loop: unfused/loop forward, loop/cuDNN forward and forward+backward."""
    unfused = _case_time(cases.get(BASELINE), "forward")
    cudnn = cases.get(CUDNN)
    return {
        loop: {
            "speedup_vs_unfused": _ratio(unfused, _case_time(cases.get(loop), "forward")),
            "fwd_vs_cudnn": _ratio(
                _case_time(cases.get(loop), "forward"), _case_time(cudnn, "forward")
            ),
            "fwd_bwd_vs_cudnn": _ratio(
                _case_time(cases.get(loop), "forward_backward"),
                _case_time(cudnn, "forward_backward"),
            ),
        }
        for loop in CANDIDATES
    }


def tests_failed(result: dict[str, Any] | None) -> bool:
    """A gpu test run that failed, errored, timed out or ran no test at all."""
    if result is None:
        return False
    ran = result["passed"] + result["failed"] + result["errors"]
    return bool(result["failed"] or result["errors"] or result["timed_out"] or not ran)


def choose_best_loop(sizes: list[dict[str, Any]], gpu_tests: dict[str, Any] | None) -> str | None:
    """The fused loop with the shortest forward+backward at the first size, TF32 off, among
    those that ran without error and within the accuracy limit at every size and TF32 setting,
    and whose gpu tests passed (when they ran)."""
    eligible = []
    for loop in CANDIDATES:
        cases = [size[setting].get(loop) for size in sizes for setting in TF32_SETTINGS]
        if any(case is None or not case.get("accuracy_ok") for case in cases):
            continue
        engine_loop = PATHS[loop]["gpu_loop"]
        if gpu_tests is not None and tests_failed(gpu_tests.get(engine_loop)):
            continue
        both = _case_time(sizes[0]["tf32_off"].get(loop), "forward_backward")
        if both is not None:
            eligible.append((both, loop))
    return min(eligible)[1] if eligible else None


def summarize(sizes: list[dict[str, Any]], gpu_tests: dict[str, Any] | None = None) -> dict:
    """Headline numbers: the best loop and the targets judged on it (first size, TF32 off)."""
    best = choose_best_loop(sizes, gpu_tests)
    first = sizes[0]["ratios"]["tf32_off"].get(best, {}) if best else {}
    headline: dict[str, Any] = {
        "best_loop": best,
        "best_loop_rule": "the fused loop (cupy_fused, plan, graph) with the shortest "
        "forward+backward wall time at the first size, TF32 off, among those without errors, "
        "within the accuracy limit at every size and TF32 setting, and whose gpu tests passed",
        "targets_judged_at": f"{size_label(sizes[0])}, float32, TF32 off, best loop",
        "fused_speedup_vs_unfused": first.get("speedup_vs_unfused"),
        "fwd_ratio_vs_cudnn": first.get("fwd_vs_cudnn"),
        "fwd_bwd_ratio_vs_cudnn": first.get("fwd_bwd_vs_cudnn"),
    }
    met = {}
    for name, target in TARGETS.items():
        value = headline[name]
        above = name == "fused_speedup_vs_unfused"
        met[name] = None if value is None else (value >= target if above else value <= target)
    headline["targets"] = {
        name: (">= " if name == "fused_speedup_vs_unfused" else "<= ") + str(target)
        for name, target in TARGETS.items()
    }
    headline["targets_met"] = met
    xplstm_cases = [
        size[setting][path] for size in sizes for setting in TF32_SETTINGS for path in PATHS
        if path in size[setting]
    ]  # fmt: skip
    errors = [case["max_rel_error"] for case in xplstm_cases if case.get("max_rel_error")]
    headline["max_rel_error"] = max(errors) if errors else None
    headline["accuracy_ok"] = (
        None if not xplstm_cases else all(case.get("accuracy_ok") for case in xplstm_cases)
    )
    return headline


def refuses_output(path: Path, measured_on_gpu: bool) -> bool:
    """Whether ``path`` is in ``benchmarks/results/`` while not measuring on a GPU."""
    if measured_on_gpu:
        return False
    target, results = Path(path).resolve(), RESULTS.resolve()
    return target == results or results in target.parents


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    use_checkout()
    from xplstm.atomic import write_json_atomic

    path = Path(path)
    if refuses_output(path, bool(report.get("measured_on_gpu"))):
        raise ValueError(f"refusing to write a report not measured on a GPU into {RESULTS}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, report, indent=2, sort_keys=False)


def _format(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _launch_cell(launches: dict[str, Any], path: str) -> str:
    counts = launches.get("paths", {}).get(path)
    if not counts:
        return "-"
    forward = counts.get("forward")
    backward = counts.get("backward", counts.get("forward_backward"))
    return f"{_format(forward, 'g')}/{_format(backward, 'g')}"


def format_table(report: dict[str, Any]) -> str:
    """The closing summary: one row per size, TF32 setting and path, then the headline."""
    header = (
        f"{'path':<14}{'fwd ms':>10}{'f+b ms':>10}{'fwd issue':>11}{'fwd gpu':>9}"
        f"{'f+b issue':>11}{'f+b gpu':>9}{'launches':>10}{'rel err':>10}"
    )
    rows = []
    if not report.get("measured_on_gpu"):
        rows += [f"*** {report.get('warning') or STAND_IN_WARNING} ***", ""]
    rows += [
        "times: median ms per call (wall, synchronized); issue/gpu: us per step; "
        "launches: per step, forward/backward (cudnn: forward/forward+backward), first size",
    ]
    launches = report.get("launches_per_step") or {}
    for index, size in enumerate(report["sizes"]):
        for setting in TF32_SETTINGS:
            rows += ["", f"{size_label(size)}  {setting.replace('_', ' ').upper()}", header]
            for path, case in size[setting].items():
                if "error" in case:
                    rows.append(f"{path:<14}error: {case['error']}"[:120])
                    continue
                forward, both = case["forward"], case["forward_backward"]
                rows.append(
                    f"{path:<14}"
                    f"{_format(_median_of(forward), '.3f'):>10}"
                    f"{_format(_median_of(both), '.3f'):>10}"
                    f"{_format(forward.get('issue_us_per_step'), '.1f'):>11}"
                    f"{_format(forward.get('gpu_us_per_step'), '.1f'):>9}"
                    f"{_format(both.get('issue_us_per_step'), '.1f'):>11}"
                    f"{_format(both.get('gpu_us_per_step'), '.1f'):>9}"
                    f"{(_launch_cell(launches, path) if index == 0 else ''):>10}"
                    f"{_format(case.get('max_rel_error'), '.1e'):>10}"
                )
    met, targets = report["targets_met"], report["targets"]
    rows += [
        "",
        f"best loop: {report['best_loop'] or 'none'} (targets at {report['targets_judged_at']})",
        f"fused speedup vs unfused (forward): {_format(report['fused_speedup_vs_unfused'], '.2f')}x"
        f" (target {targets['fused_speedup_vs_unfused']}, met: {met['fused_speedup_vs_unfused']})",
        f"xplstm / cuDNN forward: {_format(report['fwd_ratio_vs_cudnn'], '.2f')} "
        f"(target {targets['fwd_ratio_vs_cudnn']}, met: {met['fwd_ratio_vs_cudnn']})",
        f"xplstm / cuDNN forward+backward: {_format(report['fwd_bwd_ratio_vs_cudnn'], '.2f')} "
        f"(target {targets['fwd_bwd_ratio_vs_cudnn']}, met: {met['fwd_bwd_ratio_vs_cudnn']})",
        f"max relative error vs float64 (xplstm): {_format(report['max_rel_error'], '.2e')} "
        f"(limits: TF32 off {ACCURACY_LIMIT:.1e}, on {TF32_ACCURACY_LIMIT:.1e}; "
        f"ok: {report['accuracy_ok']})",
    ]
    for loop, tests in (report.get("gpu_tests") or {}).items():
        rows.append(
            f"gpu tests ({loop} loop): {tests['passed']} passed, {tests['failed']} failed, "
            f"{tests['errors']} errors, {tests['skipped']} skipped"
            + (" (timed out)" if tests.get("timed_out") else "")
        )
    rows.append(
        f"device: {report['device']}; measured on a GPU: {report['measured_on_gpu']}; "
        f"{report['seconds']} s"
    )
    return "\n".join(rows)


# ------------------------------------------------------------------------------------ GPU work


def require_gpu() -> Any:
    """CuPy with a usable CUDA device, or stop with the sentence saying why not."""
    use_checkout()
    from xplstm.devices import require_cupy

    try:
        return require_cupy()
    except RuntimeError as error:
        raise SystemExit(f"gpu_report: {error}; this script needs a CUDA GPU and CuPy") from None


def on_stand_in(cupy: Any) -> bool:
    """Whether ``cupy`` is the tests' host stand-in (``tests/kernel_harness``)."""
    return getattr(cupy, "__version__", None) == "stand-in"


def measured_on_gpu(cupy: Any) -> bool:
    """Whether ``cupy`` is CuPy itself, an installed package on a CUDA device."""
    return not on_stand_in(cupy) and getattr(cupy, "__file__", None) is not None


def optional_torch() -> tuple[Any, str | None]:
    """``(torch, None)`` when torch with CUDA is usable, else ``(None, reason)``."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} cannot use CUDA"
    return torch, None


def _cupy_linalg(cupy: Any) -> tuple[Any, str | None]:
    """CuPy's GEMM settings module (``set_compute_type``), or ``(None, why not)``."""
    if on_stand_in(cupy):
        return None, "the stand-in's cupy.matmul is NumPy's (no TF32)"
    try:
        linalg = importlib.import_module("cupy._core._routines_linalg")
    except ImportError as error:
        return None, f"cupy._core._routines_linalg: {error}"
    try:
        linalg.set_compute_type(np.float32, linalg.get_compute_type(np.float32))
    except Exception as error:  # another CuPy: run with its own setting, and say so
        return None, f"cupy._core._routines_linalg.set_compute_type: {error}"
    return linalg, None


@contextlib.contextmanager
def tf32_mode(cupy: Any, torch: Any, on: bool) -> Iterator[None]:
    """TF32 for float32 GEMMs on or off everywhere: the planned loops (``XPLSTM_TF32``), CuPy's
    matmul (its float32 compute type) and torch (matmul and cuDNN); restored afterwards."""
    previous_env = os.environ.get("XPLSTM_TF32")
    os.environ["XPLSTM_TF32"] = "1" if on else "0"
    linalg, _ = _cupy_linalg(cupy)
    previous_type = linalg.get_compute_type(np.float32) if linalg else None
    if linalg:
        wanted = CUPY_COMPUTE_TYPE_TF32 if on else CUPY_COMPUTE_TYPE_DEFAULT
        linalg.set_compute_type(np.float32, wanted)
    previous_torch = None
    if torch is not None:
        previous_torch = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        if previous_env is None:
            os.environ.pop("XPLSTM_TF32", None)
        else:
            os.environ["XPLSTM_TF32"] = previous_env
        if linalg:
            linalg.set_compute_type(np.float32, previous_type)
        if previous_torch is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous_torch


def tf32_controls(cupy: Any, torch: Any, torch_problem: str | None) -> dict[str, str]:
    """How TF32 is switched for each path (what ``tf32_on`` means in this report)."""
    _, cupy_problem = _cupy_linalg(cupy)
    return {
        "plan, graph": "XPLSTM_TF32 (LSTMPlan's cuBLAS math mode for the per-step GEMMs)",
        "cupy.matmul (cupy loop, input projections, weight gradients)": (
            "cupy._core._routines_linalg.set_compute_type(float32, TF32)"
            if cupy_problem is None
            else f"not switched: {cupy_problem}"
        ),
        "cudnn": "torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32"
        if torch_problem is None
        else f"not measured: {torch_problem}",
    }


def _test_command(stand_in: bool) -> tuple[list[str], dict[str, str]]:
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    path = [str(REPO), os.environ.get("PYTHONPATH", "")]
    if stand_in:  # the same tests, on the host stand-in (nox -s gpu_stand_in)
        command += ["-p", "kernel_harness.stand_in_gpu"]
        path.insert(1, str(REPO / "tests"))
    command += ["--continue-on-collection-errors", str(REPO / "tests")]
    return command, {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


def run_gpu_tests(timeout: float, stand_in: bool = False) -> dict[str, dict[str, Any]]:
    """``pytest -m gpu -q`` once per loop (``XPLSTM_GPU_LOOP``), the runs side by side in
    subprocesses; per loop: counts, exit status and the closing lines."""
    command, env = _test_command(stand_in)
    start = time.perf_counter()
    runs = {}
    for loop in GPU_LOOPS:
        log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        process = subprocess.Popen(
            command, cwd=REPO, env={**env, "XPLSTM_GPU_LOOP": loop}, stdout=log,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        runs[loop] = (process, log)
    results = {}
    for loop, (process, log) in runs.items():
        timed_out = False
        try:
            process.wait(timeout=max(0.1, timeout - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            timed_out = True
        log.seek(0)
        output = log.read()
        log.close()
        results[loop] = {
            **parse_pytest_summary(output),
            "returncode": None if timed_out else process.returncode,
            "timed_out": timed_out,
            "tail": output.strip().splitlines()[-15:],
        }
    seconds = round(time.perf_counter() - start, 1)
    for result in results.values():
        result["seconds"] = seconds
    return results


def make_problem(size: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """float32 inputs, weights in torch's default range ``U(-1/sqrt(H), 1/sqrt(H))``."""
    rng = np.random.default_rng(seed)
    n_x, hidden, batch, steps = size["n_x"], size["n_a"], size["m"], size["T"]
    bound = 1.0 / np.sqrt(hidden)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    return {
        "x": rng.standard_normal((steps, batch, n_x)).astype(np.float32),
        "w_ih": uniform(4 * hidden, n_x),
        "w_hh": uniform(4 * hidden, hidden),
        "bias": uniform(4 * hidden),
        "dy": rng.standard_normal((steps, batch, hidden)).astype(np.float32),
    }


OUTPUT_NAMES = ("h", "h_n", "c_n", "dx", "dh0", "dc0", "dw_ih", "dw_hh", "dbias")


class EngineCalls:
    """One path of the engine on one problem already on the device, as zero-argument calls."""

    def __init__(
        self, engine: Any, arrays: dict[str, Any], gpu_loop: str | None, fused: bool | None
    ) -> None:
        self.engine, self.arrays = engine, arrays
        self.options = {"fused": fused, "gpu_loop": gpu_loop}

    def forward(self) -> Any:
        a = self.arrays
        return self.engine.lstm_forward(a["x"], a["w_ih"], a["w_hh"], a["bias"], **self.options)

    def backward(self, saved: Any) -> Any:
        return self.engine.lstm_backward(self.arrays["dy"], None, None, saved)

    def forward_backward(self) -> Any:
        return self.backward(self.forward()[3])

    def outputs(self) -> dict[str, np.ndarray]:
        """Forward and backward; every output and gradient as a NumPy array, by name."""
        h, h_n, c_n, saved = self.forward()
        h, h_n, c_n = h.copy(), h_n.copy(), c_n.copy()  # backward consumes the saved buffers
        values = (h, h_n, c_n, *self.backward(saved))
        return {name: _host(value) for name, value in zip(OUTPUT_NAMES, values, strict=True)}


def reference_outputs(engine: Any, problem: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engine on NumPy float64: the accuracy reference."""
    wide = {name: value.astype(np.float64) for name, value in problem.items()}
    return EngineCalls(engine, wide, None, None).outputs()


def _host(array: Any) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


class TorchLSTM:
    """``torch.nn.LSTM`` on CUDA with the problem's weights (``bias_hh`` zero)."""

    def __init__(self, torch: Any, problem: dict[str, np.ndarray]) -> None:
        self.torch = torch
        hidden, n_x = problem["w_ih"].shape[0] // 4, problem["w_ih"].shape[1]
        self.lstm = torch.nn.LSTM(n_x, hidden).cuda()
        with torch.no_grad():
            self.lstm.weight_ih_l0.copy_(torch.from_numpy(problem["w_ih"]))
            self.lstm.weight_hh_l0.copy_(torch.from_numpy(problem["w_hh"]))
            self.lstm.bias_ih_l0.copy_(torch.from_numpy(problem["bias"]))
            self.lstm.bias_hh_l0.zero_()
        self.x = torch.from_numpy(problem["x"]).cuda()
        self.dy = torch.from_numpy(problem["dy"]).cuda()

    def forward(self) -> Any:
        """Training-mode forward (autograd on), as xplstm's forward also keeps activations."""
        return self.lstm(self.x)

    def forward_backward(self) -> Any:
        self.lstm.zero_grad(set_to_none=True)
        x = self.x.detach().requires_grad_(True)
        output, (h_n, c_n) = self.lstm(x)
        output.backward(self.dy)
        return x, output, h_n, c_n

    def outputs(self) -> dict[str, np.ndarray]:
        x, h, h_n, c_n = self.forward_backward()
        lstm = self.lstm
        values = {
            "h": h, "h_n": h_n[0], "c_n": c_n[0], "dx": x.grad, "dw_ih": lstm.weight_ih_l0.grad,
            "dw_hh": lstm.weight_hh_l0.grad, "dbias": lstm.bias_ih_l0.grad,
        }  # fmt: skip
        return {name: value.detach().cpu().numpy() for name, value in values.items()}


class Clock:
    """Brackets of one call: synchronize, start event, call, host clock, end event, synchronize.

    ``start_events()`` records a start event on the current stream and returns ``stop()``,
    which records the end event, waits for it and gives the elapsed ms; ``None`` when the
    device has no timing events (the stand-in).
    """

    def __init__(
        self,
        synchronize: Callable[[], None],
        start_events: Callable[[], Callable[[], float]] | None,
    ) -> None:
        self.synchronize, self.start_events = synchronize, start_events

    @classmethod
    def for_cupy(cls, cupy: Any) -> Clock:
        cuda = cupy.cuda
        if not (hasattr(cuda, "Event") and hasattr(cuda, "get_elapsed_time")):
            return cls(cuda.runtime.deviceSynchronize, None)

        def start_events() -> Callable[[], float]:
            start, end = cuda.Event(), cuda.Event()
            start.record()

            def stop() -> float:
                end.record()
                end.synchronize()
                return float(cuda.get_elapsed_time(start, end))

            return stop

        return cls(cuda.runtime.deviceSynchronize, start_events)

    @classmethod
    def for_torch(cls, torch: Any) -> Clock:
        def start_events() -> Callable[[], float]:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()

            def stop() -> float:
                end.record()
                end.synchronize()
                return float(start.elapsed_time(end))

            return stop

        return cls(torch.cuda.synchronize, start_events)

    def time(self, function: Callable[[], Any]) -> tuple[float, float, float | None]:
        """``(wall ms, issue ms, GPU ms or None)`` of one call of ``function``."""
        self.synchronize()
        stop = self.start_events() if self.start_events else None
        start = time.perf_counter()
        function()
        issued = time.perf_counter()
        gpu = stop() if stop else None
        self.synchronize()
        done = time.perf_counter()
        return (done - start) * 1e3, (issued - start) * 1e3, gpu


def _stats(samples: list[float]) -> dict[str, Any]:
    return {"median": median(samples), "samples": samples}


def time_pass(
    function: Callable[[], Any], clock: Clock, steps: int, repeats: int, warmup: int
) -> dict[str, Any]:
    """Wall, issue and GPU time of ``function`` (ms per call; per step in us), after warm-up."""
    for _ in range(warmup):
        function()
    clock.synchronize()
    wall, issue, gpu = [], [], []
    for _ in range(repeats):
        w, i, g = clock.time(function)
        wall.append(w)
        issue.append(i)
        if g is not None:
            gpu.append(g)
    gpu_stats = _stats(gpu) if gpu else None
    return {
        "wall_ms": _stats(wall),
        "issue_ms": _stats(issue),
        "gpu_ms": gpu_stats,
        "issue_us_per_step": median(issue) * 1e3 / steps,
        "gpu_us_per_step": None if gpu_stats is None else gpu_stats["median"] * 1e3 / steps,
    }


def _errors(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: relative_error(outputs[name], reference[name]) for name in outputs}


def measure_case(calls: Any, clock: Clock, reference: dict, steps: int, args: Any, limit: float):
    """Forward and forward+backward timings and the errors of one path under one setting."""
    try:
        case = {
            "forward": time_pass(calls.forward, clock, steps, args.repeats, args.warmup),
            "forward_backward": time_pass(
                calls.forward_backward, clock, steps, args.repeats, args.warmup
            ),
        }
        errors = _errors(calls.outputs(), reference)
    except Exception as error:  # one broken path must not hide the others' figures
        return {"error": f"{type(error).__name__}: {error}", "max_rel_error": None,
                "accuracy_ok": False}  # fmt: skip
    worst = max(errors.values())
    return {**case, "rel_errors": errors, "max_rel_error": worst, "accuracy_ok": worst <= limit}


def measure_size(engine, cupy, torch, size, args) -> dict[str, Any]:
    """Every path under both TF32 settings for one problem size."""
    problem = make_problem(size)
    reference = reference_outputs(engine, problem)
    arrays = {name: cupy.asarray(value) for name, value in problem.items()}
    steps = size["T"]
    result: dict[str, Any] = {**size, "dtype": "float32"}
    for setting, on in TF32_SETTINGS.items():
        cases: dict[str, Any] = {}
        with tf32_mode(cupy, torch, on):
            clock = Clock.for_cupy(cupy)
            for path, options in PATHS.items():
                calls = EngineCalls(engine, arrays, **options)
                cases[path] = measure_case(
                    calls, clock, reference, steps, args, ACCURACY_LIMITS[setting]
                )
            if torch is not None:
                try:
                    lstm = TorchLSTM(torch, problem)
                    case = measure_case(
                        lstm, Clock.for_torch(torch), reference, steps, args,
                        ACCURACY_LIMITS[setting],
                    )  # fmt: skip
                except Exception as error:  # no cuDNN figures, the rest still stands
                    case = {"error": f"{type(error).__name__}: {error}", "max_rel_error": None}
                case.pop("accuracy_ok", None)  # reported, not judged: not xplstm's arithmetic
                cases[CUDNN] = case
        result[setting] = cases
    result["ratios"] = {setting: size_ratios(result[setting]) for setting in TF32_SETTINGS}
    return result


# ------------------------------------------------------------------------------ launch counting


def stand_in_counter(cupy: Any) -> Callable[[], int] | None:
    """Launches so far on the stand-in (ElementwiseKernel and RawKernel launches, raw cuBLAS
    GEMMs, graph replays included), or ``None`` when ``cupy`` keeps no such counters."""
    kernels = getattr(cupy, "kernels", None)
    raw = getattr(cupy, "raw_kernels", None)
    calls = getattr(getattr(cupy.cuda, "cublas", None), "calls", None)
    if not on_stand_in(cupy) or kernels is None or raw is None or calls is None:
        return None

    def total() -> int:
        launched = sum(kernel.launches for kernel in kernels)
        return launched + sum(kernel.launches for kernel in raw) + sum(calls.values())

    return total


def profiler_counter(torch: Any, synchronize: Callable[[], None]):
    """``count(function) -> (kernels, kernel us)`` from torch's CUPTI profiler: every CUDA
    kernel the process ran during ``function`` (CuPy's and cuBLAS's too, graph nodes too)."""
    from torch.profiler import ProfilerActivity, profile

    def count(function: Callable[[], Any]) -> tuple[int | None, float | None]:
        synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as profiler:
            function()
            synchronize()
        kernels = [
            event
            for event in profiler.events()
            if event.device_type == torch.autograd.DeviceType.CUDA
            and not event.name.startswith(("Memcpy", "Memset"))
        ]
        if not kernels:  # every path launches kernels: the profiler did not see them
            return None, None
        try:
            busy = sum(float(event.time_range.elapsed_us()) for event in kernels)
        except (AttributeError, TypeError):
            busy = None
        return len(kernels), busy

    return count


def launches_per_step(engine: Any, cupy: Any, torch: Any, size: dict[str, int]) -> dict:
    """Kernel launches per time step of each path: the difference between two sequence lengths
    divided by the extra steps (work done once per call cancels)."""
    short, long = LAUNCH_COUNT_STEPS
    counter = stand_in_counter(cupy)
    synchronize = cupy.cuda.runtime.deviceSynchronize
    if counter is not None:
        source = "stand-in counters"
        method = (
            "the stand-in's counters (ElementwiseKernel and RawKernel launches, raw cuBLAS "
            "GEMMs, graph replays included) over one call; cupy.matmul and ufuncs are not "
            "counted, so the cupy loops' counts are None"
        )

        def count(function: Callable[[], Any]) -> tuple[int, None]:
            before = counter()
            function()
            return counter() - before, None

        counted = ("plan", "graph")
    elif torch is not None:
        source = "torch.profiler (CUPTI)"
        method = (
            "CUDA kernels (not memcpy/memset) counted by torch.profiler (CUPTI) over one call, "
            "with their summed durations (kernel_us: GPU busy time per step)"
        )
        count = profiler_counter(torch, synchronize)
        counted = (*PATHS, CUDNN)
    else:
        return {
            "source": None,
            "error": "no launch counter: not the stand-in, and torch's profiler needs torch "
            "with CUDA (CuPy has no launch-counting profiler)",
            "paths": {},
        }
    measured: dict[str, dict[str, list]] = {}

    def record(path: str, name: str, function: Callable[[], Any]) -> None:
        launched, busy = count(function)
        measured.setdefault(path, {}).setdefault(name, []).append((launched, busy))

    try:
        for steps in (short, long):
            problem = make_problem({**size, "T": steps}, seed=1)
            arrays = {name: cupy.asarray(value) for name, value in problem.items()}
            for path, options in PATHS.items():
                if path not in counted:
                    continue
                calls = EngineCalls(engine, arrays, **options)
                calls.forward_backward()  # compile outside the counted region
                record(path, "forward", calls.forward)
                saved = calls.forward()[3]
                record(path, "backward", lambda calls=calls, saved=saved: calls.backward(saved))
            if CUDNN in counted:
                reference = TorchLSTM(torch, problem)
                reference.forward_backward()
                record(CUDNN, "forward", reference.forward)
                record(CUDNN, "forward_backward", reference.forward_backward)
    except Exception as error:  # a counter that fails: say why, keep the timings
        return {"source": source, "error": f"{type(error).__name__}: {error}", "paths": {}}
    paths: dict[str, Any] = {}
    for path in (*PATHS, CUDNN):
        if path not in measured:
            paths[path] = None
            continue
        entry: dict[str, Any] = {}
        for name, ((first, busy_first), (second, busy_second)) in measured[path].items():
            entry[name] = _per_step(first, second)
            if source != "stand-in counters":
                entry[f"{name}_kernel_us"] = _per_step(busy_first, busy_second)
        paths[path] = entry
    return {"source": source, "method": method, "steps": [short, long], "paths": paths}


def _per_step(short_count: float | None, long_count: float | None) -> float | None:
    if short_count is None or long_count is None:
        return None
    return (long_count - short_count) / (LAUNCH_COUNT_STEPS[1] - LAUNCH_COUNT_STEPS[0])


# ------------------------------------------------------------------------------------- report


def environment(cupy: Any, torch: Any, torch_problem: str | None) -> dict[str, Any]:
    device = cupy.cuda.Device()
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    gpu = measured_on_gpu(cupy)
    return {
        "device": name if gpu else STAND_IN_DEVICE,
        "measured_on_gpu": gpu,
        "warning": None if gpu else STAND_IN_WARNING,
        "compute_capability": device.compute_capability,
        "cupy_version": cupy.__version__,
        "cuda_runtime_version": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver_version": cupy.cuda.runtime.driverGetVersion(),
        "numpy_version": np.__version__,
        "torch_version": None if torch is None else torch.__version__,
        "cudnn_version": None if torch is None else torch.backends.cudnn.version(),
        "torch_problem": torch_problem,
        "python": platform.python_version(),
    }


def method(args: argparse.Namespace) -> dict[str, str]:
    return {
        "wall_ms": f"host clock from the call until the device is synchronized, ms; median of "
        f"{args.repeats} calls after {args.warmup} warm-up calls",
        "issue_ms": "host clock from the call until it returns, without synchronizing (the "
        "time to enqueue the work; the host also waits whenever the driver's launch queue is "
        "full); issue_us_per_step is its median / T. The graph loop synchronizes inside the "
        "call (capture stream), so its issue time includes the GPU's",
        "gpu_ms": "CUDA events recorded on the current stream before and after the call, ms "
        "(None where the device has no timing events); gpu_us_per_step is its median / T. "
        "Includes the input projection and weight-gradient GEMMs, and any time the GPU waits "
        "for the host",
        "forward_backward": "lstm_forward then lstm_backward (torch: forward and backward with "
        "autograd); per-step figures are divided by T, not 2T",
        "cudnn_forward": "training mode (autograd on): like xplstm's, it keeps activations",
        "accuracy": "max over outputs and gradients of max|x - ref| / max|ref|, ref = the "
        "engine on NumPy float64 with the same float32 inputs; judged for xplstm's paths only",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cupy = require_gpu()
    if refuses_output(args.output, measured_on_gpu(cupy)):
        raise SystemExit(
            f"gpu_report: not on a GPU ({'the host stand-in' if on_stand_in(cupy) else 'no CuPy'}"
            f"); refusing to write into {RESULTS}: pass --output elsewhere"
        )
    from xplstm import engine

    torch, torch_problem = optional_torch()
    if torch_problem:
        print(f"gpu_report: no cuDNN comparison: {torch_problem}", file=sys.stderr)
    started = time.perf_counter()
    gpu_tests = None if args.skip_tests else run_gpu_tests(args.tests_timeout, on_stand_in(cupy))
    sizes_measured = SIZES[:1] if args.quick else SIZES
    sizes = [measure_size(engine, cupy, torch, size, args) for size in sizes_measured]
    report = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **environment(cupy, torch, torch_problem),
        **git_commit(),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "method": method(args),
        "paths": {**PATHS, CUDNN: {"module": "torch.nn.LSTM", "backend": "cuDNN", "bias_hh": 0}},
        "tf32_controls": tf32_controls(cupy, torch, torch_problem),
        "accuracy_limits": ACCURACY_LIMITS,
        **summarize(sizes, gpu_tests),
        "launches_per_step": launches_per_step(engine, cupy, torch, SIZES[0]),
        "gpu_tests": gpu_tests,
        "sizes": sizes,
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_report(args.output, report)
    print(f"wrote {args.output}")
    print(format_table(report))
    failed = any(tests_failed(result) for result in (gpu_tests or {}).values())
    return 1 if failed or report["accuracy_ok"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
