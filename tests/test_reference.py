"""Tests of the pure NumPy reference alone: it is what the native core is checked against."""

import itertools
import types
import warnings

import numpy as np
import pytest
from helpers import error_on_warnings, assert_same, assert_same_list

from deltaprop import initializers, reference
from deltaprop._names import ACTIVATIONS, LOSSES, OUTPUT_ONLY_ACTIVATIONS, REQUIRED_OUTPUT
from deltaprop._validation import as_targets

HIDDEN = [name for name in ACTIVATIONS if name not in OUTPUT_ONLY_ACTIVATIONS]
PAIRINGS = [  # every valid (output activation, loss)
    (output, loss)
    for output, loss in itertools.product(ACTIVATIONS, LOSSES)
    if REQUIRED_OUTPUT.get(loss, output) == output
]
KINKED = {"relu", "leaky_relu"}


def make_targets(rng, m, n_out, loss):
    if loss == "categorical_crossentropy":
        return rng.integers(0, n_out, size=m)  # labels, one-hot encoded by the network
    return rng.uniform(0.0, 1.0, size=(m, n_out))


def parameters(net):
    """The network's own arrays (weights then biases), for perturbing in place."""
    return net.weights + net.biases


# ---- gradients: central finite differences over every parameter ----------------------------


def numerical_gradients(net, X, Y, h=1e-6):
    gradients = []
    for param in parameters(net):
        gradient = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + h
            loss_plus = net.loss(X, Y)
            param[index] = saved - h
            loss_minus = net.loss(X, Y)
            param[index] = saved
            gradient[index] = (loss_plus - loss_minus) / (2 * h)
        gradients.append(gradient)
    return gradients


def network_away_from_kinks(sizes, hidden, output, loss, m=5):
    """A network and batch whose relu-like pre-activations all satisfy |z| >= 1e-3, and
    at least a third of them are active (so the gradients do not vanish)."""
    kinked = [index for index, name in enumerate([hidden] * (len(sizes) - 2) + [output])
              if name in KINKED]
    for seed in range(100):
        rng = np.random.default_rng(seed)
        net = reference.Network(sizes, hidden, output, loss, seed=seed, init="large")
        X = rng.standard_normal((m, sizes[0]))
        Y = make_targets(rng, m, sizes[-1], loss)
        zs = net.trace(X, Y).zs
        if all(np.abs(zs[index]).min() >= 1e-3 and (zs[index] > 0).mean() >= 1 / 3
               for index in kinked):
            return net, X, Y
    raise AssertionError("no seed keeps the relu pre-activations away from the kink")


