"""Variable lengths against the same batch without them: forward+backward of the engine.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/packed_lengths.py

Lengths are drawn uniformly from 1..T (mean about T/2); prints the minimum of ``--repeats``
calls of each and their ratio (the ideal for a packed batch is about 0.5).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xplstm import engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128,256,64,100", help="n_x,n_a,m,T")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    n_x, hidden, batch, steps = (int(part) for part in args.size.split(","))
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, steps + 1, size=batch)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((steps, batch, n_x)).astype(dtype)
        w_ih = (0.05 * rng.standard_normal((4 * hidden, n_x))).astype(dtype)
        w_hh = (0.05 * rng.standard_normal((4 * hidden, hidden))).astype(dtype)
        bias = np.zeros(4 * hidden, dtype)
        dy = np.ones((steps, batch, hidden), dtype)

        best = {}
        for name, chosen in (("padded", None), ("lengths", lengths)):
            times = []
            for _ in range(args.repeats + 1):  # the first call warms up
                start = time.perf_counter()
                _, _, _, saved = engine.lstm_forward(x, w_ih, w_hh, bias, lengths=chosen)
                engine.lstm_backward(dy, None, None, saved)
                times.append(time.perf_counter() - start)
            best[name] = min(times[1:])
        print(
            f"{np.dtype(dtype).name}: fwd+bwd without lengths {best['padded'] * 1e3:.1f} ms, "
            f"uniform lengths {best['lengths'] * 1e3:.1f} ms, "
            f"ratio {best['lengths'] / best['padded']:.2f}"
        )


if __name__ == "__main__":
    main()
