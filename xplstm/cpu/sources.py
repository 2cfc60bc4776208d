"""What the compiled CPU kernels are built from, and the digest that ties a build to its headers.

Standard library only: the build hook (``hatch_build.py``) loads this file by path, before
xplstm or NumPy can be imported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["EXTENSION", "HEADERS", "SOURCE", "header_digest"]

EXTENSION = "xplstm.cpu._kernels"
"""The module the build hook writes and :mod:`xplstm.cpu` imports."""

SOURCE = Path(__file__).resolve().parent / "_kernels.cpp"
"""Its C++ source: loops over rows and units around the headers' element functions."""

HEADERS = ("activations.cuh", "lstm.cuh", "rnn.cuh")
"""The ``kernels/`` headers it compiles, in the order they are hashed."""


def header_digest(kernel_dir: Path | str) -> str:
    """SHA-256 (hex) of the headers in ``kernel_dir``, each name and text in turn.

    The build passes it into the module (``HEADER_DIGEST``); at import the digest of the
    headers beside the package must match, so a module built from an older header never runs.
    """
    digest = hashlib.sha256()
    for name in HEADERS:
        digest.update(name.encode() + b"\0")
        digest.update((Path(kernel_dir) / name).read_bytes() + b"\0")
    return digest.hexdigest()
