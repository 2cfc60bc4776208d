"""The ``xplstm`` command: ``demo``, ``train``, ``sample``, ``info`` and ``bench``.

Every command has ``--help``. Bad arguments and unusable inputs (a missing or non-UTF-8 text
file, negative epochs, ...) end with one line on stderr and a non-zero exit status, never a
traceback: 2 for command-line mistakes, 1 for inputs that cannot be used.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

DEMO_DIR = Path("xplstm-runs") / "demo"
TRAIN_DIR = Path("xplstm-runs") / "train"
USAGE_ERROR = 2
INPUT_ERROR = 1


class CommandError(Exception):
    """A problem to report in one line (exit status 1)."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: Callable[[str], Any], minimum: float, inclusive: bool = True) -> Callable:
    """An argparse type: a finite ``kind`` (int or float) ``>= minimum`` (or ``> minimum``)."""
    relation = ">=" if inclusive else ">"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value != value or (value < minimum if inclusive else value <= minimum):
            raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g}, got {text}")
        if value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        return value

    return parse


COUNT = _number(int, 0)
POSITIVE_INT = _number(int, 1)
POSITIVE_FLOAT = _number(float, 0, inclusive=False)
NON_NEGATIVE_FLOAT = _number(float, 0)


def _probability(text: str) -> float:
    """An argparse type: a number in ``[0, 1)``."""
    value = NON_NEGATIVE_FLOAT(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1 (a probability), got {text}")
    return value


PROBABILITY = _probability


# ----------------------------------------------------------------------------- parser


def _default(field: str) -> str:
    """``"(default: V)"`` with ``V`` the :class:`TrainConfig` default of ``field``."""
    from .training.config import TrainConfig

    value = getattr(TrainConfig(), field)
    shown = format(value, "g") if isinstance(value, (int, float)) else value
    return f"(default: {shown})"


def _add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=default,
        help="auto: the GPU when CuPy and a CUDA device are usable, else the CPU "
        f"(default: {default})",
    )


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="train an LSTM on the bundled 8x8 digits and report the test accuracy",
        description="Train an LSTM classifier on scikit-learn's bundled 8x8 handwritten digits "
        "(each image read row by row: 8 steps of 8 pixels) with a held-out test split; write "
        "a PNG of the training curves and a checkpoint. Needs the demo extra: "
        'pip install "xplstm[demo]".',
    )
    demo.add_argument(
        "--out", type=Path, default=DEMO_DIR, help=f"output folder (default: {DEMO_DIR})"
    )
    demo.add_argument(
        "--epochs",
        type=POSITIVE_INT,
        metavar="N",
        default=None,
        help=f"passes over the data {_default('epochs')}",
    )
    demo.add_argument(
        "--seed", type=COUNT, metavar="S", default=None, help=f"random seed {_default('seed')}"
    )
    _add_device(demo)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_run_demo)


def _add_train(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train on the digits or on a UTF-8 text file, with checkpoints and --resume",
        description="Train a digits classifier or a character-level language model. "
        "Checkpoints go to DIR/last.npz after every epoch (and every N steps with "
        "--checkpoint-every) and to DIR/final.npz at the end; each NAME.npz loads with "
        "xplstm.LSTM.load and has its full training state beside it in NAME.training.npz. "
        "--resume continues from DIR/last.training.npz and ends bitwise identical to an "
        "uninterrupted run on the same device. Hyperparameters left out take their defaults, "
        "or the checkpoint's values with --resume.",
    )
    train.add_argument(
        "--task", choices=("digits", "text"), default=None, help=f"what to learn {_default('task')}"
    )
    train.add_argument("--text", metavar="FILE", default=None, help="UTF-8 text for --task text")
    options = [
        ("--epochs", COUNT, "N", "passes over the data"),
        ("--hidden", POSITIVE_INT, "H", "hidden size"),
        ("--layers", POSITIVE_INT, "L", "stacked LSTM layers"),
        ("--lr", POSITIVE_FLOAT, "RATE", "Adam learning rate"),
        ("--lr-decay", POSITIVE_FLOAT, "FACTOR", "learning-rate factor per epoch"),
        ("--batch-size", POSITIVE_INT, "M", "examples per step"),
        ("--seq-length", POSITIVE_INT, "T", "characters per window, text task"),
        ("--clip-norm", NON_NEGATIVE_FLOAT, "NORM", "global-norm gradient clip, 0: off"),
        ("--seed", COUNT, "S", "random seed of weights, shuffling and masks"),
        ("--zoneout-cell", PROBABILITY, "P", "zoneout of the cell state (Krueger et al.)"),
        ("--zoneout-hidden", PROBABILITY, "P", "zoneout of the hidden state"),
        ("--recurrent-dropout", PROBABILITY, "P", "variational dropout of h into W_hh"),
        ("--dropout", PROBABILITY, "P", "dropout between stacked layers (--layers >= 2)"),
    ]
    for flag, kind, metavar, description in options:
        field = _TRAIN_SETTINGS[flag[2:].replace("-", "_")]
        help_text = f"{description} {_default(field)}"
        train.add_argument(flag, type=kind, metavar=metavar, default=None, help=help_text)
    train.add_argument(
        "--zoneout",
        type=PROBABILITY,
        metavar="P",
        default=None,
        help="zoneout of both states: sets --zoneout-cell and --zoneout-hidden",
    )
    train.add_argument(
        "--layer-norm",
        action="store_const",
        const=True,
        default=None,
        help="the LayerNorm LSTM of Ba, Kiros and Hinton (2016) (default: off)",
    )
    train.add_argument(
        "--dtype", choices=("float32", "float64"), default=None, help=_default("dtype")
    )
    _add_device(train)
    train.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        type=Path,
        default=TRAIN_DIR,
        help=f"where checkpoints go (default: {TRAIN_DIR})",
    )
    train.add_argument(
        "--checkpoint-every",
        metavar="N",
        type=COUNT,
        default=500,
        help="also checkpoint every N steps, for long epochs (default: 500; 0: only after "
        "each epoch)",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from DIR/last.npz if it exists"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a DIR that holds a run, deleting its checkpoints (without this or "
        "--resume such a DIR is refused)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--no-plot", action="store_true", help="do not write DIR/training.png")
    train.set_defaults(handler=_run_train)


