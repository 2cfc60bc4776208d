"""On/off switches read from the environment, the one parser for every ``XPLSTM_*`` flag."""

from __future__ import annotations

import os

__all__ = ["env_switch"]

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def env_switch(name: str, default: bool, override: bool | None = None) -> bool:
    """``override`` when given, else the environment variable ``name`` (unset or empty: the
    ``default``); any value other than 0/1, true/false, yes/no, on/off is a ``ValueError``."""
    if override is not None:
        return bool(override)
    setting = os.environ.get(name, "").strip().lower()
    if setting == "":
        return default
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    raise ValueError(f"{name} must be 0 or 1, got {setting!r}")
