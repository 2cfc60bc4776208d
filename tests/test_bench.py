"""``xplstm bench`` runs every peer and reports times and ratios (no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xplstm import bench


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
    peers = {"xplstm", "gemm floor", "course loop"}
    for peer in peers:
        for kind in ("fwd", "fwd+bwd"):
            assert case["times_ms"][f"{peer} {kind}"] > 0
            assert f"{peer} {kind}" in printed
    assert "xplstm fwd / gemm floor" in case["ratios"]


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
        np.testing.assert_allclose(grads[f"W{gate}"], want, atol=1e-12)
        np.testing.assert_allclose(
            grads[f"b{gate}"][:, 0], model.grads["bias_ih_l0"][rows], atol=1e-12
        )


def test_memory_measurement_reports_the_budget():
    memory = bench.measure_memory(input_size=3, hidden_size=4, batch=2, steps=5)
    assert memory["budget_bytes"] == 5 * 2 * (6 * 4 + 3) * 8
    assert memory["peak_bytes"] > 0


def test_bad_size_is_a_usage_error():
    with pytest.raises(SystemExit):
        bench.main(["--size", "1,2,3"])
