"""Where an LSTM layer's time goes on NumPy: its phases timed alone, next to the whole layer.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/forward_profile.py

At n_x=128, H=256, m=64, T=100 (``--size``), float32 and float64, medians of ``--rounds``
interleaved rounds (:func:`xplstm.bench.time_interleaved`): the layer's forward and
forward+backward; the forward's input projection, its loop of recurrent GEMMs alone, of
pointwise steps alone, and of both; the backward's loop (pointwise step and the GEMM for the
carried ``dh``, on a fresh copy of the gates, whose time is shown too) and the three gradient
GEMMs after it. The phases run the engine's own
functions on the engine's layouts.
"""

from __future__ import annotations

import argparse

import numpy as np

import xplstm
from xplstm import engine
from xplstm.bench import time_interleaved
from xplstm.cells import make_cell
from xplstm.cpu import describe
from xplstm.training.device import cpu_model
from xplstm.workspace import Workspace


def phases(dtype: type, size: tuple[int, int, int, int], rounds: int) -> dict[str, float]:
    n_x, hidden, batch, steps = size
    rng = np.random.default_rng(0)
    model = xplstm.LSTM(n_x, hidden, dtype=dtype, seed=0)
    x = rng.standard_normal((steps, batch, n_x)).astype(dtype)
    dy = rng.standard_normal((steps, batch, hidden)).astype(dtype)
    state = model.state_dict()
    w_ih, w_hh = state["weight_ih_l0"], state["weight_hh_l0"]
    prepared = engine.PreparedWeights.of(w_ih, w_hh, state["bias_ih_l0"] + state["bias_hh_l0"], np)
    x_ones = engine.with_ones(x, xp=np)
    workspace = Workspace()  # as the layer's: no page faults on the projection's output
    gates = engine._input_projection(x_ones, prepared.joined, np, workspace)
    h, c = (np.zeros((steps, batch, hidden), dtype) for _ in range(2))
    product = np.empty((batch, 4 * hidden), dtype)
    carried, d_cell = np.zeros((batch, hidden), dtype), np.zeros((batch, hidden), dtype)
    cell = make_cell("lstm", np, dtype, batch, hidden)

    def loop(gemms: bool = True, pointwise: bool = True) -> None:
        for t in range(steps):
            if gemms:
                np.matmul(h[t - 1], prepared.w_hh_t, out=product)
            if pointwise:
                cell.forward(gates[t], product, c[t - 1], c[t], h[t])

    work = np.empty_like(gates)  # the backward step overwrites the gates it reads

    def backward_loop() -> None:
        np.copyto(work, gates)
        carried[...], d_cell[...] = 0, 0
        for t in range(steps - 1, -1, -1):
            cell.backward(work[t], dy[t], carried, d_cell, c[t - 1], c[t])
            np.matmul(work[t], w_hh, out=carried)

    def gradient_gemms() -> None:
        engine._input_gradients(gates, x_ones, w_ih, np)
        engine._recurrent_weight_gradient(gates, h, h[0], np)

    def layer_forward_backward() -> None:
        model(x)
        model.backward(dy)

    peers = {
        "layer forward": lambda: model(x),
        "layer forward+backward": layer_forward_backward,
        "  input projection": lambda: engine._input_projection(
            x_ones, prepared.joined, np, workspace
        ),
        "  recurrent GEMMs": lambda: loop(pointwise=False),
        "  pointwise steps": lambda: loop(gemms=False),
        "  forward loop (both)": loop,
        "  backward loop": backward_loop,
        "    of which the gates' copy": lambda: np.copyto(work, gates),
        "  gradient GEMMs": gradient_gemms,
    }
    return time_interleaved(peers, rounds, pause=0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128,256,64,100", help="n_x,n_a,m,T")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    size = tuple(int(part) for part in args.size.split(","))
    print(f"CPU: {cpu_model()}; {describe()}")
    for dtype in (np.float32, np.float64):
        times = phases(dtype, size, args.rounds)  # type: ignore[arg-type]
        steps = size[3]
        print(f"{np.dtype(dtype).name} n_x,H,m,T={args.size}: ms (per step in us)")
        for name, ms in times.items():
            print(f"  {name:26s} {ms:8.2f}  ({1e3 * ms / steps:7.1f})")


if __name__ == "__main__":
    main()
