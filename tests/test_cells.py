"""The cell factory: one protocol per cell kind, the implementation chosen from the backend."""

from __future__ import annotations

import numpy as np
import pytest

from xplstm import cells


@pytest.mark.parametrize(
    ("kind", "twin"), [("lstm", cells.LSTMTwin), ("rnn", cells.RNNTwin)], ids=["lstm", "rnn"]
)
@pytest.mark.parametrize("fused", [None, True, False])
def test_numpy_gets_the_twin_with_numpy_cpu_kernels(kind, twin, fused, monkeypatch):
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", "numpy")  # the compiled kernels: test_cpu_kernels
    cell = cells.make_cell(kind, np, np.float32, 3, 5, fused=fused)
    assert type(cell) is twin and cell.implementation == "numpy twin"


def test_unknown_cell_kind_is_named():
    with pytest.raises(
        ValueError,
        match=r"kind must be one of "
        r"\('lstm', 'lstm_peephole', 'rnn', 'rnn_relu', 'gru', 'zoneout', 'lstm_layer_norm'\), "
        r"got 'mgu'",
    ):
        cells.make_cell("mgu", np, np.float32, 3, 5)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("1", True), ("", True), ("on", True), ("0", False), ("off", False), (" False ", False)],
)
def test_fused_switch_reads_the_environment(monkeypatch, setting, expected):
    monkeypatch.setenv("XPLSTM_FUSED", setting)
    assert cells.fused_enabled() is expected
    assert cells.fused_enabled(not expected) is (not expected)  # the argument wins


def test_fused_switch_rejects_other_values(monkeypatch):
    monkeypatch.setenv("XPLSTM_FUSED", "maybe")
    with pytest.raises(ValueError, match="XPLSTM_FUSED must be 0 or 1, got 'maybe'"):
        cells.fused_enabled()


def test_stacked_activations_need_known_kinds():
    with pytest.raises(ValueError, match="kinds must use 's'"):
        cells.StackedActivations(np, np.float64, "sx", 2)
