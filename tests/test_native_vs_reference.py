"""The pybind11 engine (dp.Network) against the pure-NumPy reference (deltaprop.reference).

Every valid (hidden activation, output activation, loss) pairing x float32/float64 is run
at two batch sizes; the awkward shapes and batch sizes are swept on a few pairings.
"""

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import reference

from helpers import (
    DTYPES,
    build_pair,
    PAIRINGS,
    assert_same,
    assert_same_history,
    assert_same_list,
    assert_same_parameters,
    assert_same_scalar,
    make_inputs,
    make_targets,
    one_hot_rows,
    pairing_id,
)

PAIRING_SIZES = [5, 7, 6, 3]  # two hidden layers: BP2 is applied twice
# 70 and 33 inputs: whole vectors of every width (4, 8, 16 lanes) and a ragged rest. Batches
# up to 128 rows go through the small-batch kernels (with AVX-512, float32 forward blocks of 4
# rows, 7 = 4 + 3 and 128, or of 5, 10 = 5 + 5 and 33 = 6 x 5 + 3; float64 always of 5),
# larger ones through the BLAS.
SWEEP_SIZES = [[1, 1], [1, 5], [5, 1], [13, 7, 3], [31, 17, 11], [70, 33, 9]]
SWEEP_BATCHES = [1, 2, 7, 10, 33, 128, 257]
SWEEP_PAIRINGS = [
    ("sigmoid", "sigmoid", "quadratic"),
    ("tanh", "sigmoid", "binary_crossentropy"),
    ("relu", "softmax", "categorical_crossentropy"),
    ("leaky_relu", "softmax", "quadratic"),
]
LEARNING_RATE = 0.05  # 0.1 diverges for the all-identity network on one row


