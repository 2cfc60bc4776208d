"""The CuPy binding of the kernels (:mod:`xplstm.cuda.fused`) on the host stand-in, in every run.

The fused cells must launch each spec with its arguments in the spec's order (checked against
the NumPy twins), build each kernel once per cell, dtype and device, and launch nothing for an
empty step. They do no per-step argument checks by design (the engine plans and checks once per
call); what stops a wrong buffer at launch is CuPy's own type check, and on the stand-in the
refusal of non-contiguous raw arrays.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import assert_close
from kernel_harness.cells import STEP_ARGUMENTS, backward_inputs, random_step
from kernel_harness.host import LaunchError, host_compiler
from kernel_harness.stand_in import fake_cupy, install_stand_in

from xplstm.cells import LSTMTwin, RNNTwin, make_cell
from xplstm.cuda import fused

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]


@pytest.fixture
def cupy(monkeypatch):
    """A fresh stand-in installed as ``cupy`` for this test."""
    return install_stand_in(monkeypatch)


def _step_arrays(rng, kind, batch, hidden, dtype):
    projection, recurrent, c_prev = random_step(rng, batch, hidden, dtype, kind=kind)
    dy, dh, dc = backward_inputs(rng, batch, hidden, dtype)
    empty = np.zeros((batch, hidden), dtype)
    return {
        "gates": projection, "h_next": projection if kind == "rnn" else empty,
        "recurrent": recurrent, "c_prev": c_prev, "c_next": empty, "dy": dy, "dh": dh, "dc": dc,
        "dpre": empty,
    }  # fmt: skip


def _run(cell, arrays, kind):
    for step in ("forward", "backward"):
        getattr(cell, step)(*(arrays[name] for name in STEP_ARGUMENTS[kind, step]))


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_cells_pass_arguments_in_kernel_order(cupy, dtype, kind):
    batch, hidden = 4, 6
    host = _step_arrays(np.random.default_rng(5), kind, batch, hidden, dtype)
    device = {name: cupy.asarray(value) for name, value in host.items()}
    host = {name: value.copy() for name, value in host.items()}
    cell = make_cell(kind, cupy, dtype, batch, hidden, fused=True)
    assert isinstance(cell, (fused.FusedLSTMCell, fused.FusedRNNCell))
    _run(cell, device, kind)
    _run({"lstm": LSTMTwin, "rnn": RNNTwin}[kind](np, dtype, batch, hidden), host, kind)
    written = {n for step in ("forward", "backward") for n in STEP_ARGUMENTS[kind, step]}
    for name in sorted(written):
        scale = 1.0 + np.abs(host[name].astype(np.float64))
        assert_close(device[name], host[name], dtype, scale, name)
    assert [kernel.launches for kernel in cupy.kernels] == [1, 1]


def test_kernels_are_memoized_per_cell_dtype_and_device(cupy, monkeypatch):
    first = fused.elementwise_kernels("lstm", np.float32)
    assert fused.elementwise_kernels("lstm", "float32") is first
    assert fused.elementwise_kernels("lstm", np.float64) is not first
    assert fused.elementwise_kernels("rnn", np.float32) is not first
    assert len(cupy.kernels) == 6
    two = fake_cupy(device=1, device_count=2)
    monkeypatch.setitem(sys.modules, "cupy", two)
    assert fused.elementwise_kernels("lstm", np.float32) is not first
    with two.cuda.Device(0):
        assert fused.elementwise_kernels("lstm", np.float32) is first
    with pytest.raises(TypeError, match="fused=False"):
        fused.elementwise_kernels("lstm", np.float16)


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0, 0)], ids=str)
def test_fused_cells_launch_nothing_for_empty_steps(cupy, kind, shape):
    arrays = {
        name: cupy.empty((shape[0], (4 if name == "gates" else 1) * shape[1]), np.float32)
        for name in {*STEP_ARGUMENTS[kind, "forward"], *STEP_ARGUMENTS[kind, "backward"]}
    }
    _run(make_cell(kind, cupy, np.float32, *shape, fused=True), arrays, kind)
    assert [kernel.launches for kernel in cupy.kernels] == [0, 0]


def test_wrong_buffers_are_refused_at_launch(cupy):
    """The replacement of the old per-step checks: CuPy's launch-time type check, and the
    stand-in's refusal of buffers the raw kernels would index wrongly."""
    cell = make_cell("lstm", cupy, np.float32, 2, 3, fused=True)
    gates, state = cupy.zeros((2, 12), np.float32), cupy.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"Type is mismatched\. c_prev"):
        cell.forward(gates, gates.copy(), state.astype(np.float64), state, state.copy())
    with pytest.raises(LaunchError, match="raw argument h_next is not C-contiguous"):
        cell.forward(gates, gates.copy(), state, state.copy(), state.T.copy().T)
    with pytest.raises(TypeError, match="Unsupported type"):
        cell.backward(gates, np.zeros((2, 3), np.float32), state, state, state, state)