def _add_sample(commands: Any) -> None:
    sample = commands.add_parser(
        "sample",
        help="generate text from a model trained with --task text",
        description="Generate text, one character at a time, from a character model saved by "
        "xplstm train --task text.",
    )
    sample.add_argument(
        "--checkpoint", metavar="FILE", type=Path, required=True, help="e.g. DIR/final.npz"
    )
    sample.add_argument(
        "--length", type=COUNT, metavar="N", default=200, help="characters (default: 200)"
    )
    sample.add_argument(
        "--temperature",
        type=POSITIVE_FLOAT,
        metavar="T",
        default=1.0,
        help="below 1: safer choices, above 1: more varied (default: 1)",
    )
    sample.add_argument(
        "--seed", type=COUNT, metavar="S", default=0, help="random seed (default: 0)"
    )
    sample.add_argument("--prime", default="", help="text to start from (default: one random char)")
    _add_device(sample, default="cpu")
    sample.set_defaults(handler=_run_sample)


def build_parser() -> argparse.ArgumentParser:
    """The ``xplstm`` argument parser with its subcommands."""
    from . import __version__

    parser = OneLineErrorParser(
        prog="xplstm",
        description="LSTM on NumPy or CuPy: train, sample, benchmark, inspect.",
    )
    parser.add_argument("--version", action="version", version=f"xplstm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_train(commands)
    _add_sample(commands)
    info = commands.add_parser(
        "info",
        help="versions, BLAS, CuPy/CUDA devices, kernel sources",
        description="Print versions, the BLAS NumPy uses, CuPy/CUDA and the GPUs, and where "
        "the CUDA kernel sources are.",
    )
    info.set_defaults(handler=_run_info)
    commands.add_parser(
        "bench",
        help="benchmarks (xplstm bench --help for its options)",
        add_help=False,
    )
    return parser


# ----------------------------------------------------------------------------- commands


def _say(line: str) -> None:
    print(line, flush=True)


def _write_plot(history: dict, path: Path, title: str) -> None:
    from .training.plot import plot_history

    try:
        plot_history(history, path, title)
    except ImportError:
        _say('plot: skipped (matplotlib is not installed: pip install "xplstm[demo]")')
        return
    _say(f"plot: {path}")


def _report_checkpoint(path: Path | None) -> None:
    if path is not None:
        _say(
            f"checkpoint: {path} (xplstm.LSTM.load reads it; the training state is in "
            f"{path.name[: -len('.npz')]}.training.npz beside it)"
        )


def _run_demo(args: argparse.Namespace) -> int:
    from .training.loop import train

    started = time.perf_counter()
    settings = {"task": "digits"}
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.seed is not None:
        settings["seed"] = args.seed
    _say("xplstm demo: an LSTM learns to read handwritten digits")
    result = train(
        settings,
        device=args.device,
        checkpoint_dir=args.out,
        overwrite=True,  # each demo starts over
        progress=not args.no_progress,
        log=_say,
    )
    _say(f"test accuracy: {result.test_accuracy:.3f}")
    _write_plot(result.history, args.out / "training.png", "xplstm demo: LSTM on 8x8 digits")
    _report_checkpoint(result.final_checkpoint)
    _say(f"time: {time.perf_counter() - started:.1f} s")
    return 0


_TRAIN_SETTINGS = {
    "task": "task",
    "text": "text_path",
    "epochs": "epochs",
    "hidden": "hidden_size",
    "layers": "num_layers",
    "lr": "lr",
    "lr_decay": "lr_decay",
    "batch_size": "batch_size",
    "seq_length": "seq_length",
    "clip_norm": "clip_norm",
    "dtype": "dtype",
    "seed": "seed",
    "layer_norm": "layer_norm",
    "zoneout_cell": "zoneout_cell",
    "zoneout_hidden": "zoneout_hidden",
    "recurrent_dropout": "recurrent_dropout",
    "dropout": "dropout",
}


def _run_train(args: argparse.Namespace) -> int:
    from .training.loop import train

    settings = {
        field: getattr(args, option)
        for option, field in _TRAIN_SETTINGS.items()
        if getattr(args, option) is not None
    }
    if args.zoneout is not None:
        for field in ("zoneout_cell", "zoneout_hidden"):
            settings.setdefault(field, args.zoneout)
    if args.text is not None:
        settings.setdefault("task", "text")
        # Absolute, so --resume works from any working directory.
        settings["text_path"] = str(Path(args.text).resolve())
    if settings.get("task") == "text" and "text_path" not in settings and not args.resume:
        raise CommandError("--task text needs --text FILE (a UTF-8 text file)")
    if settings.get("task", "digits") == "digits" and "text_path" in settings:
        raise CommandError("--text is only used with --task text")
    if args.resume and args.overwrite:
        raise CommandError("--resume continues the run in DIR, --overwrite replaces it: pick one")
    result = train(
        settings,
        device=args.device,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        log=_say,
    )
    if (
        result.history["test_accuracy"]
        and result.history["test_accuracy"][-1] == (result.history["test_accuracy"][-1])
    ):
        _say(f"test accuracy: {result.test_accuracy:.3f}")
    if not args.no_plot and result.history["train_loss"]:
        _write_plot(result.history, args.checkpoint_dir / "training.png", "xplstm train")
    _report_checkpoint(result.final_checkpoint)
    return 0


def _run_sample(args: argparse.Namespace) -> int:
    from .serialization import training_state_path
    from .training.sampling import load_char_model, sample_text

    # Sampling reads only the training state; after a kill between the two checkpoint writes it
    # may exist while NAME.npz does not yet.
    if args.checkpoint.is_dir():
        raise CommandError(
            f"--checkpoint {str(args.checkpoint)!r} is a folder; give a checkpoint file in it, "
            "such as its final.npz or last.npz"
        )
    if not (args.checkpoint.exists() or training_state_path(args.checkpoint).exists()):
        raise CommandError(f"checkpoint {str(args.checkpoint)!r} does not exist")
    from .training.device import resolve_device

    device, _ = resolve_device(args.device)
    model, vocabulary = load_char_model(args.checkpoint, device)
    text = sample_text(
        model,
        vocabulary,
        args.length,
        temperature=args.temperature,
        seed=args.seed,
        prime=args.prime,
    )
    sys.stdout.write(text + "\n")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from .training.device import environment_report

    for line in environment_report():
        _say(line)
    return 0


def _run_bench(argv: list[str]) -> int:
    try:
        from .bench import main as bench_main
    except ModuleNotFoundError as error:
        if error.name not in ("xplstm.bench", __package__ + ".bench"):
            raise CommandError(f"xplstm bench needs {error.name}: {error}") from error
        raise CommandError("xplstm bench is not available in this installation") from error
    return int(bench_main(argv) or 0)


# ----------------------------------------------------------------------------- entry point


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    elif isinstance(error, OSError) and error.strerror:
        message = error.strerror + (f": {error.filename}" if error.filename else "")
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xplstm`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = argv[0] if argv else None
    try:
        if command == "bench":
            return _run_bench(argv[1:])
        args = parser.parse_args(argv)
        if args.command is None:
            parser.error("choose a command: demo, train, sample, info or bench")
        return args.handler(args)
    except SystemExit as exit_request:  # --help, --version and argument errors
        code = exit_request.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        return code if isinstance(code, int) else USAGE_ERROR
    except MemoryError:
        hint = " (try a smaller --hidden, --layers or --batch-size)" if command == "train" else ""
        print(f"xplstm {command}: error: out of memory{hint}", file=sys.stderr)
        return INPUT_ERROR
    except KeyboardInterrupt:
        print(f"xplstm {command}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, KeyError, OSError, RuntimeError, ImportError) as error:
        print(f"xplstm {command}: error: {_one_line(error)}", file=sys.stderr)
        return INPUT_ERROR