def data(sizes, loss, m, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return make_inputs(rng, m, sizes[0], dtype), make_targets(rng, loss, m, sizes[-1], dtype)


def check_trace(net, ref, X, Y, dtype, scale=1.0):
    t = net.trace(X, Y)
    r = ref.trace(X, Y)
    n = len(net.sizes) - 1
    assert len(t.zs) == n and len(t.deltas) == n and len(t.activations) == n + 1
    assert_same(t.activations[0], X, dtype, scale=0)
    assert_same_list(t.zs, r.zs, dtype, scale)
    assert_same_list(t.activations, r.activations, dtype, scale)
    assert_same_list(t.deltas, r.deltas, dtype, scale)
    assert_same_list(t.grad_b, r.grad_b, dtype, scale)
    assert_same_list(t.grad_w, r.grad_w, dtype, scale)
    assert_same_scalar(t.loss, r.loss, dtype, scale)
    return t


def check_all(net, ref, X, Y, dtype):
    """predict, trace, backprop, loss, then 20 SGD steps (parameters after each)."""
    assert_same(net.predict(X), ref.predict(X), dtype)
    t = check_trace(net, ref, X, Y, dtype)
    assert_same(t.activations[-1], net.predict(X), dtype)

    grad_b, grad_w = net.backprop(X, Y)
    ref_b, ref_w = ref.backprop(X, Y)
    assert_same_list(grad_b, ref_b, dtype)
    assert_same_list(grad_w, ref_w, dtype)
    # backprop and trace are the same computation
    assert_same_list(grad_b, t.grad_b, dtype)
    assert_same_list(grad_w, t.grad_w, dtype)

    assert_same_scalar(net.loss(X, Y), ref.loss(X, Y), dtype)

    for _ in range(20):
        net.step(X, Y, LEARNING_RATE)
        ref.step(X, Y, LEARNING_RATE)
    assert_same_list(net.weights, ref.weights, dtype)
    assert_same_list(net.biases, ref.biases, dtype)
    assert_same(net.predict(X), ref.predict(X), dtype)


# --- the full pairing matrix ------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 7])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pairing", PAIRINGS, ids=pairing_id)
def test_pairing_matrix(pairing, dtype, m, product_path):
    hidden, output, loss = pairing
    net, ref = build_pair(PAIRING_SIZES, hidden, output, loss, dtype)
    X, Y = data(PAIRING_SIZES, loss, m, dtype)
    check_all(net, ref, X, Y, dtype)


# predict runs in chunks of 2048 rows, fewer when a hidden layer is wide (8 MiB per chunk's
# activations, at least 64 rows), each layer overwriting its Z with A = f(Z) in one of two
# buffers and the output layer writing into the result: 4500 rows are chunks of 2048, 2048
# and 404; the 40000-wide float64 layer makes chunks of 64 rows (4 x 64 + 44 for 300).
@pytest.mark.parametrize(
    "sizes, m", [([13, 31, 17, 5], 4500), ([4, 40000, 3], 300), ([9, 4], 2500)], ids=str
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pairing", SWEEP_PAIRINGS, ids=pairing_id)
def test_predict_in_chunks(pairing, dtype, sizes, m, product_path):
    hidden, output, loss = pairing
    net, ref = build_pair(sizes, hidden, output, loss, dtype)
    X, Y = data(sizes, loss, m, dtype)
    predictions = net.predict(X)
    assert predictions.shape == (m, sizes[-1]) and predictions.dtype == dtype
    assert_same(predictions, ref.predict(X), dtype)
    # A few rows alone give what they gave among the others: no chunk sees another's rows.
    rows = [row for row in (0, 63, 64, 2047, 2048, m - 1) if row < m]
    assert_same(net.predict(X[rows]), predictions[rows], dtype)
    assert_same(net.predict(X), predictions, dtype, scale=0)  # the buffers are reused


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pairing", PAIRINGS, ids=pairing_id)
def test_fit_matches_reference(pairing, dtype):
    hidden, output, loss = pairing
    net, ref = build_pair(PAIRING_SIZES, hidden, output, loss, dtype)
    X, Y = data(PAIRING_SIZES, loss, 53, dtype)  # 53 = 7 * 7 + 4: a partial last batch
    kwargs = dict(epochs=2, batch_size=7, learning_rate=LEARNING_RATE, shuffle=True, seed=3)
    history = net.fit(X, Y, **kwargs)
    ref_history = ref.fit(X, Y, **kwargs)
    assert_same_list(net.weights, ref.weights, dtype)
    assert_same_list(net.biases, ref.biases, dtype)
    assert history.epochs == 2
    assert len(history.loss) == 2
    assert_same(np.asarray(history.loss, dtype=dtype), np.asarray(ref_history.loss, dtype=dtype))


# fit's step on small batches: plain SGD (with or without Nielsen's L2, with or without
# dropout) is fused into the weight-gradient kernel, which also sums the squares for the
# gradient norms; the other optimizers and clipping take the gradient, then update.
FIT_OPTIONS = {
    "sgd": {},
    "sgd-l2": dict(l2=2.0),
    "sgd-dropout": dict(dropout=0.3),
    "momentum": dict(optimizer="momentum"),
    "sgd-clip": dict(clip_norm=0.5),
}


@pytest.mark.parametrize("options", FIT_OPTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fit_on_every_product_path(options, dtype, product_path):
    sizes = [70, 33, 9]
    net, ref = build_pair(sizes, "sigmoid", "softmax", "categorical_crossentropy", dtype)
    X, Y = data(sizes, "categorical_crossentropy", 75, dtype)  # batches of 32, 32 and 11 rows
    kwargs = dict(epochs=2, batch_size=32, learning_rate=0.5, seed=3, **FIT_OPTIONS[options])
    history = net.fit(X, Y, **kwargs)
    ref_history = ref.fit(X, Y, **kwargs)
    assert_same_parameters(net, ref, dtype)
    assert_same_history(history, ref_history, dtype)


# Batch 1 (online SGD) without dropout takes its own fused step: one pass over each W for
# the update and BP2 (micro::row_step), the gradient norm as ||delta|| ||a||, and a forward
# of plain dot products when a layer has fewer inputs than one vector holds (2 and 3 here;
# 70 inputs have whole vectors of every width and a ragged rest).
@pytest.mark.parametrize("sizes", [[2, 16, 1], [3, 9, 5, 2], [70, 33, 9]], ids=str)
@pytest.mark.parametrize("options", ["sgd", "sgd-l2", "sgd-dropout", "momentum"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fit_batch_one_on_every_product_path(sizes, options, dtype, product_path):
    net, ref = build_pair(sizes, "tanh", None, "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 29, dtype)
    kwargs = dict(epochs=2, batch_size=1, learning_rate=0.02, seed=3, **FIT_OPTIONS[options])
    history = net.fit(X, Y, **kwargs)
    ref_history = ref.fit(X, Y, **kwargs)
    assert_same_parameters(net, ref, dtype, scale=4)
    assert_same_history(history, ref_history, dtype, scale=4)


def test_fit_batch_one_replays_as_steps(product_path):
    """An epoch of batch 1 is the same computation, bit for bit, as step() row by row."""
    dtype = np.dtype(np.float64)
    sizes = [3, 9, 5, 2]
    net, _ = build_pair(sizes, "tanh", None, "quadratic", dtype)
    manual, _ = build_pair(sizes, "tanh", None, "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 17, dtype)
    net.fit(X, Y, epochs=1, batch_size=1, learning_rate=0.05, shuffle=False)
    for row in range(17):
        manual.step(X[row : row + 1], Y[row : row + 1], 0.05)
    assert_same_list(net.weights, manual.weights, dtype, scale=0)
    assert_same_list(net.biases, manual.biases, dtype, scale=0)


# Plain SGD steps on 2 to 128 rows with AVX-512 keep the first layer's W as a transposed panel
# when it has 4 to 16 whole vectors of outputs (64 to 271 float32, 32 to 135 float64): the
# panel's columns are sums of outer products, the rows past its last whole vector (the rest of
# 100, 135 or 271 outputs) stay with the row kernels. 272 outputs: no panel in either type.
# 33 and 17 inputs: a ragged end of the rows for the row kernels' gradient. The edges in
# float64: 32 outputs (4 vectors; 5 inputs, fewer than a vector) and 136 (17: no panel).
PANEL_SIZES = [[33, 64, 5], [50, 100, 10], [20, 135, 3], [17, 271, 2], [33, 272, 4],
               [5, 32, 3], [9, 136, 2]]


@pytest.mark.parametrize("batch_size", [2, 10, 33])
@pytest.mark.parametrize("options", ["sgd", "sgd-l2", "sgd-dropout"])
@pytest.mark.parametrize("sizes", PANEL_SIZES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fit_on_a_first_layer_panel(sizes, options, batch_size, dtype, product_path):
    """75 rows: batches of 2 and a last one of 1 row (the rows' kernels again), of 10 and a
    last one of 5, of 33, 33 and 9."""
    net, ref = build_pair(sizes, "tanh", "softmax", "categorical_crossentropy", dtype)
    X, Y = data(sizes, "categorical_crossentropy", 75, dtype)
    kwargs = dict(epochs=2, batch_size=batch_size, learning_rate=0.1, seed=3,
                  **FIT_OPTIONS[options])
    history = net.fit(X, Y, **kwargs)
    ref_history = ref.fit(X, Y, **kwargs)
    assert_same_parameters(net, ref, dtype)
    assert_same_history(history, ref_history, dtype)


@pytest.mark.parametrize("rows, batch_size", [(75, 10), (65, 32), (40, 40)])
@pytest.mark.parametrize("sizes", PANEL_SIZES[:3], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_steps_replay_an_epoch_on_a_first_layer_panel(sizes, rows, batch_size, dtype,
                                                      product_path):
    """step() forms the first layer's Z on a panel where an epoch's step would (and its
    update with the rows' gradient kernel, which forms the same sums in the same order as the
    panel's), so steps one by one are the epoch bit for bit: batches of 10 and a last one of
    5, of 32 and a last one of 1 row, one batch of 40."""
    net, _ = build_pair(sizes, "sigmoid", "softmax", "categorical_crossentropy", dtype)
    manual, _ = build_pair(sizes, "sigmoid", "softmax", "categorical_crossentropy", dtype)
    X, Y = data(sizes, "categorical_crossentropy", rows, dtype)
    net.fit(X, Y, epochs=2, batch_size=batch_size, learning_rate=0.5, shuffle=False)
    for _ in range(2):
        for start in range(0, rows, batch_size):
            manual.step(X[start:start + batch_size], Y[start:start + batch_size], 0.5)
    assert_same_list(net.weights, manual.weights, dtype, scale=0)
    assert_same_list(net.biases, manual.biases, dtype, scale=0)
    assert not np.array_equal(net.weights[0], build_pair(sizes, "sigmoid", "softmax",
                                                         "categorical_crossentropy",
                                                         dtype)[0].weights[0])


def step_through_shuffled_epochs(net, X, Y, epochs, batch_size, learning_rate, seed):
    """fit(shuffle=True)'s steps one by one with step(): each epoch's batches are chunks of
    default_rng(seed).permutation(n), drawn after the dropout key (drawn first, always)."""
    rng = np.random.default_rng(seed)
    rng.integers(0, 2**63, dtype=np.int64)  # the dropout key
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            net.step(X[rows], Y[rows], learning_rate)


@pytest.mark.parametrize("sizes", [[50, 100, 10], [5, 32, 3]], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_shuffled_steps_replay_an_epoch_on_a_first_layer_panel(sizes, dtype, product_path):
    """The same with shuffle=True (each batch's rows copied out of X in the epoch's
    order)."""
    net, _ = build_pair(sizes, "tanh", "softmax", "categorical_crossentropy", dtype)
    manual, _ = build_pair(sizes, "tanh", "softmax", "categorical_crossentropy", dtype)
    X, Y = data(sizes, "categorical_crossentropy", 70, dtype)
    net.fit(X, Y, epochs=2, batch_size=16, learning_rate=0.5, shuffle=True, seed=11)
    step_through_shuffled_epochs(manual, X, Y, epochs=2, batch_size=16, learning_rate=0.5,
                                 seed=11)
    assert_same_list(net.weights, manual.weights, dtype, scale=0)
    assert_same_list(net.biases, manual.biases, dtype, scale=0)


def test_consecutive_fits_apply_each_calls_settings():
    """A fit whose settings equal the last call's does not reconfigure the engine; one whose
    settings differ (or after reset_optimizer) does: the reference, configured every call,
    agrees after each."""
    dtype = np.dtype(np.float64)
    sizes = [4, 6, 3]
    net, ref = build_pair(sizes, "tanh", None, "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 24, dtype)
    calls = [dict(), dict(), dict(l2=5.0), dict(l2=5.0), dict(optimizer="momentum"),
             dict(optimizer="momentum"), "reset", dict(optimizer="momentum"), dict(dropout=0.2),
             dict(dropout=0.2, seed=9), dict(batch_size=1), dict(batch_size=1, l2=1.0)]
    for options in calls:
        if options == "reset":
            net.reset_optimizer()
            ref.reset_optimizer()
            continue
        kwargs = dict(dict(epochs=1, batch_size=5, learning_rate=0.1, seed=2), **options)
        assert_same_history(net.fit(X, Y, **kwargs), ref.fit(X, Y, **kwargs), dtype)
        assert_same_parameters(net, ref, dtype)


def test_fit_shuffle_order_is_the_specified_one():
    """fit's mini-batches are chunks of default_rng(seed).permutation(n), one per epoch,
    drawn after the dropout key (drawn first, always)."""
    dtype = np.dtype(np.float64)
    sizes = [4, 5, 2]
    net, _ = build_pair(sizes, "sigmoid", None, "quadratic", dtype)
    manual, _ = build_pair(sizes, "sigmoid", None, "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 23, dtype)
    net.fit(X, Y, epochs=2, batch_size=5, learning_rate=0.5, shuffle=True, seed=11)
    step_through_shuffled_epochs(manual, X, Y, epochs=2, batch_size=5, learning_rate=0.5,
                                 seed=11)
    assert_same_list(net.weights, manual.weights, dtype)
    assert_same_list(net.biases, manual.biases, dtype)


def test_fit_without_shuffle_is_steps_in_order():
    dtype = np.dtype(np.float64)
    sizes = [4, 5, 2]
    net, _ = build_pair(sizes, "tanh", "identity", "quadratic", dtype)
    manual, _ = build_pair(sizes, "tanh", "identity", "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 12, dtype)
    net.fit(X, Y, epochs=1, batch_size=5, learning_rate=0.2, shuffle=False)
    for start in range(0, 12, 5):
        manual.step(X[start : start + 5], Y[start : start + 5], 0.2)
    assert_same_list(net.weights, manual.weights, dtype)
    assert_same_list(net.biases, manual.biases, dtype)


# --- awkward shapes and batch sizes on a few pairings -----------------------------------------


@pytest.mark.parametrize("m", SWEEP_BATCHES)
@pytest.mark.parametrize("sizes", SWEEP_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pairing", SWEEP_PAIRINGS, ids=pairing_id)
def test_shapes_and_batch_sizes(pairing, dtype, sizes, m, product_path):
    hidden, output, loss = pairing
    net, ref = build_pair(sizes, hidden, output, loss, dtype, seed=5)
    X, Y = data(sizes, loss, m, dtype, seed=m)
    # Sums over up to 257 rows: the tolerance table's reasoning allows for sums of a few
    # hundred terms, so no scaling is needed.
    check_all(net, ref, X, Y, dtype)


# --- integer labels ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "hidden, output, loss, n_out",
    [
        ("relu", "softmax", "categorical_crossentropy", 4),
        ("sigmoid", "sigmoid", "binary_crossentropy", 1),
        ("sigmoid", "sigmoid", "binary_crossentropy", 3),
        ("tanh", "sigmoid", "quadratic", 4),
        ("sigmoid", "sigmoid", "quadratic", 1),
    ],
)
def test_integer_labels(hidden, output, loss, n_out, dtype):
    sizes = [6, 5, n_out]
    net, ref = build_pair(sizes, hidden, output, loss, dtype)
    rng = np.random.default_rng(7)
    m = 19
    X = make_inputs(rng, m, sizes[0], dtype)
    labels = rng.integers(0, max(n_out, 2), size=m)
    Y = one_hot_rows(labels, n_out, dtype)

    # labels and their one-hot encoding give the same result, natively and in the reference
    t_labels = check_trace(net, ref, X, labels, dtype)
    t_onehot = net.trace(X, Y)
    assert_same_list(t_labels.grad_w, t_onehot.grad_w, dtype, scale=0)
    assert_same_list(t_labels.grad_b, t_onehot.grad_b, dtype, scale=0)
    assert_same_scalar(t_labels.loss, t_onehot.loss, dtype, scale=0)
    assert_same_scalar(net.loss(X, labels), ref.loss(X, labels), dtype)

    net.fit(X, labels, epochs=2, batch_size=4, learning_rate=0.5, seed=1)
    ref.fit(X, labels, epochs=2, batch_size=4, learning_rate=0.5, seed=1)
    assert_same_list(net.weights, ref.weights, dtype)
    assert_same_list(net.biases, ref.biases, dtype)

    accuracy = net.evaluate(X, labels)
    predictions = net.predict(X)
    if n_out == 1:
        expected = np.mean((predictions[:, 0] > 0.5) == labels)
    else:
        expected = np.mean(np.argmax(predictions, axis=1) == labels)
    assert accuracy == pytest.approx(expected)
    assert accuracy == pytest.approx(ref.evaluate(X, labels))


# --- networks built from layers ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_network_from_layers(dtype):
    layers = [
        dp.Layer(6, 9, "relu", dtype=dtype, seed=1),
        dp.Layer(9, 5, "tanh", dtype=dtype, seed=2),
        dp.Layer(5, 4, "softmax", dtype=dtype, seed=3),
    ]
    net = dp.Network(layers=layers, loss="categorical_crossentropy")
    assert net.sizes == [6, 9, 5, 4]
    assert net.dtype == dtype
    assert net.n_layers == 3
    assert [layer.activation for layer in net.layers] == ["relu", "tanh", "softmax"]
    ref = reference.Network.from_network(net)
    assert ref.sizes == [6, 9, 5, 4]
    assert_same_list(ref.weights, net.weights, dtype, scale=0)
    assert_same_list(ref.biases, net.biases, dtype, scale=0)

    X, Y = data(net.sizes, "categorical_crossentropy", 11, dtype)
    check_all(net, ref, X, Y, dtype)

    # from_network copies: training the reference does not move the native network
    before = [w.copy() for w in net.weights]
    ref.step(X, Y, 1.0)
    assert_same_list(net.weights, before, dtype, scale=0)

    ref = reference.Network.from_network(net)
    kwargs = dict(epochs=2, batch_size=4, learning_rate=0.3, seed=9)
    net.fit(X, Y, **kwargs)
    ref.fit(X, Y, **kwargs)
    assert_same_list(net.weights, ref.weights, dtype)
    assert_same_list(net.biases, ref.biases, dtype)


# --- Nielsen's single-sample backprop ---------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "sizes, hidden, output, loss",
    [
        ([784, 30, 10], "sigmoid", None, "quadratic"),  # network.py's own network
        ([3, 4, 2], "sigmoid", None, "quadratic"),
        ([1, 1], "sigmoid", None, "quadratic"),
        ([5, 7, 3, 2], "tanh", "sigmoid", "binary_crossentropy"),
        ([5, 7, 3], "relu", "softmax", "categorical_crossentropy"),
    ],
)
def test_single_sample_matches_nielsen(sizes, hidden, output, loss, dtype):
    net, ref = build_pair(sizes, hidden, output, loss, dtype, seed=2)
    X, Y = data(sizes, loss, 1, dtype, seed=4)
    grad_b, grad_w = net.backprop(X, Y)
    nabla_b, nabla_w = ref.backprop_sample(X[0], Y[0])
    assert_same_list(grad_b, nabla_b, dtype)
    assert_same_list(grad_w, nabla_w, dtype)
    # a 1-D x is one row
    grad_b_1d, grad_w_1d = net.backprop(X[0], Y)
    assert_same_list(grad_b_1d, grad_b, dtype, scale=0)
    assert_same_list(grad_w_1d, grad_w, dtype, scale=0)


def test_backprop_is_mean_of_single_sample_gradients():
    """BP3/BP4 average over rows: the batch gradient is the mean of Nielsen's per-sample ones."""
    dtype = np.dtype(np.float64)
    sizes = [4, 6, 3]
    net, ref = build_pair(sizes, "sigmoid", None, "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 9, dtype)
    grad_b, grad_w = net.backprop(X, Y)
    samples = [ref.backprop_sample(X[i], Y[i]) for i in range(9)]
    for layer in range(2):
        assert_same(grad_b[layer], np.mean([s[0][layer] for s in samples], axis=0), dtype)
        assert_same(grad_w[layer], np.mean([s[1][layer] for s in samples], axis=0), dtype)


# --- defaults -----------------------------------------------------------------------------------


def test_fit_default_seed_is_zero():
    """The spec's signature is fit(..., shuffle=True, seed=0): the default order is seed 0's."""
    dtype = np.dtype(np.float64)
    sizes = [4, 5, 2]
    net, ref = build_pair(sizes, "sigmoid", None, "quadratic", dtype)
    X, Y = data(sizes, "quadratic", 23, dtype)
    net.fit(X, Y, epochs=2, batch_size=5, learning_rate=0.5)
    ref.fit(X, Y, epochs=2, batch_size=5, learning_rate=0.5, seed=0)
    assert_same_list(net.weights, ref.weights, dtype)
    assert_same_list(net.biases, ref.biases, dtype)


@pytest.mark.parametrize(
    "activation, loss", [("softmax", "categorical_crossentropy"), ("softmax", "quadratic")]
)
def test_single_layer_network_takes_output_activation_as_activation(activation, loss):
    """With sizes of length 2 the only layer is the output layer, so activation='softmax'
    (output=None) is valid, as in the reference."""
    dtype = np.dtype(np.float64)
    sizes = [4, 3]
    net, ref = build_pair(sizes, activation, None, loss, dtype)
    assert [layer.activation for layer in net.layers] == ["softmax"]
    X, Y = data(sizes, loss, 9, dtype)
    check_all(net, ref, X, Y, dtype)
