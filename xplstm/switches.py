"""On/off switches read from the environment, the one parser for every ``XPLSTM_*`` flag."""

from __future__ import annotations

import os

__all__ = ["env_choice", "env_switch"]

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


def env_choice(
    name: str, choices: tuple[str, ...], default: str, override: str | None = None
) -> str:
    """``override`` when given, else the environment variable ``name`` (unset or empty: the
    ``default``), lower-cased; anything outside ``choices`` is a ``ValueError``."""
    setting = override if override is not None else os.environ.get(name, "")
    setting = setting.strip().lower() or default
    if setting not in choices:
        source = "the argument" if override is not None else name
        raise ValueError(f"{source} must be one of {', '.join(choices)}, got {setting!r}")
    return setting