@pytest.mark.parametrize("sizes", [[3, 4, 2], [2, 3, 3, 2]], ids=str)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_backprop_matches_finite_differences(sizes, hidden, output, loss):
    net, X, Y = network_away_from_kinks(sizes, hidden, output, loss)
    grad_b, grad_w = net.backprop(X, Y)
    expected = numerical_gradients(net, X, Y)
    analytic = grad_w + grad_b
    assert any(np.abs(g).max() > 1e-4 for g in analytic), "gradient vanishes: a vacuous check"
    # rounding in C(w + h) - C(w - h) is about eps |C| / h = 2e-10 |C|; truncation h^2 C''' / 6
    atol = 1e-8 * max(1.0, net.loss(X, Y))
    for index, (got, want) in enumerate(zip(analytic, expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=atol, err_msg=f"parameter {index}")


@pytest.mark.parametrize("name", HIDDEN)
def test_derivatives_match_finite_differences(name):
    f, f_prime = reference.ACTIVATION_FUNCTIONS[name]
    z = np.array([-3.0, -0.7, -0.01, 0.02, 0.4, 2.5])
    h = 1e-6
    np.testing.assert_allclose(f_prime(z), (f(z + h) - f(z - h)) / (2 * h), rtol=1e-7, atol=1e-9)


def test_softmax_jvp_matches_the_full_jacobian():
    rng = np.random.default_rng(1)
    z, g = rng.standard_normal((2, 5))
    a = reference.softmax(z)
    jacobian = np.diag(a) - np.outer(a, a)  # da_i / dz_j
    np.testing.assert_allclose(reference.softmax_jvp(a, g), jacobian.T @ g, rtol=1e-12)


# ---- one SGD step worked out by hand ------------------------------------------------------


def test_hand_worked_sgd_step_2_2_1_sigmoid_quadratic():
    net = reference.Network([2, 2, 1], "sigmoid", loss="quadratic")
    net.weights = [np.array([[0.5, -0.5], [0.25, 0.75]]), np.array([[1.0, -2.0]])]
    net.biases = [np.array([0.0, 0.5]), np.array([0.5])]
    X = np.array([[1.0, -1.0]])
    Y = np.array([[1.0]])

    # Z1 = W1 x + b1 = [0.5 + 0.5 + 0, 0.25 - 0.75 + 0.5]
    Z1 = np.array([[1.0, 0.0]])
    # A1 = sigmoid(Z1) = [1 / (1 + e^-1), 1/2]
    A1 = np.array([[0.7310585786300049, 0.5]])
    # Z2 = 1.0 * 0.7310585786300049 - 2.0 * 0.5 + 0.5
    Z2 = np.array([[0.2310585786300049]])
    # A2 = 1 / (1 + e^-0.2310585786300049)
    A2 = np.array([[0.5575090141074611]])
    # C = 1/2 (A2 - 1)^2
    loss = 0.09789913629807552
    # BP1: D2 = (A2 - y) * A2 * (1 - A2)
    #         = -0.4424909858925389 * 0.5575090141074611 * 0.4424909858925389
    D2 = np.array([[-0.1091593019190241]])
    # BP2: D1 = (D2 W2) * A1 (1 - A1) = [D2 * 1.0 * 0.19661193324148185, D2 * -2.0 * 0.25]
    D1 = np.array([[-0.021462021381589924, 0.05457965095951205]])
    # BP3 (m = 1): grad_b = D
    grad_b = [np.array([-0.021462021381589924, 0.05457965095951205]),
              np.array([-0.1091593019190241])]
    # BP4 (m = 1): grad_W2 = D2^T A1 = [D2 * 0.7310585786300049, D2 * 0.5]; grad_W1 = D1^T x
    grad_w = [np.array([[-0.021462021381589924, 0.021462021381589924],
                        [0.05457965095951205, -0.05457965095951205]]),
              np.array([[-0.07980184410516532, -0.05457965095951205]])]
    # W <- W - 0.5 grad_W, b <- b - 0.5 grad_b
    new_weights = [np.array([[0.510731010690795, -0.510731010690795],
                             [0.22271017452024397, 0.777289825479756]]),
                   np.array([[1.0399009220525826, -1.972710174520244]])]
    new_biases = [np.array([0.010731010690794962, 0.472710174520244]),
                  np.array([0.554579650959512])]

    trace = net.trace(X, Y)
    assert_same_list(trace.zs, [Z1, Z2])
    assert_same_list(trace.activations, [X, A1, A2])
    assert_same_list(trace.deltas, [D1, D2])
    assert_same_list(trace.grad_b, grad_b)
    assert_same_list(trace.grad_w, grad_w)
    assert trace.loss == pytest.approx(loss, rel=1e-12)
    nabla_b, nabla_w = net.backprop_sample(X[0], Y[0])
    assert_same_list(nabla_b, grad_b)
    assert_same_list(nabla_w, grad_w)

    assert net.step(X, Y, learning_rate=0.5) == pytest.approx(loss, rel=1e-12)
    assert_same_list(net.weights, new_weights)
    assert_same_list(net.biases, new_biases)


# ---- a batch is the mean of its samples -----------------------------------------------------

BATCH_CASES = [
    ("sigmoid", "sigmoid", "quadratic"),
    ("tanh", "softmax", "quadratic"),
    ("relu", "softmax", "categorical_crossentropy"),
    ("leaky_relu", "sigmoid", "binary_crossentropy"),
    ("identity", "tanh", "quadratic"),
]


@pytest.mark.parametrize("hidden, output, loss", BATCH_CASES)
def test_batch_gradient_is_mean_of_sample_gradients(hidden, output, loss):
    rng = np.random.default_rng(3)
    net = reference.Network([3, 5, 4, 2], hidden, output, loss, seed=3)
    X = rng.standard_normal((7, 3))
    Y = make_targets(rng, 7, 2, loss)
    Y_rows = as_targets(Y, 7, 2, net.dtype)
    samples = [net.backprop_sample(x, y) for x, y in zip(X, Y_rows)]
    grad_b, grad_w = net.backprop(X, Y)
    assert_same_list(grad_b, [np.mean(layer, axis=0) for layer in zip(*(b for b, _ in samples))])
    assert_same_list(grad_w, [np.mean(layer, axis=0) for layer in zip(*(w for _, w in samples))])


@pytest.mark.parametrize("hidden, output, loss", BATCH_CASES)
def test_one_row_backprop_equals_backprop_sample(hidden, output, loss):
    rng = np.random.default_rng(4)
    net = reference.Network([3, 5, 2], hidden, output, loss, seed=4)
    x = rng.standard_normal(3)
    y = 1 if loss == "categorical_crossentropy" else rng.uniform(size=2)
    grad_b, grad_w = net.backprop(x, np.reshape(y, (1, -1)) if np.ndim(y) else [y])
    # Nielsen's shapes: column vectors x (n_in, 1), y (n_out, 1) (or a class label)
    y_column = y if np.ndim(y) == 0 else y.reshape(-1, 1)
    nabla_b, nabla_w = net.backprop_sample(x.reshape(-1, 1), y_column)
    assert_same_list(nabla_b, grad_b)
    assert_same_list(nabla_w, grad_w)
    assert [b.shape for b in nabla_b] == [(5,), (2,)]


# ---- numerical stability ----------------------------------------------------------------------

EXTREMES = [-1e4, -1e3, -88.8, -20.0, -1.0, 0.0, 1.0, 20.0, 88.8, 1e3, 1e4]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_are_finite_and_keep_dtype_at_extremes(name, dtype):
    f, f_prime = reference.ACTIVATION_FUNCTIONS[name]
    z = np.array([EXTREMES, EXTREMES[::-1]], dtype=dtype)
    with warnings.catch_warnings():
        error_on_warnings()
        values = [f(z)] + ([f_prime(z)] if f_prime else [reference.softmax_jvp(f(z), z)])
    for value in values:
        assert value.dtype == np.dtype(dtype)
        assert value.shape == z.shape
        assert np.isfinite(value).all()
    if name in ("sigmoid", "softmax"):
        assert (values[0] >= 0).all() and (values[0] <= 1).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_losses_and_output_errors_are_finite_at_extremes(output, loss, dtype):
    Z = np.array([EXTREMES, EXTREMES[::-1]], dtype=dtype)
    Y = np.zeros_like(Z)
    Y[:, [0, -1]] = [[1, 0], [0, 1]]  # the worst targets: on the saturated wrong side
    with warnings.catch_warnings():
        error_on_warnings()
        A = reference.ACTIVATION_FUNCTIONS[output][0](Z)
        cost = reference.LOSS_FUNCTIONS[loss](Z, A, Y)
        delta = reference.output_error(Z, A, Y, output, loss)
    assert np.isfinite(cost) and cost.dtype == np.dtype(dtype)
    assert np.isfinite(delta).all() and delta.dtype == np.dtype(dtype)


def test_cross_entropies_from_z_match_their_textbook_form():
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((4, 3))
    Y = rng.uniform(size=(4, 3))
    A = reference.sigmoid(Z)
    textbook = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / 4
    assert reference.binary_crossentropy(Z, A, Y) == pytest.approx(textbook, rel=1e-12)
    A = reference.softmax(Z)
    assert reference.categorical_crossentropy(Z, A, Y) == pytest.approx(
        -np.sum(Y * np.log(A)) / 4, rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_network_with_huge_pre_activations_stays_finite(hidden, output, loss, dtype):
    net = reference.Network([2, 3, 2], hidden, output, loss, dtype=dtype, seed=0)
    net.weights = [np.array([[5e3, 5e3], [-5e3, -5e3], [5e3, -5e3]]),
                   np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, -0.5]])]
    net.biases = [np.zeros(3), np.zeros(2)]
    X = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    Y = np.array([0, 1, 1]) if loss == "categorical_crossentropy" else np.eye(3, 2)
    with warnings.catch_warnings():
        error_on_warnings()
        trace = net.trace(X, Y)
        net.step(X, Y, learning_rate=0.1)
    assert np.abs(trace.zs[0]).max() == pytest.approx(1e4)
    arrays = trace.zs + trace.activations + trace.deltas + trace.grad_b + trace.grad_w
    for array in arrays + net.weights + net.biases:
        assert array.dtype == np.dtype(dtype)
        assert np.isfinite(array).all()
    assert isinstance(trace.loss, float) and np.isfinite(trace.loss)


