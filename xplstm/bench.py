"""``xplstm bench``: xplstm side by side with its peers, in one process.

Peers, each run on the same weights and data:

- ``xplstm``: the :class:`xplstm.LSTM` layer (NumPy; CuPy too when a GPU is usable), or with
  ``--cell gru`` the :class:`xplstm.GRU` layer, or with ``--proj-size P`` the LSTM with
  projections;
- ``course loop``: the step-by-step course formulation (per-step concatenation, four gate
  products, fresh arrays every step), on the same backend (plain LSTM only: the course has
  neither GRU nor projections);
- ``gemm floor``: the engine's matrix products alone, without the pointwise work: the limit a
  NumPy implementation can approach;
- ``torch``: ``torch.nn.LSTM`` (with the same ``proj_size``) or ``torch.nn.GRU`` when torch is
  installed (oneDNN/MKL on CPU, cuDNN on CUDA).

With ``--variants`` a further case times the LSTM variants torch has no fast path for (see
:data:`VARIANTS`) next to the plain LSTM of the same sizes, in training mode, so that the cost of
drawing the masks counts.

Times are medians over interleaved rounds (every peer once per round, in turn), with a pause
before each timed call so no library's idle worker threads steal the next one's cores: OpenBLAS's
threads spin for 2**28 cycles after a call (``OPENBLAS_THREAD_TIMEOUT``, about 0.1 s at 2.6
GHz), and with a 0.05 s pause torch's float32 forward measured 1.6x slower on the 2-core Ice
Lake than with the spinning cut short, so the default pause is 0.25 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .atomic import write_json_atomic
from .backend import asnumpy
from .gru import GRU
from .layer import LSTM
from .numerics import sigmoid
from .recurrent import RecurrentLayer
from .training.device import cpu_model, pointwise_paths

__all__ = ["VARIANTS", "main", "measure_inference_memory", "measure_memory", "run"]

VARIANTS: dict[str, dict[str, Any]] = {
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout_cell": 0.15, "zoneout_hidden": 0.05},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "peephole": {"peephole": True},
    "all but peephole": {
        "layer_norm": True, "zoneout_cell": 0.15, "zoneout_hidden": 0.05,
        "recurrent_dropout": 0.25,
    },
}  # fmt: skip
"""The ``--variants`` peers: ``xplstm.LSTM`` keyword arguments by name."""


@dataclass
class Case:
    """One benchmark configuration."""

    backend: str  # "numpy" or "cupy"
    dtype: str
    input_size: int
    hidden_size: int
    batch: int
    steps: int
    times_ms: dict[str, float] = field(default_factory=dict)
    cell: str = "lstm"  # "lstm", "gru", or "lstm variants" (the plain LSTM and VARIANTS)
    proj_size: int = 0  # LSTM only

    @property
    def label(self) -> str:
        cell = self.cell if not self.proj_size else f"lstm proj_size={self.proj_size}"
        if self.cell == "lstm variants":
            cell += " (training mode)"
        return (
            f"{cell} {self.backend} {self.dtype} n_x={self.input_size} n_a={self.hidden_size} "
            f"m={self.batch} T={self.steps}"
        )


def _synchronizer(xp: Any) -> Callable[[], None]:
    if xp is np:
        return lambda: None
    return xp.cuda.get_current_stream().synchronize


def _course_style(params: dict[str, Any], xp: Any) -> tuple[Callable, Callable]:
    """The course's step-by-step LSTM, as learners write it (layout ``(n, m)`` per step)."""

    def forward(x: Any, a0: Any) -> list:
        a_prev, c_prev = a0, xp.zeros_like(a0)
        caches = []
        for t in range(x.shape[2]):
            concat = xp.concatenate([a_prev, x[:, :, t]], axis=0)
            ft = sigmoid(params["Wf"] @ concat + params["bf"], xp)
            it = sigmoid(params["Wi"] @ concat + params["bi"], xp)
            cct = xp.tanh(params["Wc"] @ concat + params["bc"])
            c_next = ft * c_prev + it * cct
            ot = sigmoid(params["Wo"] @ concat + params["bo"], xp)
            a_next = ot * xp.tanh(c_next)
            caches.append((a_next, c_next, a_prev, c_prev, ft, it, cct, ot, concat))
            a_prev, c_prev = a_next, c_next
        return caches

    def backward(da: Any, caches: list) -> dict[str, Any]:
        n_a = caches[0][0].shape[0]
        grads = {key: xp.zeros_like(value) for key, value in params.items()}
        dx = xp.empty((caches[0][8].shape[0] - n_a, da.shape[1], da.shape[2]), da.dtype)
        da_prev = xp.zeros_like(caches[0][0])
        dc_prev = xp.zeros_like(da_prev)
        for t in reversed(range(len(caches))):
            a_next, c_next, a_prev, c_prev, ft, it, cct, ot, concat = caches[t]
            da_next = da[:, :, t] + da_prev
            tanh_c = xp.tanh(c_next)
            dc = dc_prev + da_next * ot * (1 - tanh_c**2)
            gate_grads = {
                "o": da_next * tanh_c * ot * (1 - ot),
                "c": dc * it * (1 - cct**2),
                "i": dc * cct * it * (1 - it),
                "f": dc * c_prev * ft * (1 - ft),
            }
            dconcat: Any = 0
            for gate, dz in gate_grads.items():
                grads[f"W{gate}"] += dz @ concat.T
                grads[f"b{gate}"] += dz.sum(axis=1, keepdims=True)
                dconcat = dconcat + params[f"W{gate}"].T @ dz
            da_prev, dx[:, :, t] = dconcat[:n_a], dconcat[n_a:]
            dc_prev = dc * ft
        return grads

    return forward, backward


