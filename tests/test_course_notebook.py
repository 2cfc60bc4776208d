"""The course notebook "Building your Recurrent Neural Network - Step by Step" (Course 5, week 1),
cell by cell, run unchanged against xplstm.

Each ``*_cell`` function below holds the code of one notebook cell that calls the course
functions, with only the learner's function definitions replaced by ``from xplstm import ...``.
Seeds, shapes, the way caches and gradients are indexed and the printed expressions are the
cell's. A cell that reads a variable defined by an earlier cell (the older copy does that twice)
takes it as an argument, computed by running that earlier cell first, as running the notebook in
order does. Each cell returns its namespace; the tests assert the notebook's published
"Expected Output" on it, to the number of digits it prints, and the shapes.

Copies read:

- older: ``antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step``,
  ``Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb`` (commit 64b9c3ad), variables
  ``x``, ``a0``, ``parameters``, ``caches``;
- newer: ``dscyrescotti/sequence-models``,
  ``Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb`` (commit 6e97ad59), variables
  ``x_tmp``, ``parameters_tmp``, ``caches_tmp``, with ``from public_tests import *`` (the same
  cells as in ``ArnavM3434/SequenceModels``,
  ``RNNs, LSTMs/Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb``).

The newer copy's forward cells end with a line such as ``rnn_forward_test(rnn_forward)`` from the
course's ``public_tests.py``, which is not part of the notebook (neither copy holds it); those lines
are left out of the cells here, and
``test_newer_copy_unit_test_lines_find_the_cache_layout_they_read`` checks, in this file's own
code, the cache layout those checks index.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import reference as ref

from xplstm import (
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    rnn_backward,
    rnn_cell_backward,
    rnn_cell_forward,
    rnn_forward,
)

SHORT_DA = "da covers 4 time steps but the caches hold 7"


def assert_printed(got, printed):
    """``got`` equals the value the notebook prints as ``printed``, to the digits it shows.

    The tolerance is half a unit in the last printed decimal (the print rounded the float64
    result), plus float64 rounding slack.
    """
    numbers = re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", printed)
    assert numbers, printed
    decimals = max(len(number.split(".")[1].split("e")[0]) for number in numbers)
    want = np.array([float(number) for number in numbers])
    got = np.ravel(np.asarray(got, dtype=np.float64))
    assert got.shape == want.shape, f"{got.shape} values, the notebook prints {want.shape}"
    np.testing.assert_allclose(got, want, rtol=0, atol=0.5 * 10.0**-decimals + 1e-13)


def assert_reference(got, want):
    """float64 agreement with an independent loop reference (tests/reference.py)."""
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- the published expected outputs

RNN_CELL_FORWARD = {
    "a_next[4]": """[ 0.59584544  0.18141802  0.61311866  0.99808218  0.85016201  0.99980978
                     -0.18887155  0.99815551  0.6531151   0.82872037]""",
    "yt_pred[1]": """[ 0.9888161   0.01682021  0.21140899  0.36817467  0.98988387  0.88945212
                       0.36920224  0.9966312   0.9982559   0.17746526]""",
}
RNN_FORWARD = {
    "a[4][1]": "[-0.99999375  0.77911235 -0.99861469 -0.99833267]",
    "y_pred[1][3]": "[ 0.79560373  0.86224861  0.11118257  0.81515947]",
    "caches[1][1][3]": "[-1.1425182  -0.34934272 -0.20889423  0.58662319]",
}
LSTM_CELL_FORWARD = {
    "a_next[4]": """[-0.66408471  0.0036921   0.02088357  0.22834167 -0.85575339  0.00138482
                      0.76566531  0.34631421 -0.00215674  0.43827275]""",
    "c_next[2]": """[ 0.63267805  1.00570849  0.35504474  0.20690913 -1.64566718  0.11832942
                      0.76449811 -0.0981561  -0.74348425 -0.26810932]""",
    "yt[1]": """[ 0.79913913  0.15986619  0.22412122  0.15606108  0.97057211  0.31146381
                  0.00943007  0.12666353  0.39380172  0.07828381]""",
    "cache[1][3]": """[-0.16263996  1.03729328  0.72938082 -0.54101719  0.02752074 -0.30821874
                        0.07651101 -1.03752894  1.41219977 -0.37647422]""",
}
LSTM_FORWARD = {
    "a[4][3][6]": "0.172117767533",
    "y[1][4][3]": "0.95087346185",
    "caches[1][1][1]": """[ 0.82797464  0.23009474  0.76201118 -0.22232814 -0.20075807  0.18656139
                            0.41005165]""",
    "c[1][2][1]": "-0.855544916718",
}
RNN_BACKWARD = {
    "dx[1][2]": "[-2.07101689 -0.59255627  0.02466855  0.01483317]",
    "da0[2][3]": "-0.314942375127",
    "dWax[3][1]": "11.2641044965",
    "dWaa[1][2]": "2.30333312658",
    "dba[4]": "[-0.74747722]",
}
LSTM_CELL_BACKWARD = {
    "dxt[1][2]": "3.23055911511",
    "da_prev[2][3]": "-0.0639621419711",
    "dc_prev[2][3]": "0.797522038797",
    "dWf[3][1]": "-0.147954838164",
    "dWi[1][2]": "1.05749805523",
    "dWc[3][1]": "2.30456216369",
    "dWo[1][2]": "0.331311595289",
    "dbf[4]": "[ 0.18864637]",
    "dbi[4]": "[-0.40142491]",
    "dbc[4]": "[ 0.25587763]",
    "dbo[4]": "[ 0.13893342]",
}
# The newer copy's published lstm_backward values (the older copy's disagree, see its test).
LSTM_BACKWARD = {
    "dx[1][2]": "[0.00218254  0.28205375 -0.48292508 -0.43281115]",
    "da0[2][3]": "0.312770310257",
    "dWf[3][1]": "-0.0809802310938",
    "dWi[1][2]": "0.40512433093",
    "dWc[3][1]": "-0.0793746735512",
    "dWo[1][2]": "0.038948775763",
    "dbf[4]": "[-0.15745657]",
    "dbi[4]": "[-0.50848333]",
    "dbc[4]": "[-0.42510818]",
    "dbo[4]": "[ -0.17958196]",
}
LSTM_GRADIENT_SHAPES = {
    "dx": (3, 10, 4),
    "da0": (5, 10),
    **{f"dW{gate}": (5, 8) for gate in "fico"},
    **{f"db{gate}": (5, 1) for gate in "fico"},
}


def gradient_entries(gradients):
    """The gradient entries the backward cells print, keyed as the notebook prints them."""
    index = {
        "dx": (1, 2), "dxt": (1, 2), "da0": (2, 3), "da_prev": (2, 3), "dc_prev": (2, 3),
        "dWax": (3, 1), "dWaa": (1, 2), "dba": (4,),
        "dWf": (3, 1), "dWi": (1, 2), "dWc": (3, 1), "dWo": (1, 2),
        "dbf": (4,), "dbi": (4,), "dbc": (4,), "dbo": (4,),
    }  # fmt: skip
    entries = {}
    for key, where in index.items():
        if key in gradients:
            value = gradients[key]
            for i in where:
                value = value[i]
            entries[key + "".join(f"[{i}]" for i in where)] = value
    return entries


# ------------------------------------------------------------------ the older copy's cells


def older_rnn_cell_forward_cell():
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    Waa = np.random.randn(5, 5)
    Wax = np.random.randn(5, 3)
    Wya = np.random.randn(2, 5)
    ba = np.random.randn(5, 1)
    by = np.random.randn(2, 1)
    parameters = {"Waa": Waa, "Wax": Wax, "Wya": Wya, "ba": ba, "by": by}

    a_next, yt_pred, cache = rnn_cell_forward(xt, a_prev, parameters)
    print("a_next[4] = ", a_next[4])
    print("a_next.shape = ", a_next.shape)
    print("yt_pred[1] =", yt_pred[1])
    print("yt_pred.shape = ", yt_pred.shape)
    return locals()


def older_rnn_forward_cell():
    np.random.seed(1)
    x = np.random.randn(3, 10, 4)
    a0 = np.random.randn(5, 10)
    Waa = np.random.randn(5, 5)
    Wax = np.random.randn(5, 3)
    Wya = np.random.randn(2, 5)
    ba = np.random.randn(5, 1)
    by = np.random.randn(2, 1)
    parameters = {"Waa": Waa, "Wax": Wax, "Wya": Wya, "ba": ba, "by": by}

    a, y_pred, caches = rnn_forward(x, a0, parameters)
    print("a[4][1] = ", a[4][1])
    print("a.shape = ", a.shape)
    print("y_pred[1][3] =", y_pred[1][3])
    print("y_pred.shape = ", y_pred.shape)
    print("caches[1][1][3] =", caches[1][1][3])
    print("len(caches) = ", len(caches))
    return locals()


def older_lstm_cell_forward_cell():
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    c_prev = np.random.randn(5, 10)
    Wf = np.random.randn(5, 5 + 3)
    bf = np.random.randn(5, 1)
    Wi = np.random.randn(5, 5 + 3)
    bi = np.random.randn(5, 1)
    Wo = np.random.randn(5, 5 + 3)
    bo = np.random.randn(5, 1)
    Wc = np.random.randn(5, 5 + 3)
    bc = np.random.randn(5, 1)
    Wy = np.random.randn(2, 5)
    by = np.random.randn(2, 1)

    parameters = {"Wf": Wf, "Wi": Wi, "Wo": Wo, "Wc": Wc, "Wy": Wy,
                  "bf": bf, "bi": bi, "bo": bo, "bc": bc, "by": by}  # fmt: skip

    a_next, c_next, yt, cache = lstm_cell_forward(xt, a_prev, c_prev, parameters)
    print("a_next[4] = ", a_next[4])
    print("a_next.shape = ", c_next.shape)
    print("c_next[2] = ", c_next[2])
    print("c_next.shape = ", c_next.shape)
    print("yt[1] =", yt[1])
    print("yt.shape = ", yt.shape)
    print("cache[1][3] =", cache[1][3])
    print("len(cache) = ", len(cache))
    return locals()


def older_lstm_forward_cell():
    np.random.seed(1)
    x = np.random.randn(3, 10, 7)
    a0 = np.random.randn(5, 10)
    Wf = np.random.randn(5, 5 + 3)
    bf = np.random.randn(5, 1)
    Wi = np.random.randn(5, 5 + 3)
    bi = np.random.randn(5, 1)
    Wo = np.random.randn(5, 5 + 3)
    bo = np.random.randn(5, 1)
    Wc = np.random.randn(5, 5 + 3)
    bc = np.random.randn(5, 1)
    Wy = np.random.randn(2, 5)
    by = np.random.randn(2, 1)

    parameters = {"Wf": Wf, "Wi": Wi, "Wo": Wo, "Wc": Wc, "Wy": Wy,
                  "bf": bf, "bi": bi, "bo": bo, "bc": bc, "by": by}  # fmt: skip

    a, y, c, caches = lstm_forward(x, a0, parameters)
    print("a[4][3][6] = ", a[4][3][6])
    print("a.shape = ", a.shape)
    print("y[1][4][3] =", y[1][4][3])
    print("y.shape = ", y.shape)
    print("caches[1][1[1]] =", caches[1][1][1])
    print("c[1][2][1]", c[1][2][1])
    print("len(caches) = ", len(caches))
    return locals()


def older_rnn_cell_backward_cell(ba):
    """``ba`` is not drawn here (the cell draws ``b``): it is the one the rnn_forward cell drew."""
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    Wax = np.random.randn(5, 3)
    Waa = np.random.randn(5, 5)
    Wya = np.random.randn(2, 5)
    b = np.random.randn(5, 1)
    by = np.random.randn(2, 1)
    parameters = {"Wax": Wax, "Waa": Waa, "Wya": Wya, "ba": ba, "by": by}

    a_next, yt, cache = rnn_cell_forward(xt, a_prev, parameters)

    da_next = np.random.randn(5, 10)
    gradients = rnn_cell_backward(da_next, cache)
    print('gradients["dxt"][1][2] =', gradients["dxt"][1][2])
    print('gradients["dxt"].shape =', gradients["dxt"].shape)
    print('gradients["da_prev"][2][3] =', gradients["da_prev"][2][3])
    print('gradients["da_prev"].shape =', gradients["da_prev"].shape)
    print('gradients["dWax"][3][1] =', gradients["dWax"][3][1])
    print('gradients["dWax"].shape =', gradients["dWax"].shape)
    print('gradients["dWaa"][1][2] =', gradients["dWaa"][1][2])
    print('gradients["dWaa"].shape =', gradients["dWaa"].shape)
    print('gradients["dba"][4] =', gradients["dba"][4])
    print('gradients["dba"].shape =', gradients["dba"].shape)
    return locals()


def older_rnn_backward_cell():
    np.random.seed(1)
    x = np.random.randn(3, 10, 4)
    a0 = np.random.randn(5, 10)
    Wax = np.random.randn(5, 3)
    Waa = np.random.randn(5, 5)
    Wya = np.random.randn(2, 5)
    ba = np.random.randn(5, 1)
    by = np.random.randn(2, 1)
    parameters = {"Wax": Wax, "Waa": Waa, "Wya": Wya, "ba": ba, "by": by}
    a, y, caches = rnn_forward(x, a0, parameters)
    da = np.random.randn(5, 10, 4)
    gradients = rnn_backward(da, caches)

    print('gradients["dx"][1][2] =', gradients["dx"][1][2])
    print('gradients["dx"].shape =', gradients["dx"].shape)
    print('gradients["da0"][2][3] =', gradients["da0"][2][3])
    print('gradients["da0"].shape =', gradients["da0"].shape)
    print('gradients["dWax"][3][1] =', gradients["dWax"][3][1])
    print('gradients["dWax"].shape =', gradients["dWax"].shape)
    print('gradients["dWaa"][1][2] =', gradients["dWaa"][1][2])
    print('gradients["dWaa"].shape =', gradients["dWaa"].shape)
    print('gradients["dba"][4] =', gradients["dba"][4])
    print('gradients["dba"].shape =', gradients["dba"].shape)
    return locals()


def older_lstm_cell_backward_cell():
    np.random.seed(1)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    c_prev = np.random.randn(5, 10)
    Wf = np.random.randn(5, 5 + 3)
    bf = np.random.randn(5, 1)
    Wi = np.random.randn(5, 5 + 3)
    bi = np.random.randn(5, 1)
    Wo = np.random.randn(5, 5 + 3)
    bo = np.random.randn(5, 1)
    Wc = np.random.randn(5, 5 + 3)
    bc = np.random.randn(5, 1)
    Wy = np.random.randn(2, 5)
    by = np.random.randn(2, 1)

    parameters = {"Wf": Wf, "Wi": Wi, "Wo": Wo, "Wc": Wc, "Wy": Wy,
                  "bf": bf, "bi": bi, "bo": bo, "bc": bc, "by": by}  # fmt: skip

    a_next, c_next, yt, cache = lstm_cell_forward(xt, a_prev, c_prev, parameters)

    da_next = np.random.randn(5, 10)
    dc_next = np.random.randn(5, 10)
    gradients = lstm_cell_backward(da_next, dc_next, cache)
    print('gradients["dxt"][1][2] =', gradients["dxt"][1][2])
    print('gradients["dxt"].shape =', gradients["dxt"].shape)
    print('gradients["da_prev"][2][3] =', gradients["da_prev"][2][3])
    print('gradients["da_prev"].shape =', gradients["da_prev"].shape)
    print('gradients["dc_prev"][2][3] =', gradients["dc_prev"][2][3])
    print('gradients["dc_prev"].shape =', gradients["dc_prev"].shape)
    print('gradients["dWf"][3][1] =', gradients["dWf"][3][1])
    print('gradients["dWf"].shape =', gradients["dWf"].shape)
    print('gradients["dWi"][1][2] =', gradients["dWi"][1][2])
    print('gradients["dWi"].shape =', gradients["dWi"].shape)
    print('gradients["dWc"][3][1] =', gradients["dWc"][3][1])
    print('gradients["dWc"].shape =', gradients["dWc"].shape)
    print('gradients["dWo"][1][2] =', gradients["dWo"][1][2])
    print('gradients["dWo"].shape =', gradients["dWo"].shape)
    print('gradients["dbf"][4] =', gradients["dbf"][4])
    print('gradients["dbf"].shape =', gradients["dbf"].shape)
    print('gradients["dbi"][4] =', gradients["dbi"][4])
    print('gradients["dbi"].shape =', gradients["dbi"].shape)
    print('gradients["dbc"][4] =', gradients["dbc"][4])
    print('gradients["dbc"].shape =', gradients["dbc"].shape)
    print('gradients["dbo"][4] =', gradients["dbo"][4])
    print('gradients["dbo"].shape =', gradients["dbo"].shape)
    return locals()


def older_lstm_backward_cell(Wy, by):
    """``Wy`` and ``by`` are not drawn here: they are the last ones an earlier cell defined."""
    np.random.seed(1)
    x = np.random.randn(3, 10, 7)
    a0 = np.random.randn(5, 10)
    Wf = np.random.randn(5, 5 + 3)
    bf = np.random.randn(5, 1)
    Wi = np.random.randn(5, 5 + 3)
    bi = np.random.randn(5, 1)
    Wo = np.random.randn(5, 5 + 3)
    bo = np.random.randn(5, 1)
    Wc = np.random.randn(5, 5 + 3)
    bc = np.random.randn(5, 1)

    parameters = {"Wf": Wf, "Wi": Wi, "Wo": Wo, "Wc": Wc, "Wy": Wy,
                  "bf": bf, "bi": bi, "bo": bo, "bc": bc, "by": by}  # fmt: skip

    a, y, c, caches = lstm_forward(x, a0, parameters)

    da = np.random.randn(5, 10, 4)
    gradients = lstm_backward(da, caches)

    print('gradients["dx"][1][2] =', gradients["dx"][1][2])
    print('gradients["dx"].shape =', gradients["dx"].shape)
    print('gradients["da0"][2][3] =', gradients["da0"][2][3])
    print('gradients["da0"].shape =', gradients["da0"].shape)
    print('gradients["dWf"][3][1] =', gradients["dWf"][3][1])
    print('gradients["dWf"].shape =', gradients["dWf"].shape)
    print('gradients["dWi"][1][2] =', gradients["dWi"][1][2])
    print('gradients["dWi"].shape =', gradients["dWi"].shape)
    print('gradients["dWc"][3][1] =', gradients["dWc"][3][1])
    print('gradients["dWc"].shape =', gradients["dWc"].shape)
    print('gradients["dWo"][1][2] =', gradients["dWo"][1][2])
    print('gradients["dWo"].shape =', gradients["dWo"].shape)
    print('gradients["dbf"][4] =', gradients["dbf"][4])
    print('gradients["dbf"].shape =', gradients["dbf"].shape)
    print('gradients["dbi"][4] =', gradients["dbi"][4])
    print('gradients["dbi"].shape =', gradients["dbi"].shape)
    print('gradients["dbc"][4] =', gradients["dbc"][4])
    print('gradients["dbc"].shape =', gradients["dbc"].shape)
    print('gradients["dbo"][4] =', gradients["dbo"][4])
    print('gradients["dbo"].shape =', gradients["dbo"].shape)
    return locals()


# ------------------------------------------------------------------ the newer copy's cells


def newer_rnn_cell_forward_cell():
    np.random.seed(1)
    xt_tmp = np.random.randn(3, 10)
    a_prev_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Waa"] = np.random.randn(5, 5)
    parameters_tmp["Wax"] = np.random.randn(5, 3)
    parameters_tmp["Wya"] = np.random.randn(2, 5)
    parameters_tmp["ba"] = np.random.randn(5, 1)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_next_tmp, yt_pred_tmp, cache_tmp = rnn_cell_forward(xt_tmp, a_prev_tmp, parameters_tmp)
    print("a_next[4] = \n", a_next_tmp[4])
    print("a_next.shape = \n", a_next_tmp.shape)
    print("yt_pred[1] =\n", yt_pred_tmp[1])
    print("yt_pred.shape = \n", yt_pred_tmp.shape)
    return locals()


def newer_rnn_forward_cell():
    np.random.seed(1)
    x_tmp = np.random.randn(3, 10, 4)
    a0_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Waa"] = np.random.randn(5, 5)
    parameters_tmp["Wax"] = np.random.randn(5, 3)
    parameters_tmp["Wya"] = np.random.randn(2, 5)
    parameters_tmp["ba"] = np.random.randn(5, 1)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_tmp, y_pred_tmp, caches_tmp = rnn_forward(x_tmp, a0_tmp, parameters_tmp)
    print("a[4][1] = \n", a_tmp[4][1])
    print("a.shape = \n", a_tmp.shape)
    print("y_pred[1][3] =\n", y_pred_tmp[1][3])
    print("y_pred.shape = \n", y_pred_tmp.shape)
    print("caches[1][1][3] =\n", caches_tmp[1][1][3])
    print("len(caches) = \n", len(caches_tmp))
    return locals()


def newer_lstm_cell_forward_cell():
    np.random.seed(1)
    xt_tmp = np.random.randn(3, 10)
    a_prev_tmp = np.random.randn(5, 10)
    c_prev_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Wf"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bf"] = np.random.randn(5, 1)
    parameters_tmp["Wi"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bi"] = np.random.randn(5, 1)
    parameters_tmp["Wo"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bo"] = np.random.randn(5, 1)
    parameters_tmp["Wc"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bc"] = np.random.randn(5, 1)
    parameters_tmp["Wy"] = np.random.randn(2, 5)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_next_tmp, c_next_tmp, yt_tmp, cache_tmp = lstm_cell_forward(
        xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp
    )

    print("a_next[4] = \n", a_next_tmp[4])
    print("a_next.shape = ", a_next_tmp.shape)
    print("c_next[2] = \n", c_next_tmp[2])
    print("c_next.shape = ", c_next_tmp.shape)
    print("yt[1] =", yt_tmp[1])
    print("yt.shape = ", yt_tmp.shape)
    print("cache[1][3] =\n", cache_tmp[1][3])
    print("len(cache) = ", len(cache_tmp))
    return locals()


def newer_lstm_forward_cell():
    np.random.seed(1)
    x_tmp = np.random.randn(3, 10, 7)
    a0_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Wf"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bf"] = np.random.randn(5, 1)
    parameters_tmp["Wi"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bi"] = np.random.randn(5, 1)
    parameters_tmp["Wo"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bo"] = np.random.randn(5, 1)
    parameters_tmp["Wc"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bc"] = np.random.randn(5, 1)
    parameters_tmp["Wy"] = np.random.randn(2, 5)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_tmp, y_tmp, c_tmp, caches_tmp = lstm_forward(x_tmp, a0_tmp, parameters_tmp)
    print("a[4][3][6] = ", a_tmp[4][3][6])
    print("a.shape = ", a_tmp.shape)
    print("y[1][4][3] =", y_tmp[1][4][3])
    print("y.shape = ", y_tmp.shape)
    print("caches[1][1][1] =\n", caches_tmp[1][1][1])
    print("c[1][2][1]", c_tmp[1][2][1])
    print("len(caches) = ", len(caches_tmp))
    return locals()


def newer_rnn_cell_backward_cell():
    np.random.seed(1)
    xt_tmp = np.random.randn(3, 10)
    a_prev_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Wax"] = np.random.randn(5, 3)
    parameters_tmp["Waa"] = np.random.randn(5, 5)
    parameters_tmp["Wya"] = np.random.randn(2, 5)
    parameters_tmp["ba"] = np.random.randn(5, 1)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_next_tmp, yt_tmp, cache_tmp = rnn_cell_forward(xt_tmp, a_prev_tmp, parameters_tmp)

    da_next_tmp = np.random.randn(5, 10)
    gradients_tmp = rnn_cell_backward(da_next_tmp, cache_tmp)
    print('gradients["dxt"][1][2] =', gradients_tmp["dxt"][1][2])
    print('gradients["dxt"].shape =', gradients_tmp["dxt"].shape)
    print('gradients["da_prev"][2][3] =', gradients_tmp["da_prev"][2][3])
    print('gradients["da_prev"].shape =', gradients_tmp["da_prev"].shape)
    print('gradients["dWax"][3][1] =', gradients_tmp["dWax"][3][1])
    print('gradients["dWax"].shape =', gradients_tmp["dWax"].shape)
    print('gradients["dWaa"][1][2] =', gradients_tmp["dWaa"][1][2])
    print('gradients["dWaa"].shape =', gradients_tmp["dWaa"].shape)
    print('gradients["dba"][4] =', gradients_tmp["dba"][4])
    print('gradients["dba"].shape =', gradients_tmp["dba"].shape)
    return locals()


def newer_rnn_backward_cell():
    np.random.seed(1)
    x_tmp = np.random.randn(3, 10, 4)
    a0_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Wax"] = np.random.randn(5, 3)
    parameters_tmp["Waa"] = np.random.randn(5, 5)
    parameters_tmp["Wya"] = np.random.randn(2, 5)
    parameters_tmp["ba"] = np.random.randn(5, 1)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_tmp, y_tmp, caches_tmp = rnn_forward(x_tmp, a0_tmp, parameters_tmp)
    da_tmp = np.random.randn(5, 10, 4)
    gradients_tmp = rnn_backward(da_tmp, caches_tmp)

    print('gradients["dx"][1][2] =', gradients_tmp["dx"][1][2])
    print('gradients["dx"].shape =', gradients_tmp["dx"].shape)
    print('gradients["da0"][2][3] =', gradients_tmp["da0"][2][3])
    print('gradients["da0"].shape =', gradients_tmp["da0"].shape)
    print('gradients["dWax"][3][1] =', gradients_tmp["dWax"][3][1])
    print('gradients["dWax"].shape =', gradients_tmp["dWax"].shape)
    print('gradients["dWaa"][1][2] =', gradients_tmp["dWaa"][1][2])
    print('gradients["dWaa"].shape =', gradients_tmp["dWaa"].shape)
    print('gradients["dba"][4] =', gradients_tmp["dba"][4])
    print('gradients["dba"].shape =', gradients_tmp["dba"].shape)
    return locals()


def newer_lstm_cell_backward_cell():
    np.random.seed(1)
    xt_tmp = np.random.randn(3, 10)
    a_prev_tmp = np.random.randn(5, 10)
    c_prev_tmp = np.random.randn(5, 10)
    parameters_tmp = {}
    parameters_tmp["Wf"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bf"] = np.random.randn(5, 1)
    parameters_tmp["Wi"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bi"] = np.random.randn(5, 1)
    parameters_tmp["Wo"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bo"] = np.random.randn(5, 1)
    parameters_tmp["Wc"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bc"] = np.random.randn(5, 1)
    parameters_tmp["Wy"] = np.random.randn(2, 5)
    parameters_tmp["by"] = np.random.randn(2, 1)

    a_next_tmp, c_next_tmp, yt_tmp, cache_tmp = lstm_cell_forward(
        xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp
    )

    da_next_tmp = np.random.randn(5, 10)
    dc_next_tmp = np.random.randn(5, 10)
    gradients_tmp = lstm_cell_backward(da_next_tmp, dc_next_tmp, cache_tmp)
    print('gradients["dxt"][1][2] =', gradients_tmp["dxt"][1][2])
    print('gradients["dxt"].shape =', gradients_tmp["dxt"].shape)
    print('gradients["da_prev"][2][3] =', gradients_tmp["da_prev"][2][3])
    print('gradients["da_prev"].shape =', gradients_tmp["da_prev"].shape)
    print('gradients["dc_prev"][2][3] =', gradients_tmp["dc_prev"][2][3])
    print('gradients["dc_prev"].shape =', gradients_tmp["dc_prev"].shape)
    print('gradients["dWf"][3][1] =', gradients_tmp["dWf"][3][1])
    print('gradients["dWf"].shape =', gradients_tmp["dWf"].shape)
    print('gradients["dWi"][1][2] =', gradients_tmp["dWi"][1][2])
    print('gradients["dWi"].shape =', gradients_tmp["dWi"].shape)
    print('gradients["dWc"][3][1] =', gradients_tmp["dWc"][3][1])
    print('gradients["dWc"].shape =', gradients_tmp["dWc"].shape)
    print('gradients["dWo"][1][2] =', gradients_tmp["dWo"][1][2])
    print('gradients["dWo"].shape =', gradients_tmp["dWo"].shape)
    print('gradients["dbf"][4] =', gradients_tmp["dbf"][4])
    print('gradients["dbf"].shape =', gradients_tmp["dbf"].shape)
    print('gradients["dbi"][4] =', gradients_tmp["dbi"][4])
    print('gradients["dbi"].shape =', gradients_tmp["dbi"].shape)
    print('gradients["dbc"][4] =', gradients_tmp["dbc"][4])
    print('gradients["dbc"].shape =', gradients_tmp["dbc"].shape)
    print('gradients["dbo"][4] =', gradients_tmp["dbo"][4])
    print('gradients["dbo"].shape =', gradients_tmp["dbo"].shape)
    return locals()


def newer_lstm_backward_cell():
    np.random.seed(1)
    x_tmp = np.random.randn(3, 10, 7)
    a0_tmp = np.random.randn(5, 10)

    parameters_tmp = {}
    parameters_tmp["Wf"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bf"] = np.random.randn(5, 1)
    parameters_tmp["Wi"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bi"] = np.random.randn(5, 1)
    parameters_tmp["Wo"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bo"] = np.random.randn(5, 1)
    parameters_tmp["Wc"] = np.random.randn(5, 5 + 3)
    parameters_tmp["bc"] = np.random.randn(5, 1)
    parameters_tmp["Wy"] = np.zeros((2, 5))  # unused, but needed for lstm_forward
    parameters_tmp["by"] = np.zeros((2, 1))  # unused, but needed for lstm_forward

    a_tmp, y_tmp, c_tmp, caches_tmp = lstm_forward(x_tmp, a0_tmp, parameters_tmp)

    da_tmp = np.random.randn(5, 10, 4)
    gradients_tmp = lstm_backward(da_tmp, caches_tmp)

    print('gradients["dx"][1][2] =', gradients_tmp["dx"][1][2])
    print('gradients["dx"].shape =', gradients_tmp["dx"].shape)
    print('gradients["da0"][2][3] =', gradients_tmp["da0"][2][3])
    print('gradients["da0"].shape =', gradients_tmp["da0"].shape)
    print('gradients["dWf"][3][1] =', gradients_tmp["dWf"][3][1])
    print('gradients["dWf"].shape =', gradients_tmp["dWf"].shape)
    print('gradients["dWi"][1][2] =', gradients_tmp["dWi"][1][2])
    print('gradients["dWi"].shape =', gradients_tmp["dWi"].shape)
    print('gradients["dWc"][3][1] =', gradients_tmp["dWc"][3][1])
    print('gradients["dWc"].shape =', gradients_tmp["dWc"].shape)
    print('gradients["dWo"][1][2] =', gradients_tmp["dWo"][1][2])
    print('gradients["dWo"].shape =', gradients_tmp["dWo"].shape)
    print('gradients["dbf"][4] =', gradients_tmp["dbf"][4])
    print('gradients["dbf"].shape =', gradients_tmp["dbf"].shape)
    print('gradients["dbi"][4] =', gradients_tmp["dbi"][4])
    print('gradients["dbi"].shape =', gradients_tmp["dbi"].shape)
    print('gradients["dbc"][4] =', gradients_tmp["dbc"][4])
    print('gradients["dbc"].shape =', gradients_tmp["dbc"].shape)
    print('gradients["dbo"][4] =', gradients_tmp["dbo"][4])
    print('gradients["dbo"].shape =', gradients_tmp["dbo"].shape)
    return locals()


# ------------------------------------------------------------------------------------ the tests


def assert_outputs(values, expected):
    assert values.keys() == expected.keys()
    for name, printed in expected.items():
        assert_printed(values[name], printed)


def assert_gradients(gradients, expected, shapes):
    assert_outputs(gradient_entries(gradients), expected)
    assert {key: gradients[key].shape for key in shapes} == shapes


def test_older_rnn_cell_forward_cell(capsys):
    """rnn_cell_forward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = older_rnn_cell_forward_cell()
    assert_outputs({"a_next[4]": ns["a_next"][4], "yt_pred[1]": ns["yt_pred"][1]}, RNN_CELL_FORWARD)
    assert ns["a_next"].shape == (5, 10)
    assert ns["yt_pred"].shape == (2, 10)
    assert "a_next.shape =  (5, 10)" in capsys.readouterr().out