def test_float32_network_computes_in_float32():
    net = reference.Network([4, 3, 2], "tanh", loss="categorical_crossentropy",
                            dtype="float32", seed=0)
    X = np.arange(8.0).reshape(2, 4)  # float64 input is converted once
    assert net.predict(X).dtype == np.float32
    grad_b, grad_w = net.backprop(X, [0, 1])
    assert all(g.dtype == np.float32 for g in grad_b + grad_w)
    net64 = reference.Network([4, 3, 2], "tanh", loss="categorical_crossentropy", seed=0)
    assert_same(net.predict(X), net64.predict(X).astype(np.float32), scale=1)


# ---- construction, parameters ---------------------------------------------------------------


def test_initial_parameters_come_from_initializers():
    net = reference.Network([5, 4, 3], "relu", loss="categorical_crossentropy", seed=7)
    assert net.activations == ["relu", "softmax"]
    weights, biases = initializers.draw_network([5, 4, 3], ["relu", "softmax"], None,
                                                np.float64, 7)
    assert_same_list(net.weights, weights)
    assert_same_list(net.biases, biases)


def test_default_output_follows_the_loss():
    assert reference.Network([2, 3, 1], "tanh").activations == ["tanh", "tanh"]
    assert reference.Network([2, 3, 1], "tanh", loss="binary_crossentropy").activations[-1] \
        == "sigmoid"
    assert reference.Network([2, 3, 1], "tanh", loss="categorical_crossentropy").activations[-1] \
        == "softmax"