def _course_parameters(model: LSTM) -> dict[str, Any]:
    """The layer's weights in the course's dict layout (gates i, f, g, o -> Wi, Wf, Wc, Wo)."""
    xp, hidden = model.xp, model.hidden_size
    state = model.state_dict()
    weight = xp.concatenate([state["weight_hh_l0"], state["weight_ih_l0"]], axis=1)
    bias = state["bias_ih_l0"] + state["bias_hh_l0"]
    params = {}
    for k, gate in enumerate("ifco"):
        rows = slice(k * hidden, (k + 1) * hidden)
        params[f"W{gate}"] = xp.ascontiguousarray(weight[rows])
        params[f"b{gate}"] = bias[rows].reshape(hidden, 1)
    return params


def _gemm_floor(model: RecurrentLayer, x: Any) -> tuple[Callable, Callable]:
    """The engine's matrix products alone: input projection, one recurrent GEMM per step (and
    the projection GEMM with ``proj_size``), and in backward the same per step plus the weight
    and input gradient GEMMs."""
    xp, hidden, out = model.xp, model.hidden_size, model.output_size
    steps, batch, n_in = x.shape
    state = model.state_dict()
    w_ih, w_hh, w_hr = state["weight_ih_l0"], state["weight_hh_l0"], state.get("weight_hr_l0")
    width = w_ih.shape[0]  # G * H gates
    gates = xp.empty((steps, batch, width), dtype=x.dtype)
    h = xp.zeros((steps, batch, out), dtype=x.dtype)
    cell_output = xp.zeros((steps, batch, hidden), dtype=x.dtype)
    recurrent = xp.empty((batch, width), dtype=x.dtype)
    dh = xp.empty((batch, out), dtype=x.dtype)
    d_cell = xp.empty((batch, hidden), dtype=x.dtype)
    flat_x = x.reshape(steps * batch, n_in)
    flat_gates = gates.reshape(steps * batch, width)
    w_hh_t = xp.ascontiguousarray(w_hh.T)  # the layout the engine's recurrent GEMMs use

    def forward() -> None:
        xp.matmul(flat_x, w_ih.T, out=flat_gates)
        for t in range(steps):
            xp.matmul(h[t - 1] if t else h[0], w_hh_t, out=recurrent)
            if w_hr is not None:
                xp.matmul(cell_output[t], w_hr.T, out=h[t])

    def forward_backward() -> None:
        forward()
        for t in range(steps - 1, -1, -1):
            if w_hr is not None:
                xp.matmul(dh, w_hr, out=d_cell)
            xp.matmul(gates[t], w_hh, out=dh)
        xp.matmul(flat_gates, w_ih)
        xp.matmul(flat_gates.T, flat_x)
        xp.matmul(flat_gates.T, h.reshape(steps * batch, out))
        if w_hr is not None:
            xp.matmul(h.reshape(steps * batch, out).T, cell_output.reshape(steps * batch, hidden))

    return forward, forward_backward