def test_newer_rnn_cell_forward_cell():
    """rnn_cell_forward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_rnn_cell_forward_cell()
    values = {"a_next[4]": ns["a_next_tmp"][4], "yt_pred[1]": ns["yt_pred_tmp"][1]}
    assert_outputs(values, RNN_CELL_FORWARD)
    assert ns["a_next_tmp"].shape == (5, 10)
    assert ns["yt_pred_tmp"].shape == (2, 10)


def test_older_rnn_forward_cell(capsys):
    """rnn_forward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = older_rnn_forward_cell()
    values = {
        "a[4][1]": ns["a"][4][1],
        "y_pred[1][3]": ns["y_pred"][1][3],
        "caches[1][1][3]": ns["caches"][1][1][3],
    }
    assert_outputs(values, RNN_FORWARD)
    assert ns["a"].shape == (5, 10, 4)
    assert ns["y_pred"].shape == (2, 10, 4)
    assert len(ns["caches"]) == 2
    assert "len(caches) =  2" in capsys.readouterr().out


def test_newer_rnn_forward_cell():
    """rnn_forward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_rnn_forward_cell()
    values = {
        "a[4][1]": ns["a_tmp"][4][1],
        "y_pred[1][3]": ns["y_pred_tmp"][1][3],
        "caches[1][1][3]": ns["caches_tmp"][1][1][3],
    }
    assert_outputs(values, RNN_FORWARD)
    assert ns["a_tmp"].shape == (5, 10, 4)
    assert ns["y_pred_tmp"].shape == (2, 10, 4)
    assert len(ns["caches_tmp"]) == 2


def test_older_lstm_cell_forward_cell():
    """lstm_cell_forward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = older_lstm_cell_forward_cell()
    values = {
        "a_next[4]": ns["a_next"][4],
        "c_next[2]": ns["c_next"][2],
        "yt[1]": ns["yt"][1],
        "cache[1][3]": ns["cache"][1][3],
    }
    assert_outputs(values, LSTM_CELL_FORWARD)
    assert ns["a_next"].shape == ns["c_next"].shape == (5, 10)
    assert ns["yt"].shape == (2, 10)
    assert len(ns["cache"]) == 10