@pytest.mark.parametrize("kwargs", [
    {"output": "tanh", "loss": "binary_crossentropy"},
    {"output": "sigmoid", "loss": "categorical_crossentropy"},
    {"activation": "softmax"},
    {"activation": "swish"},
    {"loss": "hinge"},
    {"dtype": "float16"},
])
def test_invalid_configurations_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        reference.Network([2, 3, 2], **kwargs)


def test_parameter_assignment_validates_and_copies_into_place():
    net = reference.Network([2, 3, 1], seed=0)
    held = net.weights[0]
    new = np.ones((3, 2))
    net.weights = [new, np.zeros((1, 3))]
    new[0, 0] = 5.0
    assert held[0, 0] == 1.0 and net.weights[0] is held
    with pytest.raises(ValueError):
        net.weights = [np.ones((2, 3)), np.zeros((1, 3))]
    with pytest.raises(ValueError):
        net.biases = [np.ones(3), np.array([np.nan])]
    with pytest.raises(TypeError):
        net.biases = np.ones(4)


def test_from_network_copies_architecture_and_parameters():
    source = reference.Network([3, 4, 2], "leaky_relu", loss="categorical_crossentropy",
                               dtype="float32", seed=2)
    duck = types.SimpleNamespace(
        sizes=source.sizes,
        layers=[types.SimpleNamespace(activation=name) for name in source.activations],
        loss_name=source.loss_name, dtype=source.dtype,
        weights=source.weights, biases=source.biases,
    )
    copy = reference.Network.from_network(duck)
    assert (copy.sizes, copy.activations, copy.loss_name, copy.dtype) == (
        [3, 4, 2], ["leaky_relu", "softmax"], "categorical_crossentropy", np.float32)
    assert_same_list(copy.weights, source.weights)
    assert_same_list(copy.biases, source.biases)
    copy.weights[0][0, 0] += 1.0
    assert copy.weights[0][0, 0] != source.weights[0][0, 0]


# ---- fit ----------------------------------------------------------------------------------------


