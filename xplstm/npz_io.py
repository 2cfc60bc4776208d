"""Atomic ``.npz`` checkpoints without pickles.

:func:`save_npz_atomic` writes the archive through :func:`xplstm.atomic.write_atomic` (temporary
file in the target's folder, fsync, rename), so a reader sees either the old file or the complete
new one, never a half-written file. The archive lands at exactly the path given (NumPy's
``savez`` would append ``.npz`` to a name without it). :func:`load_npz` reads with
``allow_pickle=False`` and turns truncated or foreign files into a ``ValueError`` naming the path.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .atomic import write_atomic
from .backend import asnumpy

__all__ = ["ArrayHeader", "NpzReader", "load_npz", "save_npz_atomic"]

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
    RuntimeError,  # zipfile: an encrypted member
    TypeError,  # a .npy header naming no valid dtype
    OverflowError,
)
# Deflate expands at most about 1032-fold; a member declaring more is refused unread.
MAX_DEFLATE_RATIO = 1032
# A .npy header is a short dict literal; NumPy's own limit for trusted files is 10000.
MAX_HEADER_BYTES = 10000
# Kinds of array a checkpoint holds: bools, integers, floats and unicode text.
ARRAY_KINDS = "biufU"


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


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` member declares about its array, read without reading the data."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class NpzReader:
    """An ``.npz`` archive whose members' ``.npy`` headers are checked on opening, data unread.

    Opening reads the zip directory and each member's header only, and refuses (``ValueError``
    naming the path) anything that is not a plain ``.npy`` member of numbers or text, or whose
    declared size disagrees with its header, or exceeds what its compressed bytes can expand
    to: so no later :meth:`read` allocates more than the file can hold. Callers compare
    :attr:`headers` with what they expect before reading anything.

    Parameters
    ----------
    path : str or path-like

    Attributes
    ----------
    path : str
    headers : dict of str to ArrayHeader
        By array name (the member name without ``.npy``), in the archive's order.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        As ``open`` raises them.
    ValueError
        If the file is truncated, damaged, not an ``.npz`` archive or holds pickles.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._handle = open(self.path, "rb")  # a missing file or a folder raises as itself
        try:
            with self._errors():
                if self._handle.read(6) == b"\x93NUMPY":
                    raise ValueError("it holds a single .npy array, not an .npz archive")
                self._handle.seek(0)
                self._zip = zipfile.ZipFile(self._handle)
                self._members: dict[str, zipfile.ZipInfo] = {}
                self.headers: dict[str, ArrayHeader] = {}
                for info in self._zip.infolist():
                    self._add_member(info)
        except BaseException:
            self._handle.close()
            raise

    def _errors(self) -> Any:
        return _NamingReadErrors(self.path)

    def _add_member(self, info: zipfile.ZipInfo) -> None:
        if not info.filename.endswith(".npy"):
            raise ValueError(f"member {info.filename!r} is not a .npy array")
        name = info.filename[: -len(".npy")]
        if name in self._members:
            raise ValueError(f"member {info.filename!r} appears twice")
        if info.compress_type == zipfile.ZIP_STORED:
            most = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            most = MAX_DEFLATE_RATIO * info.compress_size + 64
        else:
            raise ValueError(f"member {info.filename!r} uses an unsupported compression")
        if info.file_size > most:
            raise ValueError(
                f"member {info.filename!r} declares {info.file_size} bytes, more than its "
                f"{info.compress_size} stored bytes can hold"
            )
        with self._zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"member {info.filename!r} has .npy version {version}")
            shape, _, dtype = read_header(member, max_header_size=MAX_HEADER_BYTES)
            data_offset = member.tell()
        if dtype.kind not in ARRAY_KINDS or dtype.hasobject or dtype.fields is not None:
            raise ValueError(
                f"member {info.filename!r} has dtype {dtype}; a checkpoint holds only numbers "
                "and text (never pickles)"
            )
        header = ArrayHeader(tuple(int(size) for size in shape), dtype)
        if data_offset + header.nbytes != info.file_size:
            raise ValueError(
                f"member {info.filename!r} declares shape {header.shape} of {dtype} "
                f"({header.nbytes} bytes) but holds {info.file_size - data_offset} bytes"
            )
        self._members[name] = info
        self.headers[name] = header

    def read(self, name: str) -> np.ndarray:
        """The array ``name`` (its size was checked against the file on opening)."""
        with self._errors(), self._zip.open(self._members[name]) as member:
            array = np.lib.format.read_array(
                member, allow_pickle=False, max_header_size=MAX_HEADER_BYTES
            )
            member.read()  # to the end, so that the CRC is checked
            return array

    def read_all(self) -> dict[str, np.ndarray]:
        """Every array, in the archive's order."""
        return {name: self.read(name) for name in self.headers}

    def close(self) -> None:
        self._zip.close()
        self._handle.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _NamingReadErrors:
    """Turns what a damaged archive makes zipfile and NumPy raise into a ``ValueError``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        if error is None or not isinstance(error, _READ_ERRORS):
            return
        message = str(error)
        if message.startswith(f"{self.path} "):  # already ours
            return
        raise ValueError(
            f"{self.path} is not a readable .npz archive (truncated, damaged or another "
            f"format): {message}"
        ) from error


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
        If the file is truncated, damaged, not an ``.npz`` archive, holds pickled objects, or
        declares members larger than it can hold (see :class:`NpzReader`); the message names
        ``path``.
    """
    with NpzReader(path) as reader:
        return reader.read_all()
