"""Variable lengths against the same batch without them, next to torch's packed sequences.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/packed_lengths.py

Lengths are drawn uniformly from 1..T (mean about T/2). One forward+backward of
``xplstm.LSTM`` with and without ``lengths``, and, when torch is installed, of
``torch.nn.LSTM`` on the padded batch and through ``pack_padded_sequence`` (unsorted lengths)
and ``pad_packed_sequence``, all on the same weights and data, timed in interleaved rounds in
one process (:func:`xplstm.bench.time_interleaved`). Prints the medians and the ratios; the
ideal for a packed batch is about 0.5 of the padded one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

import xplstm
from xplstm.bench import cpu_model, time_interleaved


def _xplstm_peers(model, x, dy, lengths) -> dict[str, Callable[[], None]]:
    def run(chosen):
        def once() -> None:
            model(x, lengths=chosen)
            model.backward(dy)

        return once

    return {"xplstm padded": run(None), "xplstm lengths": run(lengths)}


def _torch_peers(model, x, dy, lengths) -> dict[str, Callable[[], None]]:
    try:
        import torch
    except ImportError:
        return {}
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    dtype = getattr(torch, model.dtype.name)
    lstm = torch.nn.LSTM(model.input_size, model.hidden_size).to(dtype)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            getattr(lstm, name).copy_(torch.as_tensor(value))
    x_torch, dy_torch = torch.as_tensor(x), torch.as_tensor(dy)
    valid = torch.as_tensor(np.arange(x.shape[0])[:, None] < lengths[None, :])[..., None]
    lengths_torch = torch.as_tensor(lengths)

    def padded() -> None:
        out, _ = lstm(x_torch.detach().requires_grad_(True))
        out.backward(dy_torch)

    def packed() -> None:
        inputs = x_torch.detach().requires_grad_(True)
        sequence = pack_padded_sequence(inputs, lengths_torch, enforce_sorted=False)
        out, _ = pad_packed_sequence(lstm(sequence)[0], total_length=x.shape[0])
        out.backward(dy_torch * valid)

    return {"torch padded": padded, "torch packed": packed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128,256,64,100", help="n_x,n_a,m,T")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pause", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2, help="BLAS and torch threads")
    args = parser.parse_args()
    n_x, hidden, batch, steps = (int(part) for part in args.size.split(","))
    lengths = np.random.default_rng(0).integers(1, steps + 1, size=batch)
    print(f"CPU: {cpu_model()}; {args.threads} threads; n_x={n_x} H={hidden} m={batch} "
          f"T={steps}; lengths uniform in 1..T, mean {lengths.mean():.1f}; medians of "
          f"{args.rounds} rounds")  # fmt: skip
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        print("torch not installed: xplstm only")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(1)
            model = xplstm.LSTM(n_x, hidden, dtype=dtype, seed=0)
            x = rng.standard_normal((steps, batch, n_x)).astype(dtype)
            dy = rng.standard_normal((steps, batch, hidden)).astype(dtype)
            peers = {**_xplstm_peers(model, x, dy, lengths), **_torch_peers(model, x, dy, lengths)}
            times = time_interleaved(peers, args.rounds, args.pause)
            name = np.dtype(dtype).name
            for peer, ms in times.items():
                print(f"  {name} fwd+bwd {peer:16s} {ms:8.2f} ms")
            print(f"  {name} xplstm lengths / xplstm padded   "
                  f"{times['xplstm lengths'] / times['xplstm padded']:.2f}x")  # fmt: skip
            if "torch packed" in times:
                for peer in ("torch packed", "torch padded"):
                    print(f"  {name} xplstm lengths / {peer:12s} "
                          f"{times['xplstm lengths'] / times[peer]:.2f}x")  # fmt: skip
                print(f"  {name} torch packed / torch padded     "
                      f"{times['torch packed'] / times['torch padded']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