def blobs(n=60, seed=0):
    """Two well separated Gaussian blobs in 2-D, labels 0 and 1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    X = rng.normal(scale=0.5, size=(n, 2)) + np.where(labels[:, None] == 1, 2.0, -2.0)
    return X, labels


def test_fit_is_deterministic_and_seed_dependent():
    X, y = blobs()

    def trained(fit_seed):
        net = reference.Network([2, 4, 2], "sigmoid", seed=1)
        net.fit(X, y, epochs=3, batch_size=7, learning_rate=1.0, seed=fit_seed)
        return net.weights + net.biases

    first, again, other = trained(0), trained(0), trained(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_follows_the_batching_rule(shuffle):
    X, _ = blobs(n=23)  # 23 = 3 batches of 7 and one of 2
    y = np.random.default_rng(2).integers(0, 2, size=23)  # noisy labels: accuracy below 1
    fitted = reference.Network([2, 3, 2], "tanh", loss="categorical_crossentropy", seed=4)
    history = fitted.fit(X, y, epochs=2, batch_size=7, learning_rate=0.3, shuffle=shuffle,
                         seed=9)
    manual = reference.Network([2, 3, 2], "tanh", loss="categorical_crossentropy", seed=4)
    rng = np.random.default_rng(9)
    rng.integers(0, 2**63, dtype=np.int64)  # the dropout key is drawn first, always
    for epoch in range(2):
        order = rng.permutation(23) if shuffle else np.arange(23)
        total_loss, correct = 0.0, 0
        for begin in range(0, 23, 7):
            rows = order[begin:begin + 7]
            correct += np.sum(manual.predict(X[rows]).argmax(axis=1) == y[rows])
            total_loss += manual.step(X[rows], y[rows], 0.3) * len(rows)
        # loss and accuracy are measured on each mini-batch just before its step
        assert history.loss[epoch] == pytest.approx(total_loss / 23, rel=1e-12)
        assert history.accuracy[epoch] == correct / 23
    assert_same_list(fitted.weights, manual.weights)
    assert_same_list(fitted.biases, manual.biases)


def test_fit_reduces_the_loss_on_a_separable_problem():
    X, y = blobs()
    X_val, y_val = blobs(seed=1)
    net = reference.Network([2, 4, 1], "tanh", loss="binary_crossentropy", seed=0)
    history = net.fit(X, y, epochs=20, batch_size=10, learning_rate=0.5,
                      validation_data=(X_val, y_val))
    assert history.epochs == 20
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert history.val_loss[-1] < history.val_loss[0]
    assert history.accuracy[-1] == 1.0 and history.val_accuracy[-1] == 1.0
    assert net.evaluate(X_val, y_val) == 1.0
    assert len(history.seconds) == len(history.samples_per_second) == 20


def test_evaluate_thresholds_one_output_at_half_and_takes_argmax_otherwise():
    X = np.array([[0.3], [0.6], [0.8], [-1.0]])
    one = reference.Network([1, 1], "identity")
    one.weights, one.biases = [np.ones((1, 1))], [np.zeros(1)]  # predictions equal X
    assert one.evaluate(X, np.array([0, 1, 1, 0])) == 1.0
    assert one.evaluate(X, np.array([0, 0, 1, 1])) == 0.5
    assert one.evaluate(X, X) == pytest.approx(0.0)  # float targets: the loss
    two = reference.Network([1, 2], "identity")
    two.weights, two.biases = [np.array([[1.0], [-1.0]])], [np.zeros(2)]
    assert two.evaluate(X, np.array([0, 0, 0, 1])) == 1.0
    assert two.evaluate(X, np.array([1, 0, 0, 1])) == 0.75


def test_regression_fit_records_no_accuracy_and_evaluate_returns_loss():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(40, 3))
    Y = np.column_stack([X.sum(axis=1), X[:, 0] - X[:, 1]]) / 3
    net = reference.Network([3, 8, 2], "tanh", output="identity", seed=0)
    history = net.fit(X, Y, epochs=30, batch_size=8, learning_rate=0.1)
    assert history.accuracy == [None] * 30 and history.val_loss == []
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert net.evaluate(X, Y) == pytest.approx(net.loss(X, Y))
