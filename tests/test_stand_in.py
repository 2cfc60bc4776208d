"""The host stand-in for CuPy (``kernel_harness``) keeps CuPy's semantics where xplstm can tell.

Its arrays are not NumPy arrays and refuse to mix with them; its ``ElementwiseKernel`` runs the
operation text itself (CuPy's argument rules, no dispatch on the kernel name), so a corrupted
operation string fails the ``gpu`` tests run on it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close
from kernel_harness.cells import random_step, ref_lstm_backward
from kernel_harness.corrupt_operation import swapped
from kernel_harness.device_array import DeviceArray
from kernel_harness.host import host_compiler
from kernel_harness.stand_in import CUDARuntimeError, fake_cupy, install_stand_in

import xplstm.backend
from xplstm.cells import LSTMTwin
from xplstm.cuda.specs import kernel_preamble, kernel_specs

REPO = Path(__file__).resolve().parent.parent
needs_compiler = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")


@pytest.fixture
def cupy(monkeypatch):
    """A fresh stand-in installed as ``cupy`` for this test."""
    return install_stand_in(monkeypatch)


# --------------------------------------------------------------------------------- the arrays


def test_device_arrays_are_cupy_arrays_to_xplstm_and_not_numpy_arrays(cupy):
    device = cupy.zeros((2, 3), np.float32)
    assert type(device) is DeviceArray and isinstance(device, cupy.ndarray)
    assert not isinstance(device, np.ndarray) and not issubclass(DeviceArray, np.ndarray)
    assert xplstm.backend.get_array_module.__module__ == "xplstm.backend"  # nothing patched
    assert xplstm.backend.get_array_module(device) is cupy
    assert xplstm.backend.is_cupy_array(device) and not xplstm.backend.is_cupy_array(np.ones(2))
    assert xplstm.backend.device_name(device) == "GPU (cupy, device 0)"
    assert isinstance(cupy.ndarray((2, 2), np.float64), DeviceArray)


def test_numpy_subclasses_such_as_memmap_stay_cpu_arrays(cupy, tmp_path):
    class Tagged(np.ndarray):
        pass

    memmap = np.memmap(tmp_path / "data.bin", dtype=np.float64, mode="w+", shape=(2, 3))
    memmap[...] = 1.5
    tagged = np.arange(3.0).view(Tagged)
    for host in (memmap, tagged):
        assert xplstm.backend.get_array_module(host) is np
        assert not xplstm.backend.is_cupy_array(host)
        with pytest.raises(TypeError, match="cannot mix devices"):
            xplstm.backend.get_array_module(cupy.zeros(3), host)
        with pytest.raises(TypeError, match="Unsupported type"):
            cupy.add(cupy.asarray(host), host)
    copied = cupy.asarray(memmap)
    assert type(copied) is DeviceArray and type(copied.get()) is np.ndarray
    copied[...] = 0
    assert np.all(memmap == 1.5), "cupy.asarray must copy a host array"


def test_implicit_conversion_to_numpy_is_a_type_error(cupy):
    device = cupy.arange(3.0)
    for convert in (np.asarray, np.array, lambda a: a.__array__()):
        with pytest.raises(TypeError, match=r"Implicit conversion.*\.get\(\)"):
            convert(device)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.testing.assert_allclose(device, np.arange(3.0))
    host = device.get()
    assert type(host) is np.ndarray and cupy.asnumpy(device).tolist() == [0.0, 1.0, 2.0]
    host[0] = 5
    assert float(device[0]) == 0.0, "get() must copy"


def test_mixing_with_numpy_arrays_is_an_error(cupy):
    device, host = cupy.ones((2, 3)), np.ones((2, 3))
    mixes = [
        lambda: device + host,
        lambda: host + device,
        lambda: host * device,
        lambda: device @ host.T,
        lambda: cupy.add(device, host),
        lambda: cupy.multiply(device, 2, out=host),
        lambda: np.add(device, host),
        lambda: cupy.concatenate([device, host]),
        lambda: np.concatenate([device, host]),
        lambda: cupy.ascontiguousarray(host),
        lambda: device.dot(host.T),
        lambda: device.__iadd__(host),
    ]
    for mix in mixes:
        with pytest.raises(TypeError, match="Unsupported type"):
            mix()
    with pytest.raises(ValueError, match=r"non-scalar numpy\.ndarray"):
        device[...] = host
    device[0] = np.float32(4)  # scalars (Python or NumPy) are fine
    device[1] = np.array(3.0)
    assert (device + np.float64(1)).get().tolist() == [[5.0] * 3, [4.0] * 3]


def test_views_share_memory_and_out_returns_the_given_array(cupy):
    wide = cupy.zeros((3, 8))
    view = wide[:, ::2]
    view[...] = 1
    wide.T[0] += 2
    wide.reshape(24)[-1] = 7
    assert wide.get().tolist()[0] == [3, 0, 1, 0, 1, 0, 1, 0]
    assert wide.get()[2, 7] == 7
    element = wide[1, 2]
    assert isinstance(element, DeviceArray) and element.shape == ()
    element[...] = 9
    assert float(wide[1, 2]) == 9.0, "scalar indexing gives a 0-d view"
    out = cupy.empty((3, 4))
    assert cupy.multiply(view, 2, out=out) is out
    assert np.multiply(view, 3, out=out) is out and float(out[0, 0]) == 9.0
    assert cupy.tanh(out, out=out) is out
    total = wide.sum()
    assert isinstance(total, DeviceArray) and total.shape == () and float(total) == wide.get().sum()
    in_place = wide
    in_place *= 2
    assert in_place is wide and float(wide[2, 7]) == 14.0
    assert cupy.asarray(wide) is wide and wide.astype(wide.dtype, copy=False) is wide
    assert cupy.ascontiguousarray(wide) is wide and cupy.array(wide) is not wide


def test_cuda_names_answer_like_cupy(cupy):
    two = fake_cupy(device=0, device_count=2)
    assert two.cuda.runtime.getDeviceCount() == 2 and two.cuda.Device().id == 0
    with two.cuda.Device(1) as device:
        assert two.cuda.runtime.getDevice() == 1 and two.zeros(2).device == device
        assert isinstance(device, two.cuda.Device)
    assert two.cuda.runtime.getDevice() == 0 and two.zeros(2).device.id == 0
    with pytest.raises(CUDARuntimeError, match="invalid device ordinal"):
        with two.cuda.Device(2):
            pass
    assert fake_cupy(device_count=0).cuda.runtime.getDeviceCount() == 0
    two.cuda.get_current_stream().synchronize()
    two.cuda.runtime.deviceSynchronize()


# --------------------------------------------------------------------- ElementwiseKernel rules


@needs_compiler
def test_kernel_runs_the_operation_text_not_the_name(cupy):
    x = cupy.arange(4.0)
    plus = cupy.ElementwiseKernel("float64 x", "float64 y", "y = x + 1", "same_name")
    times = cupy.ElementwiseKernel("float64 x", "float64 y", "y = x * 10", "same_name")
    assert plus(x).get().tolist() == [1, 2, 3, 4]
    assert times(x).get().tolist() == [0, 10, 20, 30]
    raw = cupy.ElementwiseKernel("raw T x, int64 n", "raw T y", "y[i] = x[(i + n) % 4]", "rot")
    y = cupy.empty(4)
    assert raw(x, 1, y, size=4) is y and y.get().tolist() == [1, 2, 3, 0]


@needs_compiler
def test_kernel_broadcasts_and_writes_back_strided_element_outputs(cupy):
    kernel = cupy.ElementwiseKernel("T x, T y", "T z", "z = x - 2 * y", "axpy")
    x = cupy.asfortranarray(cupy.arange(6.0).reshape(2, 3))
    wide = cupy.zeros((2, 6))
    z = wide[:, ::2]
    assert kernel(x, cupy.asarray([1.0, 0.0, -1.0]), z) is z
    assert wide.get().tolist() == [[-2, 0, 1, 0, 4, 0], [1, 0, 4, 0, 7, 0]]
    scalar = cupy.ElementwiseKernel("float32 x, float32 a", "float32 y", "y = x + a", "shift")
    result = scalar(cupy.zeros(2, np.float32), 0.1)
    assert result.dtype == np.float32 and result.get()[0] == np.float32(0.1)


@needs_compiler
def test_kernel_argument_rules_are_cupys(cupy):
    element = cupy.ElementwiseKernel("float64 x", "float64 y", "y = x", "copy_element")
    raw = cupy.ElementwiseKernel("raw float64 x", "raw float64 y", "y[i] = x[i]", "copy_raw")
    x, y = cupy.arange(4.0), cupy.empty(4)
    with pytest.raises(ValueError, match=r"^Loop size is undecided\."):
        raw(x, y)
    with pytest.raises(ValueError, match=r"^Specified 'size' can"):
        element(x, y, size=4)
    with pytest.raises(ValueError, match="Output array size is Undecided"):
        cupy.ElementwiseKernel("float64 x", "raw float64 y", "y[i] = x", "alloc")(x)
    with pytest.raises(TypeError, match="Wrong number of arguments for copy_raw"):
        raw(x, y, y, size=4)
    with pytest.raises(TypeError, match="Type is mismatched"):
        raw(x.astype(np.float32), y, size=4)
    with pytest.raises(TypeError, match="Unsupported type"):
        raw(np.arange(4.0), y, size=4)
    with pytest.raises(ValueError, match="Out shape is mismatched"):
        element(cupy.zeros((2, 4)), cupy.empty(4))
    with pytest.raises(cupy.cuda.driver.CUDADriverError, match="raw argument x is not C-cont"):
        raw(cupy.arange(8.0)[::2], y, size=4)
    with pytest.raises(ValueError, match="Can not use 'i'"):
        cupy.ElementwiseKernel("float64 i", "float64 y", "y = i", "bad")
    assert element(x).get().tolist() == [0, 1, 2, 3]
    raw(cupy.empty(0), cupy.empty(0), size=0)
    assert [kernel.launches for kernel in cupy.kernels[:2]] == [1, 0]
    overlapping = cupy.ElementwiseKernel("raw float64 x", "raw float64 y", "y[i] = x[3 - i]", "rev")
    overlapping(x, x[::-1].copy(), size=4)
    shifted = cupy.arange(5.0)
    overlapping(shifted[1:], shifted[:4], size=4)  # the input is copied first, as in CuPy
    assert shifted.get().tolist() == [4, 3, 2, 1, 4]


@needs_compiler
def test_a_swapped_argument_in_an_operation_computes_wrong_numbers(cupy):
    dtype, shape = np.dtype(np.float64), (3, 4)
    rng = np.random.default_rng(1)
    spec = kernel_specs("lstm", dtype)["backward"]
    corrupt = dataclasses.replace(spec, operation=swapped(spec.operation, "c_prev", "c_next"))
    gates, _, c_prev = random_step(rng, *shape, dtype)
    gates = 0.5 + 0.4 * np.tanh(gates)  # plausible activations
    c_next, dy, dh, dc = (rng.normal(size=shape) for _ in range(4))
    expected = ref_lstm_backward(dy, dh, dc, gates, c_prev, c_next)
    results = []
    for definition in (spec, corrupt):
        kernel = cupy.ElementwiseKernel(definition.in_params, definition.out_params,
                                        definition.operation, definition.name,
                                        preamble=kernel_preamble("lstm"))  # fmt: skip
        arrays = {"gates": gates, "dy": dy, "dh": dh, "dc": dc, "c_prev": c_prev, "c_next": c_next}
        arrays = {name: cupy.asarray(value) for name, value in arrays.items()}
        kernel(*(arrays[n] for n in spec.in_names[:-1]), shape[1],
               *(arrays[n] for n in spec.out_names), size=gates.size // 4)  # fmt: skip
        results.append(arrays["gates"].get())
    assert_close(results[0], expected[0], dtype, 10.0, "the real operation")
    assert np.abs(results[1] - expected[0]).max() > 1e-3, "the swap went unnoticed"
    twin = LSTMTwin(np, dtype, *shape)
    twin_gates = gates.copy()
    twin.backward(twin_gates, dy, dh, dc.copy(), c_prev, c_next)
    assert_close(twin_gates, expected[0], dtype, 10.0, "twin")


@needs_compiler
def test_corrupting_an_operation_string_fails_the_stand_in_gpu_tests():
    """The gpu tests of the cells, on the stand-in, pass; with c_prev and c_next swapped in the
    LSTM backward operation (``kernel_harness.corrupt_operation``) they fail."""
    command = [
        sys.executable, "-m", "pytest", "-p", "kernel_harness.stand_in_gpu", "-m", "gpu", "-q",
        "-p", "no:cacheprovider", "-k", "lstm and (float64 or unfused) and not zero",
        str(REPO / "tests" / "test_gpu_cells.py"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    clean = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert " passed" in clean.stdout and "failed" not in clean.stdout
    corrupted = subprocess.run(
        [*command, "-p", "kernel_harness.corrupt_operation"], cwd=REPO,
        env={**env, "XPLSTM_CORRUPT_OPERATION": "lstm backward c_prev c_next"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert corrupted.returncode == 1, corrupted.stdout + corrupted.stderr
    assert " failed" in corrupted.stdout and "gate gradients" in corrupted.stdout, corrupted.stdout
