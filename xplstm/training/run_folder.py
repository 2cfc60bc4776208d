"""The run folder of a training run: one run at a time, and no silent overwrite of another.

:class:`RunFolder` takes an exclusive ``flock`` on ``DIR/.xplstm-run.lock`` for as long as the run
lasts. The operating system drops the lock when the process ends in any way (``kill -9``
included), so a killed run never leaves a stale lock and ``--resume`` works at once; a second
run in the same folder gets a one-line ``RuntimeError`` instead of deleting the first run's
half-written checkpoint. Where ``fcntl`` is missing (Windows) the folder is not locked.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from ..serialization import FINAL_CHECKPOINT, LAST_CHECKPOINT, training_state_path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunFolder", "checkpoint_files", "claim_for_a_new_run"]

LOCK_NAME = ".xplstm-run.lock"


def checkpoint_files(folder: Path) -> list[Path]:
    """The checkpoint files of a run in ``folder`` that exist (layer files and training states)."""
    names = [LAST_CHECKPOINT, FINAL_CHECKPOINT]
    names += [training_state_path(name).name for name in names]
    return [folder / name for name in names if (folder / name).exists()]


class RunFolder:
    """Context manager: create ``path`` if needed and hold its run lock until exit.

    Parameters
    ----------
    path : path-like
        The checkpoint folder.

    Raises
    ------
    NotADirectoryError
        If ``path`` exists and is not a folder.
    RuntimeError
        If another run (in any process) holds the folder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> RunFolder:
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, "the checkpoint folder is a file, not a folder", str(self.path)
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return self
        handle = open(self.path / LOCK_NAME, "ab")  # held (and locked) until __exit__
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(
                f"{self.path} is in use by another xplstm training run (it holds "
                f"{LOCK_NAME} there); wait for it to end or choose another checkpoint folder"
            ) from None
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None


def claim_for_a_new_run(folder: Path, overwrite: bool) -> None:
    """Refuse a folder holding a run unless ``overwrite``; then delete that run's checkpoints."""
    existing = checkpoint_files(folder)
    if existing and not overwrite:
        raise ValueError(
            f"{folder} already holds a training run ({existing[0].name}); continue it with "
            "--resume (resume=True) or start over with --overwrite (overwrite=True)"
        )
    for path in existing:  # so that a crash before the first checkpoint cannot resume them
        path.unlink()
