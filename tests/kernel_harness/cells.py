"""The cells' pointwise steps three ways for the tests: float64 formulas, step inputs, host kernels.

The formulas are written out here independently of ``kernels/*.cuh`` and ``xplstm/cells``
(plain float64, ``sigmoid`` through ``logaddexp``). :class:`HostCell` launches the kernel specs
of :mod:`xplstm.cuda.specs` on NumPy arrays through the host rendering, with the same method
signatures as the NumPy twins, so one test drives the header, the twin and the fused binding
alike.
"""

from __future__ import annotations

import numpy as np

from xplstm.cuda.specs import kernel_preamble, kernel_specs

from .host import HostKernel, launch_spec

__all__ = [
    "STEP_ARGUMENTS",
    "HostCell",
    "backward_inputs",
    "backward_scale",
    "extreme_step",
    "extreme_values",
    "forward_scale",
    "random_step",
    "ref_lstm_backward",
    "ref_lstm_forward",
    "ref_rnn_backward",
    "ref_rnn_forward",
    "ref_sigmoid",
]

STEP_ARGUMENTS = {
    ("lstm", "forward"): ("gates", "recurrent", "c_prev", "c_next", "h_next"),
    ("lstm", "backward"): ("gates", "dy", "dh", "dc", "c_prev", "c_next"),
    ("lstm_peephole", "forward"): ("gates", "recurrent", "c_prev", "c_next", "h_next", "peephole"),
    ("lstm_peephole", "backward"): ("gates", "dy", "dh", "dc", "c_prev", "c_next", "peephole"),
    ("rnn", "forward"): ("h_next", "recurrent"),
    ("rnn", "backward"): ("dpre", "h_next", "dy", "dh"),
    ("rnn_relu", "forward"): ("h_next", "recurrent"),
    ("rnn_relu", "backward"): ("dpre", "h_next", "dy", "dh"),
    ("zoneout", "forward"): ("keep", "previous", "value"),
    ("zoneout", "backward"): ("keep", "gradient", "carried"),
}
"""The positional arguments of each cell step (the cell protocol of :mod:`xplstm.cells`)."""

GATES = {"lstm": 4, "lstm_peephole": 4, "rnn": 1, "rnn_relu": 1}


# ------------------------------------------------------------------- float64 reference formulas


def ref_sigmoid(z):
    # log(1 + e^-z) through logaddexp never overflows
    return np.exp(-np.logaddexp(0.0, -z))


def ref_lstm_forward(pre, c_prev):
    """Activated gates ``(m, 4H)``, ``c_next`` and ``h_next`` from the pre-activations."""
    i, f, g, o = np.split(np.asarray(pre, np.float64), 4, axis=1)
    c_prev = np.asarray(c_prev, np.float64)
    i, f, g, o = ref_sigmoid(i), ref_sigmoid(f), np.tanh(g), ref_sigmoid(o)
    c_next = f * c_prev + i * g
    return np.concatenate([i, f, g, o], axis=1), c_next, o * np.tanh(c_next)


def ref_lstm_backward(dy, dh, dc, gates, c_prev, c_next):
    """Pre-activation gradients ``(m, 4H)`` and ``dc_prev`` from the saved activations."""
    dy, dh, dc, gates, c_prev, c_next = (
        np.asarray(a, np.float64) for a in (dy, dh, dc, gates, c_prev, c_next)
    )
    i, f, g, o = np.split(gates, 4, axis=1)
    dh_total = dy + dh
    tanh_c = np.tanh(c_next)
    dc_total = dc + dh_total * o * (1.0 - tanh_c**2)
    d_gates = [dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f)]
    d_gates += [dc_total * i * (1 - g**2), dh_total * tanh_c * o * (1 - o)]
    return np.concatenate(d_gates, axis=1), dc_total * f


def ref_rnn_forward(pre):
    """``h_next = tanh(pre)``."""
    return np.tanh(np.asarray(pre, np.float64))


def ref_rnn_backward(dy, dh, h_next):
    """The pre-activation gradient ``(dy + dh) (1 - h_next^2)``."""
    dy, dh, h_next = (np.asarray(a, np.float64) for a in (dy, dh, h_next))
    return (dy + dh) * (1.0 - h_next**2)


# ------------------------------------------------------------------------------- step inputs


def random_step(rng, batch, hidden, dtype, kind="lstm"):
    """Forward inputs: pre-activations split into projection + recurrent, and ``c_prev``."""
    width = GATES[kind] * hidden
    projection = rng.normal(0, 3, (batch, width)).astype(dtype)
    recurrent = rng.normal(0, 1, (batch, width)).astype(dtype)
    return projection, recurrent, rng.normal(0, 2, (batch, hidden)).astype(dtype)


def extreme_values(dtype):
    info = np.finfo(dtype)
    values = [1e4, 100.0, 20.0, 1.0, info.tiny, info.smallest_subnormal, 0.0]
    return np.array(values + [-v for v in values], dtype=dtype)


def extreme_step(dtype, kind="lstm"):
    """Every extreme pre-activation against every extreme ``c_prev``, recurrent zero."""
    values = extreme_values(dtype)
    pre, c_prev = np.meshgrid(values, values, indexing="ij")
    pre, c_prev = pre.reshape(-1, 1), c_prev.reshape(-1, 1)
    if kind == "lstm":
        pre = np.concatenate([pre, -pre, pre[::-1], pre], axis=1)
    return pre, np.zeros_like(pre), np.ascontiguousarray(c_prev)


def backward_inputs(rng, batch, hidden, dtype, extreme=False):
    """``dy, dh, dc``: random, or cycling through the extreme values."""
    if not extreme:
        return tuple(rng.normal(0, 1, (batch, hidden)).astype(dtype) for _ in range(3))
    values = extreme_values(dtype)
    count = batch * hidden
    return tuple(
        np.resize(np.roll(values, shift), count).reshape(batch, hidden) for shift in (0, 3, 7)
    )


def forward_scale(c_prev):
    return 1.0 + np.abs(np.asarray(c_prev, np.float64))


def backward_scale(dy, dh, dc, c_prev):
    upstream = 1.0 + sum(np.abs(np.asarray(a, np.float64)) for a in (dy, dh, dc))
    return upstream * forward_scale(c_prev)


# ------------------------------------------------------------------------ the header, on NumPy


class HostCell:
    """The kernel specs of cell ``kind`` launched on NumPy arrays through the host rendering.

    ``forward`` and ``backward`` take the twins' arguments (:data:`STEP_ARGUMENTS`); every array
    must be C-contiguous, as the fused cells require.
    """

    def __init__(self, kind: str, dtype, batch_size: int, hidden_size: int) -> None:
        preamble = kernel_preamble(kind)
        self.kind, self.hidden_size, self.size = kind, hidden_size, batch_size * hidden_size
        self.specs = kernel_specs(kind, dtype)
        self.kernels = {
            step: HostKernel(spec.in_params, spec.out_params, spec.operation, spec.name, preamble)
            for step, spec in self.specs.items()
        }

    def _launch(self, step: str, arrays: tuple) -> None:
        named = dict(zip(STEP_ARGUMENTS[self.kind, step], arrays, strict=True))
        named["hidden"] = self.hidden_size
        launch_spec(self.kernels[step], self.specs[step], named, self.size)

    def forward(self, *arrays) -> None:
        self._launch("forward", arrays)

    def backward(self, *arrays) -> None:
        self._launch("backward", arrays)
