"""The CuPy step loops (``cupy``, ``plan``, ``graph``): same results, the launches they promise.

Run on the host stand-in (``tests/kernel_harness``), whose raw cuBLAS and ``RawKernel`` calls
have their real semantics (column-major GEMMs from pointers and leading dimensions, kernels run
for exactly the launched grid), so a wrong leading dimension, transpose flag or grid size in the
plan shows up as a failure here. On a real GPU only the numbers are compared.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, to_numpy
from kernel_harness.cublas import CUBLASError
from kernel_harness.host import LaunchError, host_compiler
from kernel_harness.memory import IllegalAddress
from kernel_harness.stand_in import install_stand_in

from xplstm import engine
from xplstm.cuda import plan

LOOPS = plan.GPU_LOOPS
stand_in = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")


def problem(rng, steps=5, batch=3, n_in=4, hidden=6, dtype=np.float64):
    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {
        "x": normal(steps, batch, n_in),
        "w_ih": normal(4 * hidden, n_in, scale=0.5),
        "w_hh": normal(4 * hidden, hidden, scale=0.5),
        "bias": normal(4 * hidden, scale=0.5),
        "h0": normal(batch, hidden),
        "c0": normal(batch, hidden),
        "dy": normal(steps, batch, hidden),
        "dh_n": normal(batch, hidden),
        "dc_n": normal(batch, hidden),
    }


def run(xp, arrays, loop, lengths=None):
    """Forward and backward through the engine; every result as NumPy."""
    a = {key: xp.asarray(value) for key, value in arrays.items()}
    h, h_n, c_n, saved = engine.lstm_forward(
        a["x"], a["w_ih"], a["w_hh"], a["bias"], a["h0"], a["c0"], lengths=lengths,
        gpu_loop=loop if xp is not np else None,
    )  # fmt: skip
    outputs = {"h": h.copy(), "h_n": h_n, "c_n": c_n}
    names = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "dbias")
    grads = engine.lstm_backward(a["dy"], a["dh_n"], a["dc_n"], saved)
    outputs.update(zip(names, grads, strict=True))
    return {key: to_numpy(value) for key, value in outputs.items()}


def test_loop_choice_reads_the_environment(monkeypatch):
    monkeypatch.delenv("XPLSTM_GPU_LOOP", raising=False)
    assert plan.gpu_loop() == "cupy"
    monkeypatch.setenv("XPLSTM_GPU_LOOP", " Plan ")
    assert plan.gpu_loop() == "plan"
    assert plan.gpu_loop("graph") == "graph"  # the argument wins
    monkeypatch.setenv("XPLSTM_GPU_LOOP", "fast")
    with pytest.raises(ValueError, match=r"XPLSTM_GPU_LOOP must be one of .*got 'fast'"):
        plan.gpu_loop()
    with pytest.raises(ValueError, match=r"gpu_loop must be one of .*got 'nope'"):
        plan.gpu_loop("nope")


def test_tf32_switch_reads_the_environment(monkeypatch):
    monkeypatch.setenv("XPLSTM_TF32", "1")
    assert plan.tf32_enabled() is True and plan.tf32_enabled(False) is False
    monkeypatch.setenv("XPLSTM_TF32", "sometimes")
    with pytest.raises(ValueError, match="XPLSTM_TF32 must be 0 or 1"):
        plan.tf32_enabled()


@stand_in
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("loop", LOOPS)
def test_every_loop_matches_numpy_float64(monkeypatch, loop, dtype, lengths):
    cupy = install_stand_in(monkeypatch)
    arrays = problem(np.random.default_rng(1), dtype=dtype)
    lengths = None if lengths is None else np.array(lengths)
    expected = run(np, {k: v.astype(np.float64) for k, v in arrays.items()}, None, lengths)
    actual = run(cupy, arrays, loop, lengths)
    for key, value in expected.items():
        assert_close(actual[key], value, np.dtype(dtype), name=f"{loop} {key}")


@stand_in
def test_planned_loops_agree_with_the_cupy_loop_bitwise_in_the_pointwise_part(monkeypatch):
    """Same kernel bodies on the same inputs: the loops differ only in how they are issued."""
    cupy = install_stand_in(monkeypatch)
    # hidden=1: each recurrent product is one multiplication, rounded the same by any GEMM
    arrays = problem(np.random.default_rng(2), hidden=1)
    results = {loop: run(cupy, arrays, loop) for loop in LOOPS}
    for loop in ("plan", "graph"):
        for key in ("h", "h_n", "c_n", "dh0", "dc0"):
            np.testing.assert_array_equal(results[loop][key], results["cupy"][key], loop + key)


@stand_in
@pytest.mark.parametrize("loop", ["plan", "graph"])
@pytest.mark.parametrize("steps", [1, 7])
def test_planned_loops_launch_two_calls_per_step(monkeypatch, loop, steps):
    """Forward: one GEMM and one kernel per step; backward the same; nothing else on a path
    without lengths goes through cuBLAS or a raw kernel."""
    cupy = install_stand_in(monkeypatch)
    arrays = problem(np.random.default_rng(3), steps=steps)
    a = {key: cupy.asarray(value) for key, value in arrays.items()}
    h, _, _, saved = engine.lstm_forward(
        a["x"], a["w_ih"], a["w_hh"], a["bias"], a["h0"], a["c0"], gpu_loop=loop
    )
    forward_gemms = sum(cupy.cuda.cublas.calls.values())
    forward_launches = sum(kernel.launches for kernel in cupy.raw_kernels)
    assert (forward_gemms, forward_launches) == (steps, steps)
    engine.lstm_backward(a["dy"], None, None, saved)
    assert sum(cupy.cuda.cublas.calls.values()) == 2 * steps
    assert sum(kernel.launches for kernel in cupy.raw_kernels) == 2 * steps
    assert not any(kernel.launches for kernel in cupy.kernels)  # no ElementwiseKernel
    captured = sum(cupy.cuda.cublas.captured.values())
    assert captured == (2 * steps if loop == "graph" else 0)


@stand_in
def test_an_explicit_planned_loop_refuses_the_unfused_path(monkeypatch):
    cupy = install_stand_in(monkeypatch)
    arrays = problem(np.random.default_rng(4))
    a = {key: cupy.asarray(value) for key, value in arrays.items()}
    with pytest.raises(ValueError, match="gpu_loop='plan' launches the fused kernels"):
        engine.lstm_forward(a["x"], a["w_ih"], a["w_hh"], fused=False, gpu_loop="plan")
    monkeypatch.setenv("XPLSTM_GPU_LOOP", "plan")  # a default, not a request: unfused wins
    h, *_ = engine.lstm_forward(a["x"], a["w_ih"], a["w_hh"], fused=False)
    assert sum(cupy.cuda.cublas.calls.values()) == 0


def _corrupted(monkeypatch, name, change):
    """Patch one planning helper of :mod:`xplstm.cuda.plan` with ``change`` applied."""
    original = getattr(plan._Blas, name)

    def patched(self, *args):
        return change(original(self, *args))

    monkeypatch.setattr(plan._Blas, name, patched)


@stand_in
@pytest.mark.parametrize(
    "mistake",
    ["leading dimension", "transpose flag", "element count", "block too large"],
)
def test_a_planning_mistake_fails(monkeypatch, mistake):
    """The stand-in's raw semantics catch what a wrong plan would do on a GPU. (The kernels
    loop grid-stride, so a smaller grid than one thread per element is correct by design; what
    must be right is the element count and a block CUDA can launch.)"""
    cupy = install_stand_in(monkeypatch)
    arrays = problem(np.random.default_rng(5), batch=4, hidden=3)
    expected = run(np, arrays, None)
    if mistake == "leading dimension":  # lda of W_hh one too large
        _corrupted(monkeypatch, "product_transposed", lambda a: (*a[:8], a[8] + 1, *a[9:]))
    elif mistake == "transpose flag":  # W_hh taken untransposed
        _corrupted(monkeypatch, "product_transposed", lambda a: (a[0], plan.OP_N, *a[2:]))
    elif mistake == "element count":  # the grid-stride loop stops one element short
        size = plan.LSTMPlan._size
        monkeypatch.setattr(plan.LSTMPlan, "_size", lambda self, rows: size(self, rows) - 1)
    else:  # CUDA allows at most 1024 threads per block
        monkeypatch.setattr(plan, "BLOCK", 2048)
    try:
        actual = run(cupy, arrays, "plan")
    except (IllegalAddress, CUBLASError, LaunchError):  # refused, as CUDA would
        return
    assert not np.allclose(actual["h"], expected["h"])


def test_the_stand_in_session_runs_every_loop():
    """``nox -s gpu_stand_in`` runs the gpu tests once per loop; its list must be plan's."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parent.parent / "noxfile.py").read_text())
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "GPU_LOOPS"
    }  # fmt: skip
    assert assigned == {"GPU_LOOPS": LOOPS}