def test_newer_lstm_cell_forward_cell():
    """lstm_cell_forward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_lstm_cell_forward_cell()
    values = {
        "a_next[4]": ns["a_next_tmp"][4],
        "c_next[2]": ns["c_next_tmp"][2],
        "yt[1]": ns["yt_tmp"][1],
        "cache[1][3]": ns["cache_tmp"][1][3],
    }
    assert_outputs(values, LSTM_CELL_FORWARD)
    assert ns["a_next_tmp"].shape == ns["c_next_tmp"].shape == (5, 10)
    assert ns["yt_tmp"].shape == (2, 10)
    assert len(ns["cache_tmp"]) == 10


def test_older_lstm_forward_cell():
    """lstm_forward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = older_lstm_forward_cell()
    values = {
        "a[4][3][6]": ns["a"][4][3][6],
        "y[1][4][3]": ns["y"][1][4][3],
        "caches[1][1][1]": ns["caches"][1][1][1],
        "c[1][2][1]": ns["c"][1][2][1],
    }
    assert_outputs(values, LSTM_FORWARD)
    assert ns["a"].shape == ns["c"].shape == (5, 10, 7)
    assert ns["y"].shape == (2, 10, 7)
    assert len(ns["caches"]) == 2


def test_newer_lstm_forward_cell():
    """lstm_forward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_lstm_forward_cell()
    values = {
        "a[4][3][6]": ns["a_tmp"][4][3][6],
        "y[1][4][3]": ns["y_tmp"][1][4][3],
        "caches[1][1][1]": ns["caches_tmp"][1][1][1],
        "c[1][2][1]": ns["c_tmp"][1][2][1],
    }
    assert_outputs(values, LSTM_FORWARD)
    assert ns["a_tmp"].shape == ns["c_tmp"].shape == (5, 10, 7)
    assert ns["y_tmp"].shape == (2, 10, 7)
    assert len(ns["caches_tmp"]) == 2


RNN_GRADIENT_SHAPES = {"dxt": (3, 10), "da_prev": (5, 10), "dWax": (5, 3), "dWaa": (5, 5),
                       "dba": (5, 1)}  # fmt: skip


def test_older_rnn_cell_backward_cell():
    """rnn_cell_backward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb).

    The cell draws ``b`` but builds ``parameters`` from ``ba``, the one the rnn_forward cell
    drew (the last cell before it to define ``ba``); its published values are for that ``ba``.
    """
    ns = older_rnn_cell_backward_cell(ba=older_rnn_forward_cell()["ba"])
    expected = {
        "dxt[1][2]": "-0.460564103059",
        "da_prev[2][3]": "0.0842968653807",
        "dWax[3][1]": "0.393081873922",
        "dWaa[1][2]": "-0.28483955787",
        "dba[4]": "[ 0.80517166]",
    }
    assert_gradients(ns["gradients"], expected, RNN_GRADIENT_SHAPES)


def test_newer_rnn_cell_backward_cell():
    """rnn_cell_backward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_rnn_cell_backward_cell()
    expected = {
        "dxt[1][2]": "-1.3872130506",
        "da_prev[2][3]": "-0.152399493774",
        "dWax[3][1]": "0.410772824935",
        "dWaa[1][2]": "1.15034506685",
        "dba[4]": "[ 0.20023491]",
    }
    assert_gradients(ns["gradients_tmp"], expected, RNN_GRADIENT_SHAPES)


