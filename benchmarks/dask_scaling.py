"""Scaling of xplstm.distributed on this machine: 1 vs 2 Dask worker processes.

Runs a fixed inference workload (forward) and a fixed gradient workload (forward + backward)
on a LocalCluster with one worker process, then two, one thread each, and reports throughput
(sequences per second) and parallel efficiency (speedup / workers). Run it as

    python benchmarks/dask_scaling.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import dask.array as da
import distributed
import numpy as np

import xplstm
from xplstm import distributed as xdist

STEPS, BATCH, INPUTS, HIDDEN, CHUNK = 50, 512, 64, 128, 64


def _timed(function, repeats: int) -> float:
    function()  # warm-up: workers import xplstm and receive the parameters
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(workers: int, repeats: int) -> dict[str, float]:
    model = xplstm.LSTM(INPUTS, HIDDEN, dtype="float32", seed=0)
    # Generated on the workers, chunk by chunk, and kept there: no data travels from the client.
    rng = da.random.default_rng(0)
    x = rng.standard_normal((STEPS, BATCH, INPUTS), chunks=(STEPS, CHUNK, INPUTS), dtype=np.float32)
    dy = rng.standard_normal(
        (STEPS, BATCH, HIDDEN), chunks=(STEPS, CHUNK, HIDDEN), dtype=np.float32
    )
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        x, dy = client.persist([x, dy])  # generate once, outside the timed calls
        distributed.wait([x, dy])
        forward_s = _timed(lambda: xdist.forward(model, x).compute(), repeats)
        grads_s = _timed(lambda: xdist.grads(model, x, dy, client=client), repeats)
    return {"forward_seq_per_s": BATCH / forward_s, "grads_seq_per_s": BATCH / grads_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = {workers: measure(workers, args.repeats) for workers in (1, 2)}
    print(f"workload: T={STEPS} m={BATCH} n_x={INPUTS} n_a={HIDDEN} float32, chunks of {CHUNK}")
    print(
        f"{'workers':>8} {'forward seq/s':>14} {'grads seq/s':>12} {'fwd eff':>8} {'grad eff':>9}"
    )
    for workers, result in results.items():
        fwd_eff = result["forward_seq_per_s"] / (workers * results[1]["forward_seq_per_s"])
        grad_eff = result["grads_seq_per_s"] / (workers * results[1]["grads_seq_per_s"])
        result |= {"forward_efficiency": fwd_eff, "grads_efficiency": grad_eff}
        print(
            f"{workers:>8} {result['forward_seq_per_s']:>14.0f} {result['grads_seq_per_s']:>12.0f}"
            f" {fwd_eff:>8.2f} {grad_eff:>9.2f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({str(k): v for k, v in results.items()}, handle, indent=2)


if __name__ == "__main__":
    main()
