"""GPU report: run the ``gpu`` tests, time xplstm (fused and unfused) against cuDNN, check accuracy.

For a machine with a CUDA GPU, CuPy, PyTorch (CUDA build), NumPy and pytest; nothing else is
needed. From the repository root::

    PYTHONPATH=. python benchmarks/gpu_report.py

Times the whole-sequence forward and forward+backward of :mod:`xplstm.engine` on CuPy with the
fused kernels and with the unfused path, and ``torch.nn.LSTM`` (cuDNN) with the same weights;
checks every output against the engine on NumPy float64; writes ``benchmarks/results/gpu.json``
(atomically) and prints a table last. Timings are wall clock between device synchronizations,
after warm-up, median of ``--repeats`` runs. Exits non-zero when no GPU is usable, when a ``gpu``
test fails or when an accuracy check fails (the report is still written in the last two cases).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "gpu.json"
SIZES = (
    {"n_x": 512, "n_a": 512, "m": 64, "T": 100},
    {"n_x": 1024, "n_a": 1024, "m": 64, "T": 25},
)
PATHS = ("fused", "unfused", "cudnn")
TARGETS = {
    "fused_speedup_vs_unfused": 1.5,
    "fwd_ratio_vs_cudnn": 2.0,
    "fwd_bwd_ratio_vs_cudnn": 2.0,
}
# Normwise relative error allowed against float64 for float32 runs (10^4 float32 eps).
ACCURACY_LIMIT = 1e4 * float(np.finfo(np.float32).eps)
LAUNCH_COUNT_STEPS = (8, 16)


# --------------------------------------------------------------------------- arguments, helpers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_report.py",
        description="Run the gpu tests, time xplstm (fused, unfused) against cuDNN, check "
        "accuracy against NumPy float64 and write a JSON report. Needs a CUDA GPU with CuPy "
        "and PyTorch.",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    parser.add_argument("--repeats", type=int, default=25, help="timed runs per case (>= 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per case first")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m gpu")
    parser.add_argument(
        "--tests-timeout", type=float, default=150.0, help="seconds allowed for the gpu tests"
    )
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20 (the report quotes medians of >= 20 runs)")
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


def summarize(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers from the per-size results (ratios from the first size)."""
    first = sizes[0]["timings_ms"]

    def ratio(numerator: str, denominator: str) -> float | None:
        top, bottom = first.get(numerator), first.get(denominator)
        if top is None or bottom is None:
            return None
        return top["median"] / bottom["median"]

    errors = [
        size["max_rel_error"][path]
        for size in sizes
        for path in ("fused", "unfused")
        if size["max_rel_error"].get(path) is not None
    ]
    headline = {
        "max_rel_error": max(errors) if errors else None,
        "fused_speedup_vs_unfused": ratio("unfused_forward", "fused_forward"),
        "fwd_ratio_vs_cudnn": ratio("fused_forward", "cudnn_forward"),
        "fwd_bwd_ratio_vs_cudnn": ratio("fused_forward_backward", "cudnn_forward_backward"),
    }
    met = {}
    for name, target in TARGETS.items():
        value = headline[name]
        above = name == "fused_speedup_vs_unfused"
        met[name] = None if value is None else (value >= target if above else value <= target)
    headline["targets"] = {
        "fused_speedup_vs_unfused": f">= {TARGETS['fused_speedup_vs_unfused']}",
        "fwd_ratio_vs_cudnn": f"<= {TARGETS['fwd_ratio_vs_cudnn']}",
        "fwd_bwd_ratio_vs_cudnn": f"<= {TARGETS['fwd_bwd_ratio_vs_cudnn']}",
    }
    headline["targets_met"] = met
    headline["accuracy_ok"] = None if not errors else max(errors) <= ACCURACY_LIMIT
    return headline


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    use_checkout()
    from xplstm.atomic import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, report, indent=2, sort_keys=False)