RNN_SEQUENCE_SHAPES = {"dx": (3, 10, 4), "da0": (5, 10), "dWax": (5, 3), "dWaa": (5, 5),
                       "dba": (5, 1)}  # fmt: skip


def test_older_rnn_backward_cell():
    """rnn_backward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = older_rnn_backward_cell()
    assert_gradients(ns["gradients"], RNN_BACKWARD, RNN_SEQUENCE_SHAPES)


def test_newer_rnn_backward_cell():
    """rnn_backward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_rnn_backward_cell()
    assert_gradients(ns["gradients_tmp"], RNN_BACKWARD, RNN_SEQUENCE_SHAPES)
    want = ref.rnn_backward(ns["da_tmp"], ns["x_tmp"], ns["a0_tmp"], ns["parameters_tmp"])
    for key, value in want.items():
        assert_reference(ns["gradients_tmp"][key], value)


LSTM_CELL_GRADIENT_SHAPES = {
    "dxt": (3, 10),
    "da_prev": (5, 10),
    "dc_prev": (5, 10),
    **{f"dW{gate}": (5, 8) for gate in "fico"},
    **{f"db{gate}": (5, 1) for gate in "fico"},
}


def test_older_lstm_cell_backward_cell():
    """lstm_cell_backward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = older_lstm_cell_backward_cell()
    assert_gradients(ns["gradients"], LSTM_CELL_BACKWARD, LSTM_CELL_GRADIENT_SHAPES)


def test_newer_lstm_cell_backward_cell():
    """lstm_cell_backward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb)."""
    ns = newer_lstm_cell_backward_cell()
    assert_gradients(ns["gradients_tmp"], LSTM_CELL_BACKWARD, LSTM_CELL_GRADIENT_SHAPES)
    want = ref.lstm_cell_backward(
        ns["da_next_tmp"], ns["dc_next_tmp"], ns["xt_tmp"], ns["a_prev_tmp"], ns["c_prev_tmp"],
        ns["parameters_tmp"],
    )  # fmt: skip
    for key, value in want.items():
        assert_reference(ns["gradients_tmp"][key], value)


def test_newer_lstm_backward_cell():
    """lstm_backward test cell of the newer copy (dscyrescotti/sequence-models,
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb).

    The cell passes a 4-step ``da`` for a 7-step forward: xplstm warns and, like the course's
    loop, backpropagates through the first 4 steps. The published values agree with the float64
    loop reference over those steps (the copy's own printed run, from its learner's code, does
    not: its ``da0``, ``dWf``, ``dbf`` and ``dx`` at the first step differ).
    """
    with pytest.warns(UserWarning, match=SHORT_DA):
        ns = newer_lstm_backward_cell()
    gradients = ns["gradients_tmp"]
    assert_gradients(gradients, LSTM_BACKWARD, LSTM_GRADIENT_SHAPES)
    x, da = ns["x_tmp"], ns["da_tmp"]
    want = ref.lstm_backward(da, x[:, :, : da.shape[2]], ns["a0_tmp"], ns["parameters_tmp"])
    for key, value in want.items():
        assert_reference(gradients[key], value)


def test_older_lstm_backward_cell():
    """lstm_backward test cell of the older copy (repository
    antonio-f/Building_a_Recurrent_Neural_Network_Step_by_Step, path
    Building_a_Recurrent_Neural_Network_Step_by_Step.ipynb).

    The cell reads ``Wy`` and ``by`` from an earlier cell (the lstm_cell_backward cell is the last
    to define them before it); they do not enter the gradients. Like the newer cell it passes a
    4-step ``da`` for a 7-step forward, so xplstm warns and backpropagates through 4 steps.

    This copy's published "Expected Output" is wrong: only ``dx[1][2][3]`` (the last step, before
    anything is carried back) agrees with the float64 reference; ``da0``, every ``dW``/``db`` and
    the earlier ``dx`` entries do not (a known defect of older course versions' expected
    values; this file does not reconstruct its exact form). The cell draws the same random
    numbers as the newer copy's cell (its ``Wy``, ``by`` come from no draw),
    so the result is asserted against the float64 loop reference and
    against the newer copy's published values, which agree with it.
    """
    earlier = older_lstm_cell_backward_cell()
    with pytest.warns(UserWarning, match=SHORT_DA):
        ns = older_lstm_backward_cell(Wy=earlier["Wy"], by=earlier["by"])
    gradients = ns["gradients"]
    x, da = ns["x"], ns["da"]
    want = ref.lstm_backward(da, x[:, :, : da.shape[2]], ns["a0"], ns["parameters"])
    for key, value in want.items():
        assert_reference(gradients[key], value)
    assert_gradients(gradients, LSTM_BACKWARD, LSTM_GRADIENT_SHAPES)
    published_here = {"da0": -0.095911501954, "dWf": -0.0698198561274, "dbi": -0.06997391}
    got = {"da0": gradients["da0"][2][3], "dWf": gradients["dWf"][3][1],
           "dbi": gradients["dbi"][4][0]}  # fmt: skip
    for key, value in published_here.items():
        assert abs(got[key] - value) > 1e-3, f"{key}: the older published value now agrees"
    assert_printed(gradients["dx"][1][2][3], "-0.43281115")


def test_newer_copy_unit_test_lines_find_the_cache_layout_they_read():
    """The newer copy's (dscyrescotti/sequence-models) forward cells end with ``public_tests``
    calls (``rnn_cell_forward_tests(rnn_cell_forward)``, ``rnn_forward_test(rnn_forward)``,
    ``lstm_cell_forward_test(lstm_cell_forward)``, ``lstm_forward_test(lstm_forward)``). That
    module is not in the notebook; this checks the cache positions those checks index, on the
    cells' own results, against the float64 reference."""
    ns = newer_rnn_cell_forward_cell()
    cache = ns["cache_tmp"]
    assert [cache[i].shape for i in range(3)] == [(5, 10), (5, 10), (3, 10)]
    assert len(cache[3].keys()) == 5
    assert_reference(cache[0], ns["a_next_tmp"])
    assert_reference(cache[1], ns["a_prev_tmp"])
    assert_reference(cache[2], ns["xt_tmp"])

    ns = newer_rnn_forward_cell()
    caches = ns["caches_tmp"]
    assert len(caches[0]) == ns["x_tmp"].shape[2]
    assert np.allclose(caches[1], ns["x_tmp"])

    ns = newer_lstm_cell_forward_cell()
    cache = ns["cache_tmp"]
    assert len(cache) == 10
    _, _, _, gates = ref.lstm_cell_forward(
        ns["xt_tmp"], ns["a_prev_tmp"], ns["c_prev_tmp"], ns["parameters_tmp"]
    )
    for position, gate in zip((4, 5, 6, 7), gates, strict=True):
        assert_reference(cache[position], gate)  # ft, it, cct, ot
    for position, name in [(0, "a_next_tmp"), (1, "c_next_tmp"), (2, "a_prev_tmp"),
                           (3, "c_prev_tmp"), (8, "xt_tmp")]:  # fmt: skip
        assert_reference(cache[position], ns[name])

    ns = newer_lstm_forward_cell()
    caches = ns["caches_tmp"]
    assert len(caches[0]) == ns["x_tmp"].shape[2]
    assert len(caches[0][0]) == 10
    a, y, c = ref.lstm_forward(ns["x_tmp"], ns["a0_tmp"], ns["parameters_tmp"])
    assert_reference(ns["a_tmp"], a)
    assert_reference(ns["y_tmp"], y)
    assert_reference(ns["c_tmp"], c)
