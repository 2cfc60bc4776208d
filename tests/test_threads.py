"""Issue 11, item 1: one ``xplstm.LSTM`` called from many threads at once.

Every call from a thread must return bitwise what the same call returns alone, and a backward
must never pick up another thread's forward.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import assert_close

import xplstm

THREADS = 8
ROUNDS = 3

# (num_layers, bidirectional, batch_first) x shapes (T, m) with and without lengths.
LAYERS = [(1, False, False), (2, True, False), (3, False, True), (2, True, True)]
SHAPES = [(1, 1), (5, 3), (9, 2), (4, 7), (12, 5)]


def _calls(model, rng):
    """One call per shape: (x, lengths, dy)."""
    calls = []
    for steps, batch in SHAPES:
        lengths = None if steps == 1 else rng.integers(1, steps + 1, size=batch)
        shape = (batch, steps) if model.batch_first else (steps, batch)
        x = rng.standard_normal((*shape, model.input_size)).astype(model.dtype)
        dy = rng.standard_normal((*shape, model.num_directions * model.hidden_size))
        calls.append((x, lengths, dy.astype(model.dtype)))
    return calls


def _run(model, call):
    x, lengths, dy = call
    y, (h_n, c_n) = model(x, lengths=lengths)
    dx, (dh0, dc0) = model.backward(dy, (h_n, c_n))  # any dstate: reuse the states' values
    return [y, h_n, c_n, dx, dh0, dc0]


@pytest.mark.parametrize("layers", LAYERS, ids=lambda c: "L{}-bi{}-bf{}".format(*c))
def test_many_threads_over_many_shapes_match_single_thread_results_bitwise(layers):
    num_layers, bidirectional, batch_first = layers
    model = xplstm.LSTM(
        3, 6, num_layers, bidirectional=bidirectional, batch_first=batch_first, seed=1
    )
    calls = _calls(model, np.random.default_rng(2))
    alone = []
    expected_grads = {name: np.zeros_like(g) for name, g in model.grads.items()}
    for call in calls:
        model.zero_grad()
        alone.append(_run(model, call))
        for name, gradient in model.grads.items():
            expected_grads[name] += gradient * THREADS * ROUNDS
    model.zero_grad()

    start = threading.Barrier(THREADS)

    def worker(offset):
        start.wait()  # all threads start together, each in its own order of shapes
        results = {}
        for round_ in range(ROUNDS):
            for k in range(len(calls)):
                index = (k + offset + round_) % len(calls)
                results.setdefault(index, []).append(_run(model, calls[index]))
        return results

    with ThreadPoolExecutor(THREADS) as pool:
        per_thread = list(pool.map(worker, range(THREADS)))
    for results in per_thread:
        for index, runs in results.items():
            for outputs in runs:
                for got, want in zip(outputs, alone[index], strict=True):
                    np.testing.assert_array_equal(got, want)
    for name, gradient in model.grads.items():  # the sum, in whatever order threads finished
        assert_close(gradient, expected_grads[name], model.dtype, name=name)


def _backward_error_in_a_thread(model, x, between=lambda: None):
    """The RuntimeError message of a backward in a new thread after its own forward (if ``x``)
    and ``between()`` run in the calling thread."""
    ready, resume, errors = threading.Event(), threading.Event(), []

    def other_thread():
        y = model(x)[0] if x is not None else np.ones((4, 2, 3), dtype=np.float32)
        ready.set()
        resume.wait()
        try:
            model.backward(np.ones_like(y))
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=other_thread)
    thread.start()
    ready.wait()
    between()
    resume.set()
    thread.join()
    assert errors, "the backward in the other thread did not fail"
    return errors[0]


def test_a_backward_never_takes_another_threads_forward():
    model = xplstm.LSTM(2, 3, seed=0)
    x = np.ones((4, 2, 2), dtype=np.float32)
    y, _ = model(x)
    assert "in this thread" in _backward_error_in_a_thread(model, None)
    model.backward(np.ones_like(y))  # this thread's forward is still pending


def test_load_state_dict_discards_every_threads_pending_forward():
    model = xplstm.LSTM(2, 3, seed=0)
    x = np.ones((4, 2, 2), dtype=np.float32)
    reload = lambda: model.load_state_dict(model.state_dict())  # noqa: E731
    assert "pending forward" in _backward_error_in_a_thread(model, x, reload)


def test_dask_threaded_map_blocks_with_one_shared_model_matches_numpy():
    dask_array = pytest.importorskip("dask.array")
    model = xplstm.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    x = np.random.default_rng(0).standard_normal((64, 6, 3)).astype(np.float32)
    expected = np.concatenate([model(x[i : i + 4])[0] for i in range(0, 64, 4)])
    chunks = dask_array.from_array(x, chunks=(4, 6, 3))
    y = chunks.map_blocks(
        lambda block: model(block)[0], chunks=(4, 6, 10), dtype=np.float32
    ).compute(scheduler="threads", num_workers=8)
    np.testing.assert_array_equal(y, expected)
