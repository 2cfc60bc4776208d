"""Atomic ``.npz`` checkpoints without pickles.

:func:`save_npz_atomic` writes the archive through :func:`xplstm.atomic.write_atomic` (temporary
file in the target's folder, fsync, rename), so a reader sees either the old file or the complete
new one, never a half-written file. The archive lands at exactly the path given (NumPy's
``savez`` would append ``.npz`` to a name without it). :func:`load_npz` reads with
``allow_pickle=False`` and turns truncated or foreign files into a ``ValueError`` naming the path.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from .atomic import write_atomic
from .backend import asnumpy

__all__ = ["load_npz", "save_npz_atomic"]

# What a damaged, truncated or non-.npz file makes NumPy or zipfile raise while parsing: a
# corrupt central directory can also surface as a failed seek (OSError), an unsupported zip
# "version" or "encryption" (NotImplementedError) or a short header (struct.error).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    ValueError,
    EOFError,
    OSError,
    NotImplementedError,
    struct.error,
)


def save_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, Any], *, compress: bool = False):
    """Write ``arrays`` to an ``.npz`` archive at exactly ``path``, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination; no suffix is added. An existing file is replaced only once the new archive
        is complete on disk; a symbolic link is followed (its target is replaced).
    arrays : mapping of str to array
        NumPy or CuPy arrays (CuPy arrays are copied to the host) or array-likes. Object arrays
        are refused: checkpoints never hold pickles.
    compress : bool, default False
        Deflate the members (smaller files, slower writes).

    Raises
    ------
    TypeError
        If ``arrays`` is not a mapping of str, or an entry would need a pickle.
    """
    path = os.fspath(path)
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    prepared = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty strings, got {name!r}")
        array = asnumpy(value)
        if array.dtype.hasobject:
            raise TypeError(
                f"arrays[{name!r}] has dtype {array.dtype}, which needs a pickle; "
                "store numbers or strings only"
            )
        prepared[name] = array

    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    def write(handle: IO[bytes]) -> None:
        with zipfile.ZipFile(handle, mode="w", compression=compression) as archive:
            for name, array in prepared.items():
                with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    write_atomic(path, write)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive into a dict, without pickles.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict of str to numpy.ndarray
        In the archive's order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, damaged, not an ``.npz`` archive, or holds pickled objects;
        the message names ``path``.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:  # a missing file or a folder raises as itself
        return _parse_npz(handle, path)


def _parse_npz(handle: Any, path: str) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(handle, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive")
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):  # a zip member that is not a .npy file
                raise ValueError(f"member {name!r} is not a .npy array")
        return arrays
    except _READ_ERRORS as error:
        raise ValueError(
            f"{path} is not a readable .npz archive (truncated, damaged or another format): {error}"
        ) from error
