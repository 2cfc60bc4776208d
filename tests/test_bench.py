"""``xplstm bench`` runs every peer and reports times and ratios (no timing assertions)."""

from __future__ import annotations

import json
from importlib.util import find_spec

import numpy as np
import pytest
from conftest import assert_close

from xplstm import bench

KINDS = ("fwd", "fwd+bwd")


def test_bench_reports_every_peer_and_ratio(tmp_path, capsys):
    report = tmp_path / "bench.json"
    status = bench.main(
        ["--size", "4,8,3,5", "--dtype", "float64", "--backend", "numpy", "--rounds", "1",
         "--pause", "0", "--no-memory", "--json", str(report)]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    data = json.loads(report.read_text())
    (case,) = data["cases"]
    times = case["times_ms"]
    peers = ["gemm floor", "course loop"] + (["torch"] if find_spec("torch") else [])
    assert set(times) == {f"{peer} {kind}" for peer in ["xplstm", *peers] for kind in KINDS}
    assert set(case["ratios"]) == {f"xplstm {kind} / {peer}" for peer in peers for kind in KINDS}
    for name, value in times.items():
        assert value > 0 and name in printed
    for kind in KINDS:
        for peer in peers:
            ratio = f"xplstm {kind} / {peer}"
            assert ratio in printed
            want = times[f"xplstm {kind}"] / times[f"{peer} {kind}"]
            assert_close(case["ratios"][ratio], want, np.float64, 0, name=ratio)  # relative


def test_course_style_peer_computes_the_same_gradients():
    # The course-style loop must be a fair peer: same model, same gradients.
    model = bench.LSTM(3, 4, dtype="float64", seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3))
    dy = rng.standard_normal((5, 2, 4))
    model(x)
    model.backward(dy)
    forward, backward = bench._course_style(bench._course_parameters(model), np)
    caches = forward(np.ascontiguousarray(x.transpose(2, 1, 0)), np.zeros((4, 2)))
    grads = backward(np.ascontiguousarray(dy.transpose(2, 1, 0)), caches)
    for k, gate in enumerate("ifco"):
        rows = slice(4 * k, 4 * (k + 1))
        want = np.concatenate(
            [model.grads["weight_hh_l0"][rows], model.grads["weight_ih_l0"][rows]], axis=1
        )
        assert_close(grads[f"W{gate}"], want, np.float64, name=f"W{gate}")
        assert_close(
            grads[f"b{gate}"][:, 0], model.grads["bias_ih_l0"][rows], np.float64, name=f"b{gate}"
        )


# What the layer holds beyond the arrays a training step must hold: its copy of x with a ones
# column (n_x + 1 per step), h kept apart from y, the input projection and per-step scratch.
# Measured at about 1.2x on NumPy; 1.5x leaves room and still fails on one extra (T, m, 4H).
MEMORY_FACTOR = 1.5


def test_peak_memory_lies_between_the_arrays_a_step_must_hold_and_a_factor_of_them():
    n_x, n_a, m, steps = 8, 32, 16, 50  # large enough that arrays dominate Python objects
    memory = bench.measure_memory(input_size=n_x, hidden_size=n_a, batch=m, steps=steps)
    itemsize = np.dtype(np.float64).itemsize
    shapes = {
        "gates i, f, g, o saved for backward": (steps, m, 4 * n_a),
        "cell states saved for backward": (steps, m, n_a),
        "outputs y (the hidden states)": (steps, m, n_a),
        "dx": (steps, m, n_x),
    }
    must_hold = sum(int(np.prod(shape)) for shape in shapes.values()) * itemsize
    peak = memory["peak_bytes"]
    assert must_hold <= peak <= MEMORY_FACTOR * must_hold, (peak, must_hold)
    assert memory["budget_bytes"] == must_hold
    assert memory["ratio"] == peak / must_hold


def test_bad_size_is_a_usage_error():
    with pytest.raises(SystemExit):
        bench.main(["--size", "1,2,3"])


def test_bench_times_the_gru_and_the_projected_lstm_next_to_their_torch_peers(tmp_path, capsys):
    report = tmp_path / "bench.json"
    status = bench.main(
        ["--cell", "gru", "--proj-size", "3", "--size", "4,8,3,5", "--dtype", "float32",
         "--backend", "numpy", "--rounds", "1", "--pause", "0", "--no-memory",
         "--json", str(report)]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    gru, projected = json.loads(report.read_text())["cases"]
    assert (gru["cell"], gru["proj_size"]) == ("gru", 0)
    assert (projected["cell"], projected["proj_size"]) == ("lstm", 3)
    assert "gru numpy float32" in printed and "lstm proj_size=3 numpy float32" in printed
    # The course has neither cell: those cases time xplstm, the GEMM floor and torch.
    peers = ["gemm floor"] + (["torch"] if find_spec("torch") else [])
    for case in (gru, projected):
        assert set(case["times_ms"]) == {
            f"{peer} {kind}" for peer in ["xplstm", *peers] for kind in KINDS
        }
        assert set(case["ratios"]) == {
            f"xplstm {kind} / {peer}" for peer in peers for kind in KINDS
        }


@pytest.mark.parametrize("proj_size", ["8", "-1"])
def test_a_projection_outside_the_hidden_size_is_a_usage_error(proj_size, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--size", "4,8,3,5", "--proj-size", proj_size])
    assert "--proj-size must be between 1 and the hidden size - 1" in capsys.readouterr().err


def test_bench_variants_times_each_flag_next_to_the_plain_lstm(tmp_path, capsys):
    report = tmp_path / "bench.json"
    status = bench.main(
        ["--variants", "--size", "4,8,3,5", "--dtype", "float64", "--backend", "numpy",
         "--rounds", "1", "--pause", "0", "--no-memory", "--json", str(report)]
    )  # fmt: skip
    assert status == 0
    plain, variants = json.loads(report.read_text())["cases"]
    assert (plain["cell"], variants["cell"]) == ("lstm", "lstm variants")
    names = ["plain", *bench.VARIANTS]
    assert set(variants["times_ms"]) == {f"{name} {kind}" for name in names for kind in KINDS}
    for name in bench.VARIANTS:
        for kind in KINDS:
            ratio = variants["times_ms"][f"{name} {kind}"] / variants["times_ms"][f"plain {kind}"]
            assert variants["ratios"][f"{name} {kind} / plain"] == ratio
    assert "lstm variants (training mode) numpy float64" in capsys.readouterr().out
