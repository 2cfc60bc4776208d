"""Course and numerics behaviour found by review: devices, warnings, pickles, decorators."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import reference
from kernel_harness.host import host_compiler
from kernel_harness.stand_in import install_stand_in

import xplstm


def lstm_problem(seed=0):
    rng = np.random.default_rng(seed)
    p = reference.random_lstm_parameters(rng, 3, 5, 2)
    return p, rng.standard_normal((3, 4, 6)), rng.standard_normal((5, 4))


def test_course_backward_with_inf_input_is_nan_without_warnings():
    p, x, a0 = lstm_problem()
    x[0, 0, 0] = np.inf
    a, y, c, caches = xplstm.lstm_forward(x, a0, p)  # RuntimeWarnings are errors in the suite
    grads = xplstm.lstm_backward(np.ones_like(a), caches)
    assert np.isnan(grads["dWf"]).any() and np.isfinite(grads["dx"][:, 1:]).all()


def test_pickled_course_caches_give_the_same_gradients():
    p, x, a0 = lstm_problem(1)
    a, _, _, caches = xplstm.lstm_forward(x, a0, p)
    restored = pickle.loads(pickle.dumps(caches))
    assert restored.record.xp is np
    want, got = (
        xplstm.lstm_backward(np.ones_like(a), caches),
        xplstm.lstm_backward(np.ones_like(a), restored),
    )
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_public_activations_find_their_backend_and_name_bad_input():
    x = np.array([-1e4, 0.0, 1e4], dtype=np.float32)
    assert xplstm.sigmoid(x).tolist() == [0.0, 0.5, 1.0]
    assert xplstm.sigmoid(x).dtype == np.float32
    probabilities = xplstm.softmax(np.array([[1.0, np.inf], [2.0, 0.0]]))
    np.testing.assert_allclose(
        probabilities[:, 0], reference.softmax(np.array([[1.0], [2.0]]))[:, 0]
    )
    assert np.isnan(probabilities[:, 1]).all()  # inf - inf: NaN, without a warning
    with pytest.raises(TypeError, match="x must be a floating-point NumPy or CuPy array, got "):
        xplstm.sigmoid(np.arange(3))


def test_no_grad_decorates_plain_and_generator_functions_with_or_without_parentheses():
    @xplstm.no_grad
    def bare():
        return xplstm.is_grad_enabled()

    @xplstm.no_grad()
    def steps():
        received = yield xplstm.is_grad_enabled()
        yield received, xplstm.is_grad_enabled()

    assert bare() is False and xplstm.is_grad_enabled()
    generator = steps()
    assert next(generator) is False and xplstm.is_grad_enabled()
    assert generator.send("x") == ("x", False) and xplstm.is_grad_enabled()
    with pytest.raises(TypeError, match="no_grad takes no arguments"):
        xplstm.no_grad(3)


@pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
def test_course_runs_on_the_arrays_gpu_and_refuses_mixed_gpus(monkeypatch):
    cupy = install_stand_in(monkeypatch, device=0, device_count=2)
    p, x, a0 = lstm_problem(2)
    with cupy.cuda.Device(1):
        x1, a01 = cupy.asarray(x), cupy.asarray(a0)
        p1 = {key: cupy.asarray(value) for key, value in p.items()}
    a, y, c, caches = xplstm.lstm_forward(x1, a01, p1)
    assert a.device.id == 1 and y.device.id == 1
    with cupy.cuda.Device(1):  # like CuPy, ones_like allocates on the current device
        da = cupy.ones_like(a)
    assert xplstm.lstm_backward(da, caches)["dx"].device.id == 1
    with pytest.raises(TypeError, match=r"x is on GPU 1 but da is on GPU 0"):
        xplstm.lstm_backward(cupy.ones_like(a), caches)
    p0 = {key: cupy.asarray(value) for key, value in p.items()}  # on device 0
    with pytest.raises(TypeError, match=r"is on GPU 0 but x is on GPU 1"):
        xplstm.lstm_forward(x1, a01, p0)
