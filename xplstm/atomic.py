"""Atomic file writes: every file xplstm writes goes through :func:`write_atomic`.

The content goes to a temporary file in the target's folder, which is flushed, fsynced and given
the mode a plain ``open`` would leave (an existing file's own permission bits, else ``0o666``
less the umask), then renamed over the target,
and the folder is fsynced so the rename is durable. A reader sees the old file or the complete
new one, never a half-written file; a failed write leaves the old file and no temporary behind.
A path that is a symbolic link is resolved first, so the link stays and its target is replaced.
Temporary files are named ``.NAME.<random>.tmp``. Errors are ``OSError``s that name the path
the caller gave (never the temporary file): a missing or read-only folder, a folder at the path, a
full disk, a loop of symbolic links.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["write_atomic", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: os.umask can only be read by setting it, which would briefly change it
# for every thread of the process on each save.
_UMASK = _read_umask()


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _resolve(path: str) -> str:
    """The file a write to ``path`` lands in: symbolic links followed, a folder refused."""
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops at a loop of links
        raise OSError(errno.ELOOP, "too many levels of symbolic links (a loop)", path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", path)
    return target


def _mode_for(target: str) -> int:
    """What a plain ``open(target, "wb")`` leaves: an existing file keeps its permission bits,
    a new one gets ``0o666`` less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def _naming(error: OSError, path: str, context: str) -> OSError:
    """``error`` again (same type and errno), naming ``path`` instead of a temporary file."""
    reason = error.strerror or str(error)
    return type(error)(error.errno, f"{reason} ({context})", path)


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file at ``path`` atomically by calling ``write`` on a binary handle.

    Parameters
    ----------
    path : str or path-like
        Destination; its folder must exist. A symbolic link is followed: its target is
        replaced and the link kept.
    write : callable
        ``write(handle)`` writes the whole content to the open binary ``handle`` (it may seek).

    Returns
    -------
    Path
        The file written (the link's target when ``path`` is a link).
    """
    given = os.fspath(path)
    target = _resolve(given)
    directory = os.path.dirname(target)
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory
        )
    except OSError as error:
        raise _naming(error, given, f"cannot create a file in {directory}") from error
    try:
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if os.name == "posix":  # mkstemp makes the file 0600; give it the file's mode
            os.chmod(temporary, _mode_for(target))
        os.replace(temporary, target)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and error.errno is not None:
            raise _naming(error, given, "while writing") from error
        raise
    _fsync_directory(directory)
    return Path(target)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding``."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | os.PathLike, value: Any, **dump_options: Any) -> Path:
    """Write ``value`` as JSON text and a final newline to ``path`` atomically.

    ``dump_options`` go to :func:`json.dumps` (``indent``, ``sort_keys``, ...).
    """
    return write_text_atomic(path, json.dumps(value, **dump_options) + "\n")