def _torch_peer(
    model: RecurrentLayer, x: Any, dy: Any, backend: str
) -> tuple[Callable, Callable] | None:
    try:
        import torch
    except ImportError:
        return None
    device = "cuda" if backend == "cupy" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return None
    dtype = getattr(torch, model.dtype.name)
    sizes = (model.input_size, model.hidden_size)
    module: Any = (
        torch.nn.GRU(*sizes)
        if isinstance(model, GRU)
        else torch.nn.LSTM(*sizes, proj_size=model.proj_size)
    )
    lstm = module.to(device=device, dtype=dtype)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            getattr(lstm, name).copy_(torch.as_tensor(asnumpy(value)))
    x_torch = torch.as_tensor(asnumpy(x)).to(device)
    dy_torch = torch.as_tensor(asnumpy(dy)).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.no_grad():
            lstm(x_torch)
        sync()

    def forward_backward() -> None:
        x_grad = x_torch.detach().requires_grad_(True)
        out, _ = lstm(x_grad)
        out.backward(dy_torch)
        sync()

    return forward, forward_backward


def _case_data(case: Case, output_size: int, xp: Any, seed: int) -> tuple[Any, Any]:
    """The inputs ``(T, m, n_x)`` and output gradients ``(T, m, output_size)`` of a case."""
    rng = np.random.default_rng(seed)
    shape = (case.steps, case.batch)
    x = xp.asarray(rng.standard_normal((*shape, case.input_size)).astype(case.dtype))
    dy = xp.asarray(rng.standard_normal((*shape, output_size)).astype(case.dtype))
    return x, dy


def _layer_peer(model: RecurrentLayer, x: Any, dy: Any) -> tuple[Callable, Callable]:
    """A layer's forward and forward-backward, synchronized."""
    sync = _synchronizer(model.xp)

    def forward() -> None:
        model(x)
        sync()

    def forward_backward() -> None:
        model(x)
        model.backward(dy)
        sync()

    return forward, forward_backward


def _variant_peers(case: Case, seed: int) -> dict[str, Callable[[], None]]:
    """The plain LSTM and each of :data:`VARIANTS`, on the same sizes, seed and data."""
    device = "cuda" if case.backend == "cupy" else "cpu"
    sizes = (case.input_size, case.hidden_size)
    peers = {}
    for name, options in {"plain": {}, **VARIANTS}.items():
        model = LSTM(*sizes, dtype=case.dtype, device=device, seed=seed, **options)
        x, dy = _case_data(case, model.output_size, model.xp, seed)
        peers[f"{name} fwd"], peers[f"{name} fwd+bwd"] = _layer_peer(model, x, dy)
    return peers


def _peers(case: Case, seed: int) -> dict[str, Callable[[], None]]:
    if case.cell == "lstm variants":
        return _variant_peers(case, seed)
    device = "cuda" if case.backend == "cupy" else "cpu"
    sizes = (case.input_size, case.hidden_size)
    model: RecurrentLayer
    if case.cell == "gru":
        model = GRU(*sizes, dtype=case.dtype, device=device, seed=seed)
    else:
        model = LSTM(*sizes, proj_size=case.proj_size, dtype=case.dtype, device=device, seed=seed)
    x, dy = _case_data(case, model.output_size, model.xp, seed)
    sync = _synchronizer(model.xp)
    xplstm_forward, xplstm_forward_backward = _layer_peer(model, x, dy)
    floor_forward, floor_forward_backward = _gemm_floor(model, x)

    def floor_fwd() -> None:
        floor_forward()
        sync()

    def floor_fwd_bwd() -> None:
        floor_forward_backward()
        sync()

    peers = {
        "xplstm fwd": xplstm_forward,
        "xplstm fwd+bwd": xplstm_forward_backward,
        "gemm floor fwd": floor_fwd,
        "gemm floor fwd+bwd": floor_fwd_bwd,
    }
    if isinstance(model, LSTM) and not model.proj_size:
        peers["course loop fwd"], peers["course loop fwd+bwd"] = _course_peer(model, x, dy)
    torch_peer = _torch_peer(model, x, dy, case.backend)
    if torch_peer is not None:
        peers["torch fwd"], peers["torch fwd+bwd"] = torch_peer
    return peers


