"""The character task with and without the LSTM variants: validation loss after N epochs.

    python benchmarks/char_regularizers.py --text FILE --json benchmarks/results/char.json

Trains ``xplstm train``'s character model (the same code path, no checkpoints) once per variant
and seed, every variant with the same seeds, data, sizes and schedule, and prints the held-out
validation loss (nats per character, the last 10 % of the text) after the last epoch and at its
best epoch, as the mean and the range over the seeds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from xplstm.atomic import write_json_atomic
from xplstm.training.device import cpu_model
from xplstm.training.loop import train

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    # Krueger et al. (2016) on character-level Penn Treebank: 0.5 on c, 0.05 on h.
    "zoneout": {"zoneout_cell": 0.5, "zoneout_hidden": 0.05},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "layer_norm + zoneout": {"layer_norm": True, "zoneout_cell": 0.5, "zoneout_hidden": 0.05},
}


def _quiet(line: str) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, required=True, help="a UTF-8 text file")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for every variant")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--lr-decay", type=float, default=0.95)
    parser.add_argument("--json", type=Path, help="also write every run's history here")
    args = parser.parse_args()
    common = {
        "task": "text",
        "text_path": str(args.text.resolve()),
        "epochs": args.epochs,
        "hidden_size": args.hidden,
        "seq_length": args.seq_length,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_decay": args.lr_decay,
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, options in VARIANTS.items():
        for seed in range(args.seeds):
            started = time.perf_counter()
            result = train({**common, **options, "seed": seed}, progress=False, log=_quiet)
            history = result.history
            runs.setdefault(name, []).append(
                {
                    "seed": seed,
                    "seconds": time.perf_counter() - started,
                    "validation_loss": history["validation_loss"],
                    "train_loss": history["train_loss"],
                }
            )
            print(f"{name} seed {seed}: final {history['validation_loss'][-1]:.4f}", flush=True)
    lines = [
        f"| variant | validation loss after {args.epochs} epochs | best epoch's | "
        "train loss after the last | seconds per run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entries in runs.items():
        final = [entry["validation_loss"][-1] for entry in entries]
        best = [min(entry["validation_loss"]) for entry in entries]
        trained = [entry["train_loss"][-1] for entry in entries]
        seconds = statistics.mean(entry["seconds"] for entry in entries)
        cells = [
            f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"
            for values in (final, best, trained)
        ]
        lines.append(f"| {name} | {' | '.join(cells)} | {seconds:.0f} |")
    print(f"CPU: {cpu_model()}; settings: {common}; seeds 0..{args.seeds - 1}")
    print("\n".join(lines))
    if args.json:
        report = {"cpu": cpu_model(), "settings": common, "variants": VARIANTS, "runs": runs}
        write_json_atomic(args.json, report, indent=1)


if __name__ == "__main__":
    main()
