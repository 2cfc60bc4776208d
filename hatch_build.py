"""Build hook: the sdist holds files that git tracks, never stray files of a working tree.

Hatchling leaves out what ``.gitignore`` ignores but would pack any other untracked file found
under the included folders (asv output, scratch scripts, another branch's files). In a git
checkout this hook adds every untracked file to the sdist's exclusions; outside one (building
from an unpacked sdist) it does nothing.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def untracked_files(root: str) -> list[str] | None:
    """Paths (relative, ``/``-separated) that git does not track under ``root``; ``None``
    outside a git work tree or without git."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--others", "-z"],
            cwd=root, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return [path for path in listing.stdout.decode("utf-8").split("\0") if path]


class _WithoutUntracked:
    """An exclusion spec (hatchling calls only ``match_file``) that also matches ``untracked``."""

    def __init__(self, spec: Any, untracked: list[str]) -> None:
        self.spec = spec
        self.untracked = frozenset(untracked)

    def match_file(self, relative_path: str) -> bool:
        if relative_path.replace(os.sep, "/") in self.untracked:
            return True
        return self.spec is not None and bool(self.spec.match_file(relative_path))


class TrackedFilesOnly(BuildHookInterface):
    """Exclude untracked files from the sdist."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "sdist":
            return
        untracked = untracked_files(self.root)
        if untracked:
            config = self.build_config
            # exclude_spec is a cached property: the walk over the files reads this value.
            config.__dict__["exclude_spec"] = _WithoutUntracked(config.exclude_spec, untracked)
