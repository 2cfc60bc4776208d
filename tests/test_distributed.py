"""Data-parallel inference and training on a real Dask LocalCluster with two worker processes."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from conftest import assert_close  # noqa: E402

import xplstm  # noqa: E402
from xplstm import distributed as xdist  # noqa: E402
from xplstm.training.losses import mean_squared_error  # noqa: E402
from xplstm.training.optim import Adam  # noqa: E402

# The workers are separate processes: ship this module's helpers by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

STEPS, BATCH, INPUTS, HIDDEN = 6, 10, 3, 4


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as connected:
        yield connected


FIT_ULPS = 2**19
"""Eight Adam steps divide by running gradient magnitudes, which amplifies the reduction-order
rounding between chunked and single-process gradients far beyond the one-pass bound."""


def problem(seed=0, bidirectional=True):
    rng = np.random.default_rng(seed)
    model = xplstm.LSTM(
        INPUTS, HIDDEN, num_layers=2, bidirectional=bidirectional, dtype="float64", seed=seed
    )
    x = rng.standard_normal((STEPS, BATCH, INPUTS))
    dy = rng.standard_normal((STEPS, BATCH, HIDDEN * model.num_directions))
    lengths = rng.integers(1, STEPS + 1, size=BATCH)
    return model, x, dy, lengths


def test_forward_equals_single_process(client):
    model, x, _, lengths = problem()
    want_y, (want_h, want_c) = model(x, lengths=lengths)
    chunked = da.from_array(x, chunks=(STEPS, 3, INPUTS))
    y, (h_n, c_n) = xdist.forward(model, chunked, lengths=lengths, return_state=True)
    y, h_n, c_n = client.compute([y, h_n, c_n], sync=True)
    assert_close(y, want_y, np.float64)
    assert_close(h_n, want_h, np.float64)
    assert_close(c_n, want_c, np.float64)


def test_forward_rechunks_other_axes_with_a_warning(client):
    model, x, _, _ = problem(bidirectional=False)
    chunked = da.from_array(x, chunks=(2, 5, INPUTS))
    with pytest.warns(UserWarning, match="rechunking"):
        y = xdist.forward(model, chunked)
    assert_close(y.compute(), model(x)[0], np.float64)


def test_grads_equal_single_process_and_leave_model_grads_alone(client):
    model, x, dy, lengths = problem(1)
    model(x, lengths=lengths)
    model.backward(dy)
    want = {name: value.copy() for name, value in model.grads.items()}
    model.zero_grad()
    got = xdist.grads(
        model,
        da.from_array(x, chunks=(STEPS, 4, INPUTS)),
        da.from_array(dy, chunks=(STEPS, 2, dy.shape[2])),
        lengths=lengths,
        client=client,
    )
    assert set(got) == set(want)
    for name in want:
        assert_close(got[name], want[name], np.float64, name=name)
    assert all(not value.any() for value in model.grads.values())


def _die_once(block, marker):
    """Kill the worker process running this task the first time it runs anywhere."""
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return block


def test_a_worker_killed_during_grads_is_retried_and_exact(client, tmp_path):
    model, x, dy, _ = problem(2, bidirectional=False)
    model(x)
    model.backward(dy)
    want = {name: value.copy() for name, value in model.grads.items()}
    marker = str(tmp_path / "killed")
    chunked = da.from_array(x, chunks=(STEPS, 5, INPUTS))
    # meta= keeps dask from calling _die_once here to infer the output type
    dying = chunked.map_blocks(_die_once, marker=marker, meta=np.empty((0, 0, 0)))
    got = xdist.grads(model, dying, da.from_array(dy, chunks=(STEPS, 5, HIDDEN)), client=client)
    assert os.path.exists(marker), "no worker was killed"
    for name in want:
        assert_close(got[name], want[name], np.float64, name=name)


def test_value_and_grads_weight_chunks_by_batch_share(client):
    model, x, _, _ = problem(3, bidirectional=False)
    targets = np.random.default_rng(3).standard_normal((STEPS, BATCH, HIDDEN))
    y, _ = model(x)
    want_value, dy = mean_squared_error(y, targets)
    model.backward(dy)
    value, got = xdist.value_and_grads(
        model,
        da.from_array(x, chunks=(STEPS, (3, 7), INPUTS)),
        da.from_array(targets, chunks=(STEPS, 5, HIDDEN)),
        mean_squared_error,
        client=client,
    )
    assert_close(np.float64(value), np.float64(want_value), np.float64)
    for name, expected in model.grads.items():
        assert_close(got[name], expected, np.float64, name=name)


def single_process_fit(model, x, targets, optimizer, epochs):
    history = []
    for _ in range(epochs):
        model.zero_grad()
        y, _ = model(x)
        value, dy = mean_squared_error(y, targets)
        model.backward(dy)
        optimizer.step(model.grads)
        history.append(value)
    return history


def test_fit_reduces_the_loss_and_matches_single_process(client, tmp_path):
    model, x, _, _ = problem(4, bidirectional=False)
    reference = xplstm.LSTM(INPUTS, HIDDEN, num_layers=2, dtype="float64")
    reference.load_state_dict(model.state_dict())
    targets = 0.5 * np.tanh(np.random.default_rng(4).standard_normal((STEPS, BATCH, HIDDEN)))
    history = xdist.fit(
        model,
        da.from_array(x, chunks=(STEPS, 5, INPUTS)),
        da.from_array(targets, chunks=(STEPS, 5, HIDDEN)),
        loss=mean_squared_error,
        optimizer=Adam(dict(model.named_parameters()), lr=0.02),
        epochs=8,
        client=client,
        checkpoint_dir=tmp_path,
    )
    want = single_process_fit(
        reference, x, targets, Adam(dict(reference.named_parameters()), lr=0.02), 8
    )
    assert history[-1] < 0.8 * history[0]
    assert_close(np.asarray(history), np.asarray(want), np.float64, ulps=FIT_ULPS)
    for name, value in reference.state_dict().items():
        assert_close(model.state_dict()[name], value, np.float64, name=name, ulps=FIT_ULPS)
    final = xplstm.LSTM.load(tmp_path / "final.npz")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(final.state_dict()[name], value)


def test_fit_resumes_bitwise(client, tmp_path):
    def run(epochs, resume, model=None):
        model = model or problem(5, bidirectional=False)[0]
        x, targets = problem(5, bidirectional=False)[1], np.zeros((STEPS, BATCH, HIDDEN))
        xdist.fit(
            model,
            da.from_array(x, chunks=(STEPS, 5, INPUTS)),
            da.from_array(targets, chunks=(STEPS, 5, HIDDEN)),
            loss=mean_squared_error,
            optimizer=Adam(dict(model.named_parameters()), lr=0.05),
            epochs=epochs,
            client=client,
            checkpoint_dir=tmp_path / ("resumed" if resume is not None else "straight"),
            resume=bool(resume),
        )
        return model

    straight = run(6, None)
    run(3, False)  # interrupted after three epochs
    resumed = run(6, True)
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value)


def test_bad_inputs_are_clear_errors():
    model, x, dy, _ = problem(bidirectional=False)
    with pytest.raises(TypeError, match="x must be a dask array"):
        xdist.forward(model, x)
    with pytest.raises(ValueError, match=r"x must have shape \(T, m, input_size=3\)"):
        xdist.forward(model, da.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"dy must be a dask array of shape \(6, 10, 4\)"):
        xdist.grads(model, da.from_array(x), da.zeros((STEPS, 4, HIDDEN)))
    with pytest.raises(ValueError, match=r"lengths\[5\] = 9"):
        xdist.forward(model, da.from_array(x, chunks=(STEPS, 4, INPUTS)), lengths=[5] * 5 + [9] * 5)
    with pytest.raises(ValueError, match="epochs must be a non-negative int"):
        xdist.fit(model, da.from_array(x), da.from_array(dy), loss=mean_squared_error,
                  optimizer=None, epochs=True)  # fmt: skip


def test_lazy_forward_uses_the_parameters_at_call_time(client):
    model, x, _, _ = problem(6, bidirectional=False)
    want, _ = model(x)
    y = xdist.forward(model, da.from_array(x, chunks=(STEPS, 5, INPUTS)))
    model.weight_ih_l0[...] += 1.0  # after the call, before the compute
    np.testing.assert_array_equal(y.compute(), want)


def test_fit_with_mini_batches_of_chunks_matches_the_same_schedule_in_one_process(client):
    model, x, _, _ = problem(7, bidirectional=False)
    reference = xplstm.LSTM(INPUTS, HIDDEN, num_layers=2, dtype="float64")
    reference.load_state_dict(model.state_dict())
    targets = 0.5 * np.tanh(np.random.default_rng(7).standard_normal((STEPS, BATCH, HIDDEN)))
    history = xdist.fit(
        model,
        da.from_array(x, chunks=(STEPS, 2, INPUTS)),
        da.from_array(targets, chunks=(STEPS, 5, HIDDEN)),
        loss=mean_squared_error,
        optimizer=Adam(dict(model.named_parameters()), lr=0.02),
        epochs=2,
        chunks_per_step=2,
        seed=3,
        client=client,
    )
    optimizer = Adam(dict(reference.named_parameters()), lr=0.02)
    want = []
    for epoch in range(2):
        order = np.random.default_rng([3, epoch]).permutation(5)
        for start in range(0, 5, 2):
            rows = np.concatenate(
                [np.arange(2 * i, 2 * i + 2) for i in sorted(order[start : start + 2])]
            )
            reference.zero_grad()
            y, _ = reference(x[:, rows])
            value, dy = mean_squared_error(y, targets[:, rows])
            reference.backward(dy)
            optimizer.step(reference.grads)
            want.append(value)
    assert len(history) == 6
    assert_close(np.asarray(history), np.asarray(want), np.float64, ulps=FIT_ULPS)
    for name, value in reference.state_dict().items():
        assert_close(model.state_dict()[name], value, np.float64, name=name, ulps=FIT_ULPS)


def test_fit_holds_its_checkpoint_folder_like_train(client, tmp_path):
    from xplstm.training.run_folder import RunFolder

    model, x, _, _ = problem(5, bidirectional=False)
    targets = np.zeros((STEPS, BATCH, HIDDEN))

    def run(**options):
        return xdist.fit(
            model, da.from_array(x, chunks=(STEPS, 5, INPUTS)),
            da.from_array(targets, chunks=(STEPS, 5, HIDDEN)), loss=mean_squared_error,
            optimizer=Adam(dict(model.named_parameters()), lr=0.01), epochs=1, client=client,
            checkpoint_dir=tmp_path, **options,
        )  # fmt: skip

    run()
    with pytest.raises(ValueError, match="already holds a training run"):
        run()
    assert len(run(overwrite=True)) == 1  # started over: one epoch, one step of both chunks
    with RunFolder(tmp_path), pytest.raises(RuntimeError, match="in use by another"):
        run(resume=True)


def test_variants_in_evaluation_equal_single_process(client):
    """Peepholes and zoneout's expectations reach the workers; training-mode zoneout and
    recurrent dropout are refused, naming the flag."""
    rng = np.random.default_rng(3)
    model = xplstm.LSTM(
        INPUTS, HIDDEN, 2, peephole=True, zoneout_cell=0.3, zoneout_hidden=0.2,
        recurrent_dropout=0.1, dtype="float64", seed=3,
    )  # fmt: skip
    for _, value in model.named_parameters():
        value[...] = rng.uniform(-0.5, 0.5, value.shape)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))
    chunked = da.from_array(x, chunks=(STEPS, 3, INPUTS))
    with pytest.raises(ValueError, match=r"zoneout_cell=0.3 in training mode.*model.eval\(\)"):
        xdist.forward(model, chunked)
    want_y, _ = model.eval()(x)
    y = client.compute(xdist.forward(model, chunked), sync=True)
    assert_close(y, want_y, np.float64)