def _course_peer(model: LSTM, x: Any, dy: Any) -> tuple[Callable, Callable]:
    """The course loop on the layer's weights and data, in the course's ``(n, m, T)`` layout."""
    xp = model.xp
    course_forward, course_backward = _course_style(_course_parameters(model), xp)
    x_course = xp.ascontiguousarray(x.transpose(2, 1, 0))
    dy_course = xp.ascontiguousarray(dy.transpose(2, 1, 0))
    a0 = xp.zeros((model.hidden_size, x.shape[1]), dtype=x.dtype)
    sync = _synchronizer(xp)

    def course_fwd() -> None:
        course_forward(x_course, a0)
        sync()

    def course_fwd_bwd() -> None:
        course_backward(dy_course, course_forward(x_course, a0))
        sync()

    return course_fwd, course_fwd_bwd


def time_interleaved(
    peers: dict[str, Callable[[], None]], rounds: int, pause: float, warmup: int = 2
) -> dict[str, float]:
    """Median milliseconds per peer over ``rounds`` interleaved rounds."""
    for run_once in peers.values():
        for _ in range(warmup):
            run_once()
    samples: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(rounds):
        for name, run_once in peers.items():
            time.sleep(pause)
            start = time.perf_counter()
            run_once()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_memory(
    input_size: int = 64, hidden_size: int = 256, batch: int = 32, steps: int = 400, seed: int = 0
) -> dict[str, float]:
    """Peak traced memory (tracemalloc) of one float64 forward+backward on NumPy.

    Returns the peak, the budget ``T * m * (6 * n_a + n_x) * itemsize`` (four gate activations,
    cell state and output per step, plus dx) and their ratio.
    """
    model = LSTM(input_size, hidden_size, dtype="float64", seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, batch, input_size))
    dy = rng.standard_normal((steps, batch, hidden_size))
    # No warm-up: the layer keeps its forward buffers between calls, so the first call is the one
    # that allocates everything a training step needs.
    tracemalloc.start()
    try:
        model(x)
        model.backward(dy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    budget = steps * batch * (6 * hidden_size + input_size) * 8
    return {"peak_bytes": peak, "budget_bytes": budget, "ratio": peak / budget}


def measure_inference_memory(
    input_size: int = 64, hidden_size: int = 256, batch: int = 32, steps: int = 400, seed: int = 0
) -> dict[str, float]:
    """Peak traced memory (tracemalloc) of one float64 forward under :class:`xplstm.no_grad`.

    Returns the peak, the output's bytes ``T * m * n_a * 8`` and their ratio (about 1: the
    engine keeps nothing and projects a chunk of steps at a time).
    """
    from .grad_mode import no_grad

    model = LSTM(input_size, hidden_size, dtype="float64", seed=seed)
    x = np.random.default_rng(seed).standard_normal((steps, batch, input_size))
    tracemalloc.start()
    try:
        with no_grad():
            y, _ = model(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"peak_bytes": peak, "output_bytes": y.nbytes, "ratio": peak / y.nbytes}


def _blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see the BLAS kernel)"
    pools = [
        f"{info.get('internal_api')} {info.get('version')} {info.get('architecture', '')} "
        f"threads={info.get('num_threads')}"
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return "; ".join(pools) or "none found"


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    return f"torch {torch.__version__}"


def _limit_threads(threads: int) -> Any:
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def _cupy_usable() -> bool:
    from .devices import gpu_unavailable_reason

    return gpu_unavailable_reason() is None


def run(
    sizes: list[tuple[int, int, int, int]],
    dtypes: list[str],
    backends: list[str],
    rounds: int,
    pause: float,
    seed: int = 0,
    cells: tuple[tuple[str, int], ...] = (("lstm", 0),),
) -> list[Case]:
    """Time every peer for every (cell, backend, dtype, size); returns the filled-in cases.

    ``cells`` are ``(cell, proj_size)`` pairs: ``("lstm", 0)``, ``("lstm", P)``, ``("gru", 0)``,
    ``("lstm variants", 0)``.
    """
    cases = []
    for cell, proj_size in cells:
        for backend in backends:
            for dtype in dtypes:
                for input_size, hidden_size, batch, steps in sizes:
                    case = Case(backend, dtype, input_size, hidden_size, batch, steps)
                    case.cell, case.proj_size = cell, proj_size
                    case.times_ms = time_interleaved(_peers(case, seed), rounds, pause)
                    cases.append(case)
    return cases


def _ratio_rows(case: Case) -> list[tuple[str, float]]:
    times = case.times_ms
    if case.cell == "lstm variants":
        return [
            (f"{name} {kind} / plain", times[f"{name} {kind}"] / times[f"plain {kind}"])
            for name in VARIANTS
            for kind in ("fwd", "fwd+bwd")
        ]
    rows = []
    for kind in ("fwd", "fwd+bwd"):
        ours = times[f"xplstm {kind}"]
        rows.append((f"xplstm {kind} / gemm floor", ours / times[f"gemm floor {kind}"]))
        if f"course loop {kind}" in times:
            rows.append((f"xplstm {kind} / course loop", ours / times[f"course loop {kind}"]))
        if f"torch {kind}" in times:
            rows.append((f"xplstm {kind} / torch", ours / times[f"torch {kind}"]))
    return rows


def format_table(
    cases: list[Case],
    memory: dict[str, float] | None,
    inference_memory: dict[str, float] | None = None,
) -> str:
    lines = []
    for case in cases:
        lines.append(case.label)
        for name, value in case.times_ms.items():
            lines.append(f"  {name:<26} {value:10.2f} ms")
        for name, value in _ratio_rows(case):
            lines.append(f"  {name:<34} {value:6.2f}x")
    if memory is not None:
        lines.append(
            f"peak memory fwd+bwd (float64 n_x=64 n_a=256 m=32 T=400): "
            f"{memory['peak_bytes'] / 2**20:.1f} MiB = {memory['ratio']:.2f}x the budget "
            f"T*m*(6*n_a+n_x)*8 = {memory['budget_bytes'] / 2**20:.1f} MiB"
        )
    if inference_memory is not None:
        lines.append(
            f"peak memory fwd under xplstm.no_grad() (same size): "
            f"{inference_memory['peak_bytes'] / 2**20:.1f} MiB = "
            f"{inference_memory['ratio']:.2f}x the output's "
            f"{inference_memory['output_bytes'] / 2**20:.1f} MiB"
        )
    return "\n".join(lines)


def plot(cases: list[Case], path: str) -> None:
    """Bar chart of every peer's time per case, written to ``path`` (PNG, SVG, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(cases), 1, figsize=(9, 3.2 * len(cases)), squeeze=False)
    for axis, case in zip(axes[:, 0], cases, strict=True):
        names = list(case.times_ms)
        axis.barh(names, [case.times_ms[name] for name in names], color="tab:blue")
        axis.set_xlabel("milliseconds (median)")
        axis.set_title(case.label, fontsize=9)
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _size(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"--size must be four positive integers n_x,n_a,m,T, got {text!r}"
        )
    return values  # type: ignore[return-value]


DESCRIPTION = """\
Time xplstm next to its peers, on the same weights and data, in one process:
  xplstm          the xplstm.LSTM layer (NumPy; CuPy too when a GPU is usable), or
                  xplstm.GRU (--cell gru), or the LSTM with projections (--proj-size P)
  course loop     the course's step-by-step formulation on the same backend (plain LSTM)
  gemm floor      the engine's matrix products alone (the limit for NumPy)
  torch           torch.nn.LSTM (same proj_size) or torch.nn.GRU, when torch is installed
With --variants, one more case: the plain LSTM next to layer_norm, zoneout, recurrent_dropout,
peephole and all but peephole, in training mode (masks drawn every forward).

Times are medians over interleaved rounds (each peer once per round, a short pause before
each call); ratios come from the same run. Then the peak traced memory (tracemalloc) of a
float64 training step and of a forward under xplstm.no_grad() at n_x=64 n_a=256 m=32 T=400.
"""


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    if parser is None:
        from .cli import OneLineErrorParser  # errors in one line, as in every xplstm command

        parser = OneLineErrorParser(
            prog="xplstm bench",
            description=DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    parser.add_argument(
        "--size",
        type=_size,
        action="append",
        metavar="N_X,N_A,M,T",
        help="input size, hidden size, batch, steps (repeatable; default: 128,256,64,100)",
    )
    parser.add_argument(
        "--cell", choices=["lstm", "gru"], action="append",
        help="repeatable (default: lstm)",
    )  # fmt: skip
    parser.add_argument(
        "--proj-size", type=int, default=0, metavar="P",
        help="also time the LSTM with projections of size P (0 < P < hidden size)",
    )  # fmt: skip
    parser.add_argument(
        "--variants", action="store_true",
        help="also time the LSTM with " + ", ".join(VARIANTS) + " against the plain LSTM",
    )  # fmt: skip
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], action="append",
        help="repeatable (default: both)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=["numpy", "cupy"], action="append",
        help="repeatable (default: numpy, plus cupy when a GPU is usable)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=15, metavar="N",
        help="interleaved rounds; times are their medians (default: 15)",
    )  # fmt: skip
    parser.add_argument(
        "--pause", type=float, default=0.25, metavar="SECONDS",
        help="pause before each timed call, longer than idle BLAS threads spin (default: 0.25)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=2, metavar="N", help="BLAS and torch threads (default: 2)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--plot", metavar="FILE", help="also draw the times (PNG, SVG, ...; needs matplotlib)"
    )
    return parser


def main(argv: list[str] | None = None, args: argparse.Namespace | None = None) -> int:
    """Entry point of ``xplstm bench``; returns the exit status."""
    parser = build_parser()
    args = args or parser.parse_args(argv)
    for option, value in (("--rounds", args.rounds), ("--threads", args.threads)):
        if value < 1:
            parser.error(f"{option} must be at least 1, got {value}")
    if args.pause < 0:
        parser.error(f"--pause must be >= 0, got {args.pause}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:  # before minutes of timing
        parser.error(
            '--plot needs matplotlib, which is not installed (pip install "xplstm[bench]")'
        )
    sizes = args.size or [(128, 256, 64, 100)]
    if args.proj_size < 0 or any(args.proj_size >= size[1] for size in sizes if args.proj_size):
        parser.error(f"--proj-size must be between 1 and the hidden size - 1, got {args.proj_size}")
    cells = tuple((cell, 0) for cell in (args.cell or ["lstm"]))
    if args.proj_size:
        cells += (("lstm", args.proj_size),)
    if args.variants:
        cells += (("lstm variants", 0),)
    dtypes = args.dtype or ["float32", "float64"]
    backends = args.backend or (["numpy", "cupy"] if _cupy_usable() else ["numpy"])
    limits = _limit_threads(args.threads)
    try:
        cases = run(sizes, dtypes, backends, args.rounds, args.pause, cells=cells)
        memory = None if args.no_memory else measure_memory()
        inference_memory = None if args.no_memory else measure_inference_memory()
    finally:
        if limits is not None:
            limits.restore_original_limits()
    header = [
        f"xplstm {__version__}, numpy {np.__version__}, {_torch_version()}, "
        f"python {platform.python_version()}, {platform.machine()} with {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"CPU: {cpu_model()}; BLAS: {_blas_description()}; threads={args.threads}",
        *pointwise_paths(),
    ]
    if os.environ.get("OPENBLAS_CORETYPE"):
        header.append(
            f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} forces that kernel"
        )
    print("\n".join(header))
    print(format_table(cases, memory, inference_memory))
    if args.json:
        report = {
            "header": header,
            "cases": [{**case.__dict__, "ratios": dict(_ratio_rows(case))} for case in cases],
            "memory": memory,
            "inference_memory": inference_memory,
        }
        write_json_atomic(args.json, report, indent=2)
    if args.plot:
        plot(cases, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
