"""xplstm.devices: device strings and the one GPU probe (with stand-in CuPy modules)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from xplstm import backend, devices
from xplstm.devices import (
    ParsedDevice,
    device_scope,
    gpu_unavailable_reason,
    parse_device,
    require_cupy,
    select_device,
)


def fake_cupy(count=1, current=0, count_error=None):
    """A module that answers the probe like CuPy on a machine with ``count`` devices."""

    def get_device_count():
        if count_error is not None:
            raise count_error
        return count

    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count),
        Device=lambda index=None: types.SimpleNamespace(id=current if index is None else index),
    )
    return module


class _FailingImport:
    """A meta-path finder under which ``import cupy`` raises ``error``."""

    def __init__(self, error):
        self.error = error

    def find_spec(self, name, path=None, target=None):
        if name == "cupy":
            raise self.error
        return None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu", ParsedDevice("cpu", None)),
        ("cuda", ParsedDevice("cuda", None)),
        ("cuda:0", ParsedDevice("cuda", 0)),
        ("cuda:12", ParsedDevice("cuda", 12)),
    ],
)
def test_parse_device_reads_every_accepted_spelling(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda 0", " cpu"])
def test_parse_device_refuses_other_strings_naming_the_forms(text):
    with pytest.raises(ValueError, match=r"device must be 'cpu', 'cuda' or 'cuda:N', got"):
        parse_device(text)


@pytest.mark.parametrize("value", [0, None, b"cpu", ("cuda", 0)])
def test_parse_device_refuses_non_strings(value):
    with pytest.raises(TypeError, match=r"device must be a string such as 'cpu'.*got"):
        parse_device(value)


def test_probe_reports_a_missing_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes ``import cupy`` an ImportError
    reason = gpu_unavailable_reason()
    assert reason is not None and reason.startswith("CuPy is not installed")
    with pytest.raises(RuntimeError, match="CuPy is not installed") as raised:
        require_cupy()
    assert isinstance(raised.value.__cause__, ImportError)


def test_probe_reports_a_cupy_that_fails_to_import(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_FailingImport(OSError("libcuda.so.1")), *sys.meta_path])
    assert gpu_unavailable_reason() == "CuPy is installed but fails to import: libcuda.so.1"


def test_probe_reports_an_unusable_driver_and_no_device(monkeypatch):
    broken = fake_cupy(count_error=RuntimeError("cudaErrorInsufficientDriver"))
    monkeypatch.setitem(sys.modules, "cupy", broken)
    assert gpu_unavailable_reason() == (
        "CuPy is installed but CUDA is not usable: cudaErrorInsufficientDriver"
    )
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=0))
    assert gpu_unavailable_reason() == "CuPy is installed but no CUDA device was found"
    with pytest.raises(RuntimeError, match="no CUDA device was found"):
        require_cupy()


def test_probe_accepts_a_cupy_with_a_device(monkeypatch):
    cupy = fake_cupy(count=1)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    assert gpu_unavailable_reason() is None
    assert require_cupy() is cupy


def test_backend_re_exports_the_one_probe():
    assert backend.require_cupy is devices.require_cupy


def test_select_device_names_the_cuda_device_and_checks_it_exists(monkeypatch):
    selected = select_device("cpu")
    assert (selected.name, selected.index, selected.xp) == ("cpu", None, np)
    cupy = fake_cupy(count=2, current=1)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    assert select_device("cuda") == devices.SelectedDevice("cuda:1", 1, cupy)
    assert select_device("cuda:0").name == "cuda:0"
    with pytest.raises(ValueError, match=r"device 'cuda:2' does not exist: CUDA reports 2"):
        select_device("cuda:2")
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        select_device("cuda:0")
    with pytest.raises(ValueError, match="device must be"):  # syntax before the probe
        select_device("gpu")


def test_device_scope_on_the_cpu_does_nothing():
    with device_scope(None, np) as entered:
        assert entered is None


def test_parsing_and_importing_never_import_cupy():
    code = textwrap.dedent(
        """
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == "cupy":
                    raise AssertionError("cupy was imported")

        sys.meta_path.insert(0, Refuse())
        import xplstm, xplstm.devices as devices
        assert devices.parse_device("cuda:1") == devices.ParsedDevice("cuda", 1)
        assert devices.select_device("cpu").name == "cpu"
        xplstm.LSTM(2, 3)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