def _format(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The closing summary: one row per size and path, then the headline ratios."""
    rows = [f"{'size':<28}{'path':<9}{'forward ms':>12}{'fwd+bwd ms':>12}{'rel err':>10}"]
    for size in report["sizes"]:
        label = f"n_x={size['n_x']} n_a={size['n_a']} m={size['m']} T={size['T']}"
        for path in PATHS:
            forward = size["timings_ms"].get(f"{path}_forward")
            both = size["timings_ms"].get(f"{path}_forward_backward")
            rows.append(
                f"{label:<28}{path:<9}"
                f"{_format(forward and forward['median'], '.3f'):>12}"
                f"{_format(both and both['median'], '.3f'):>12}"
                f"{_format(size['max_rel_error'].get(path), '.1e'):>10}"
            )
            label = ""
    met = report["targets_met"]
    rows += [
        "",
        f"fused speedup vs unfused (forward, first size): "
        f"{_format(report['fused_speedup_vs_unfused'], '.2f')}x "
        f"(target {report['targets']['fused_speedup_vs_unfused']}, "
        f"met: {met['fused_speedup_vs_unfused']})",
        f"xplstm / cuDNN forward: {_format(report['fwd_ratio_vs_cudnn'], '.2f')} "
        f"(target {report['targets']['fwd_ratio_vs_cudnn']}, met: {met['fwd_ratio_vs_cudnn']})",
        f"xplstm / cuDNN forward+backward: {_format(report['fwd_bwd_ratio_vs_cudnn'], '.2f')} "
        f"(target {report['targets']['fwd_bwd_ratio_vs_cudnn']}, "
        f"met: {met['fwd_bwd_ratio_vs_cudnn']})",
        f"max relative error vs float64 (xplstm): {_format(report['max_rel_error'], '.2e')} "
        f"(limit {ACCURACY_LIMIT:.1e})",
    ]
    tests = report.get("gpu_tests")
    if tests:
        rows.append(
            f"gpu tests: {tests['passed']} passed, {tests['failed']} failed, "
            f"{tests['errors']} errors, {tests['skipped']} skipped"
            + (" (timed out)" if tests.get("timed_out") else "")
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


def optional_torch() -> tuple[Any, str | None]:
    """``(torch, None)`` when torch with CUDA is usable, else ``(None, reason)``."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} cannot use CUDA"
    # Like for like with CuPy's float32 GEMMs, which do not use TF32 by default.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch, None


def run_gpu_tests(timeout: float) -> dict[str, Any]:
    """``pytest -m gpu -q`` in a subprocess; counts, exit status and the closing lines."""
    command = [
        sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
        "--continue-on-collection-errors", str(REPO / "tests"),
    ]  # fmt: skip
    path = [str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    start = time.perf_counter()
    try:
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output, returncode, timed_out = result.stdout + result.stderr, result.returncode, False
    except subprocess.TimeoutExpired as error:
        output, returncode, timed_out = _text(error.stdout) + _text(error.stderr), None, True
    counts = parse_pytest_summary(output)
    return {
        **counts,
        "returncode": returncode,
        "timed_out": timed_out,
        "seconds": round(time.perf_counter() - start, 1),
        "tail": output.strip().splitlines()[-15:],
    }


def _text(output: str | bytes | None) -> str:
    """Captured output as text (a timed-out run may hand back bytes)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


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


def xplstm_outputs(engine: Any, xp: Any, problem: dict[str, Any], fused: bool | None) -> dict:
    """Forward and backward through the engine on ``xp``; NumPy arrays by name."""
    arrays = {name: xp.asarray(value) for name, value in problem.items()}
    h, h_n, c_n, saved = engine.lstm_forward(
        arrays["x"], arrays["w_ih"], arrays["w_hh"], arrays["bias"], fused=fused
    )
    h, h_n, c_n = h.copy(), h_n.copy(), c_n.copy()  # backward consumes the saved buffers
    grads = engine.lstm_backward(arrays["dy"], None, None, saved)
    values = (h, h_n, c_n, *grads)
    return {name: _host(value) for name, value in zip(OUTPUT_NAMES, values, strict=True)}


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


def time_call(function: Any, synchronize: Any, repeats: int, warmup: int) -> list[float]:
    """Milliseconds per call, wall clock between device synchronizations, after warm-up."""
    for _ in range(warmup):
        function()
    synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def count_kernels(torch: Any, function: Any, synchronize: Any) -> int | None:
    """CUDA kernels launched by ``function`` (any library), counted by torch's CUPTI profiler."""
    from torch.profiler import ProfilerActivity, profile

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
    return len(kernels) or None


class EngineCalls:
    """The engine's calls on one problem already on the device, as zero-argument functions."""

    def __init__(self, engine: Any, arrays: dict[str, Any], fused: bool) -> None:
        self.engine, self.arrays, self.fused = engine, arrays, fused

    def forward(self) -> Any:
        a = self.arrays
        return self.engine.lstm_forward(a["x"], a["w_ih"], a["w_hh"], a["bias"], fused=self.fused)

    def backward(self, saved: Any) -> Any:
        return self.engine.lstm_backward(self.arrays["dy"], None, None, saved)

    def forward_backward(self) -> Any:
        return self.backward(self.forward()[3])


def launches_per_step(engine: Any, cupy: Any, torch: Any, size: dict[str, int]) -> dict:
    """Kernel launches per time step: the difference between two sequence lengths."""
    if torch is None:
        return {"error": "needs torch's profiler"}
    synchronize = cupy.cuda.runtime.deviceSynchronize
    counts: dict[str, list[int | None]] = {}

    def count(name: str, function: Any) -> None:
        counts.setdefault(name, []).append(count_kernels(torch, function, synchronize))

    short, long = LAUNCH_COUNT_STEPS
    try:
        for steps in (short, long):
            problem = make_problem({**size, "T": steps}, seed=1)
            arrays = {name: cupy.asarray(value) for name, value in problem.items()}
            for fused, label in ((True, "fused"), (False, "unfused")):
                calls = EngineCalls(engine, arrays, fused)
                calls.forward_backward()  # compile outside the counted region
                count(f"{label}_forward", calls.forward)
                saved = calls.forward()[3]
                count(f"{label}_backward", lambda calls=calls, saved=saved: calls.backward(saved))
            reference = TorchLSTM(torch, problem)
            reference.forward_backward()
            count("cudnn_forward", reference.forward)
            count("cudnn_forward_backward", reference.forward_backward)
    except Exception as error:  # profiler unavailable: report why, keep the timings
        return {"error": f"{type(error).__name__}: {error}"}
    per_step: dict[str, Any] = {}
    for name, (first, second) in counts.items():
        per_step[name] = None if None in (first, second) else (second - first) / (long - short)
    per_step["method"] = (
        f"CUDA kernels counted by torch.profiler (CUPTI) at T={short} and T={long}, "
        "difference divided by the extra steps"
    )
    return per_step


def measure_size(engine, cupy, torch, size, repeats, warmup) -> dict[str, Any]:
    """Timings and errors for one problem size."""
    problem = make_problem(size)
    wide = {name: value.astype(np.float64) for name, value in problem.items()}
    reference = xplstm_outputs(engine, np, wide, None)
    synchronize = cupy.cuda.runtime.deviceSynchronize
    arrays = {name: cupy.asarray(value) for name, value in problem.items()}
    timings: dict[str, Any] = {}
    errors: dict[str, float | None] = {}

    def record(label: str, cases: tuple) -> None:
        for name, function in cases:
            samples = time_call(function, synchronize, repeats, warmup)
            timings[f"{label}_{name}"] = {"median": median(samples), "samples": samples}

    for fused, label in ((True, "fused"), (False, "unfused")):
        calls = EngineCalls(engine, arrays, fused)
        record(label, (("forward", calls.forward), ("forward_backward", calls.forward_backward)))
        outputs = xplstm_outputs(engine, cupy, problem, fused)
        errors[label] = max(relative_error(outputs[k], reference[k]) for k in OUTPUT_NAMES)
    if torch is not None:
        lstm = TorchLSTM(torch, problem)
        record("cudnn", (("forward", lstm.forward), ("forward_backward", lstm.forward_backward)))
        outputs = lstm.outputs()
        errors["cudnn"] = max(relative_error(outputs[k], reference[k]) for k in outputs)
    return {**size, "dtype": "float32", "timings_ms": timings, "max_rel_error": errors}


def environment(cupy: Any, torch: Any, torch_problem: str | None) -> dict[str, Any]:
    device = cupy.cuda.Device()
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"]
    return {
        "device": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": device.compute_capability,
        "cupy_version": cupy.__version__,
        "cuda_runtime_version": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver_version": cupy.cuda.runtime.driverGetVersion(),
        "numpy_version": np.__version__,
        "torch_version": None if torch is None else torch.__version__,
        "cudnn_version": None if torch is None else torch.backends.cudnn.version(),
        "torch_problem": torch_problem,
        "tf32": False,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cupy = require_gpu()
    from xplstm import engine

    torch, torch_problem = optional_torch()
    if torch_problem:
        print(f"gpu_report: no cuDNN comparison: {torch_problem}", file=sys.stderr)
    started = time.perf_counter()
    gpu_tests = None if args.skip_tests else run_gpu_tests(args.tests_timeout)
    sizes = [measure_size(engine, cupy, torch, size, args.repeats, args.warmup) for size in SIZES]
    report = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **environment(cupy, torch, torch_problem),
        **git_commit(),
        "timing": f"wall clock between device synchronizations, ms; median of {args.repeats} "
        f"after {args.warmup} warm-up runs",
        "cudnn_forward_mode": "training (autograd on): like xplstm's, it keeps activations",
        "accuracy_limit": ACCURACY_LIMIT,
        **summarize(sizes),
        "launches_per_step": launches_per_step(engine, cupy, torch, SIZES[0]),
        "gpu_tests": gpu_tests,
        "sizes": sizes,
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_report(args.output, report)
    print(f"wrote {args.output}")
    print(format_table(report))
    tests_failed = gpu_tests is not None and (
        gpu_tests["failed"] or gpu_tests["errors"] or gpu_tests["timed_out"]
    )
    return 1 if tests_failed or report["accuracy_ok"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
