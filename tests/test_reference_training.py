"""The reference's training step (SPEC: "One training step inside fit") against expectations
written out here with plain NumPy arithmetic, the dropout hash against plain Python integers,
the initializers' statistics, and the new activations and loss.

The gradient of the tiny networks below is written out in the test (identity output and
quadratic loss: D = Z - Y), so the expected updates depend on no helper of the reference.
"""

import sys
import warnings

import numpy as np
import pytest
from helpers import error_on_warnings, assert_same, assert_same_list
from test_reference import numerical_gradients

from deltaprop import History, initializers, reference
from deltaprop._training import TrainingSettings
from deltaprop.optimizers import SGD, Adagrad, Adam, AdamW, Momentum, Nesterov, RMSprop

MASK64 = 2**64 - 1


def settings(**overrides):
    """What _training.fit hands to the model, with neutral defaults."""
    values = {"optimizer": SGD(), "l2": 0.0, "l1": 0.0, "weight_decay": 0.0, "dropout": (),
              "clip_norm": None, "key": 12345, "n_train": 6}
    return TrainingSettings(**{**values, **overrides})


def linear_net(dtype="float64"):
    """A [3, 2] identity network with fixed parameters, and 6 rows = 3 batches of 2."""
    net = reference.Network([3, 2], "identity", dtype=dtype)
    net.weights = [np.array([[0.5, -0.3, 0.8], [-0.6, 0.2, 0.1]])]
    net.biases = [np.array([0.1, -0.2])]
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (6, 3)).astype(dtype)
    Y = rng.uniform(-1, 1, (6, 2)).astype(dtype)
    return net, X, Y


def linear_gradients(W, b, X, Y):
    """Mean quadratic-cost gradients of Z = X W^T + b: D = Z - Y; g_W = D^T X / m."""
    D = X @ W.T + b - Y
    return D.T @ X / len(X), D.mean(axis=0)


def train(net, X, Y, eta, batch_size=2, first_step=0, **overrides):
    net._begin_training(settings(n_train=len(X), **overrides))
    return net._train_epoch(X, Y, None, batch_size, eta, first_step)


# ---- each optimizer: 3 steps written out --------------------------------------------------


def sgd_rule(opt, p, g, state, t, eta):
    return p - eta * g


def momentum_rule(opt, p, g, state, t, eta):
    state["v"] = opt.momentum * state.get("v", 0) + g
    return p - eta * state["v"]


def nesterov_rule(opt, p, g, state, t, eta):
    state["v"] = opt.momentum * state.get("v", 0) + g
    return p - eta * (g + opt.momentum * state["v"])


def adam_rule(opt, p, g, state, t, eta):
    state["m"] = opt.beta1 * state.get("m", 0) + (1 - opt.beta1) * g
    state["s"] = opt.beta2 * state.get("s", 0) + (1 - opt.beta2) * g * g
    m_hat = state["m"] / (1 - opt.beta1**t)
    s_hat = state["s"] / (1 - opt.beta2**t)
    return p - eta * m_hat / (np.sqrt(s_hat) + opt.eps)


def rmsprop_rule(opt, p, g, state, t, eta):
    state["s"] = opt.alpha * state.get("s", 0) + (1 - opt.alpha) * g * g
    return p - eta * g / (np.sqrt(state["s"]) + opt.eps)


def adagrad_rule(opt, p, g, state, t, eta):
    state["s"] = state.get("s", 0) + g * g
    return p - eta * g / (np.sqrt(state["s"]) + opt.eps)


OPTIMIZER_CASES = [  # non-default hyperparameters, so that reading them is checked too
    (SGD(), sgd_rule),
    (Momentum(momentum=0.5), momentum_rule),
    (Nesterov(momentum=0.7), nesterov_rule),
    (Adam(beta1=0.8, beta2=0.9, eps=1e-3), adam_rule),
    (AdamW(beta1=0.85, beta2=0.95, eps=1e-4), adam_rule),
    (RMSprop(alpha=0.8, eps=1e-3), rmsprop_rule),
    (Adagrad(eps=1e-2), adagrad_rule),
]


def expected_training(net, X, Y, eta, opt, rule, batch_size=2, l2=0.0, l1=0.0, wd=0.0,
                      clip_norm=None):
    """The SPEC's step, in order: gradient, clip, l2/l1, decoupled decay, optimizer (t from 1)."""
    W, b = net.weights[0].copy(), net.biases[0].copy()
    n = len(X)
    state_w, state_b = {}, {}
    for t, begin in enumerate(range(0, n, batch_size), start=1):
        rows = slice(begin, begin + batch_size)
        g_w, g_b = linear_gradients(W, b, X[rows], Y[rows])
        if clip_norm is not None:
            total = np.sqrt(np.sum(g_w**2) + np.sum(g_b**2))
            if clip_norm / (total + 1e-6) < 1:
                g_w, g_b = g_w * clip_norm / (total + 1e-6), g_b * clip_norm / (total + 1e-6)
        g_w = g_w + l2 / n * W + l1 / n * np.sign(W)
        W = W - eta * wd * W
        W = rule(opt, W, g_w, state_w, t, eta)
        b = rule(opt, b, g_b, state_b, t, eta)
    return W, b


@pytest.mark.parametrize("opt, rule", OPTIMIZER_CASES, ids=lambda case: getattr(case, "name", ""))
def test_three_steps_of_each_optimizer(opt, rule):
    net, X, Y = linear_net()
    W, b = expected_training(net, X, Y, 0.1, opt, rule)
    train(net, X, Y, 0.1, optimizer=opt)
    assert_same(net.weights[0], W)
    assert_same(net.biases[0], b)
    assert not np.allclose(W, linear_net()[0].weights[0])  # the steps did move the weights


@pytest.mark.parametrize("opt, rule", OPTIMIZER_CASES, ids=lambda case: getattr(case, "name", ""))
def test_three_steps_in_float32_stay_float32(opt, rule):
    net, X, Y = linear_net("float32")
    W, b = expected_training(net, X.astype(float), Y.astype(float), 0.1, opt, rule)
    train(net, X, Y, 0.1, optimizer=opt)
    assert_same(net.weights[0], W.astype(np.float32))
    assert_same(net.biases[0], b.astype(np.float32))


def test_adam_first_step_moves_each_parameter_by_eta():
    # bias correction makes the first update eta * g / (|g| + eps): eta * sign(g)
    net, X, Y = linear_net()
    before = net.weights[0].copy()
    train(net, X[:2], Y[:2], 0.01, optimizer=Adam(eps=1e-12))
    np.testing.assert_allclose(np.abs(net.weights[0] - before), 0.01, rtol=1e-9)


def test_all_together_in_the_spec_order():
    net, X, Y = linear_net()
    opt = Adam(beta1=0.8, beta2=0.9, eps=1e-3)
    W, b = expected_training(net, X, Y, 0.05, opt, adam_rule, l2=0.3, l1=0.2, wd=0.1,
                             clip_norm=0.5)
    train(net, X, Y, 0.05, optimizer=opt, l2=0.3, l1=0.2, weight_decay=0.1, clip_norm=0.5)
    assert_same(net.weights[0], W)
    assert_same(net.biases[0], b)


# ---- optimizer state between fits -----------------------------------------------------------


def test_state_persists_while_the_optimizer_is_equal_and_resets_otherwise():
    opt = Momentum(momentum=0.5)
    whole, X, Y = linear_net()
    train(whole, X, Y, 0.1, optimizer=opt)  # one epoch of 3 steps
    pieces = linear_net()[0]
    for begin in (0, 2, 4):  # three fits of one step each, with an equal optimizer
        train(pieces, X[begin:begin + 2], Y[begin:begin + 2], 0.1, optimizer=Momentum(0.5))
    assert_same_list(pieces.weights, whole.weights)

    fresh = linear_net()[0]
    train(fresh, X[:2], Y[:2], 0.1, optimizer=opt)
    train(fresh, X[2:4], Y[2:4], 0.1, optimizer=Momentum(0.6))  # different: state reset
    W, b = expected_training(linear_net()[0], X[:2], Y[:2], 0.1, opt, momentum_rule)
    restarted = linear_net()[0]
    restarted.weights, restarted.biases = [W], [b]
    W, b = expected_training(restarted, X[2:4], Y[2:4], 0.1, Momentum(0.6), momentum_rule)
    assert_same(fresh.weights[0], W)
    assert_same(fresh.biases[0], b)


def test_adam_t_continues_across_fits_until_reset_optimizer():
    X, Y = linear_net()[1:]
    continued, reset = linear_net()[0], linear_net()[0]
    for net in (continued, reset):
        train(net, X[:2], Y[:2], 0.1, optimizer=Adam())
    reset.reset_optimizer()
    for net in (continued, reset):
        train(net, X[2:4], Y[2:4], 0.1, optimizer=Adam())
    W, _ = expected_training(linear_net()[0], X[:4], Y[:4], 0.1, Adam(), adam_rule)
    assert_same(continued.weights[0], W)  # t = 2 at the second fit
    assert not np.allclose(reset.weights[0], W)


# ---- regularization, weight decay, clipping --------------------------------------------------


def test_l2_is_nielsens_weight_decay_and_leaves_biases_alone():
    net, X, Y = linear_net()
    W, b = net.weights[0].copy(), net.biases[0].copy()
    g_w, g_b = linear_gradients(W, b, X[:2], Y[:2])
    eta, lmbda, n = 0.5, 3.0, 6  # n: the training rows of the fit, not the batch
    net._begin_training(settings(l2=lmbda, n_train=n))
    net._train_epoch(X[:2], Y[:2], None, 2, eta, 0)
    assert_same(net.weights[0], (1 - eta * lmbda / n) * W - eta * g_w)
    assert_same(net.biases[0], b - eta * g_b)


def test_l1_adds_sign_of_the_weights():
    net, X, Y = linear_net()
    W, b = net.weights[0].copy(), net.biases[0].copy()
    g_w, g_b = linear_gradients(W, b, X[:2], Y[:2])
    net._begin_training(settings(l1=3.0, n_train=6))
    net._train_epoch(X[:2], Y[:2], None, 2, 0.5, 0)
    assert_same(net.weights[0], W - 0.5 * (g_w + 3.0 / 6 * np.sign(W)))
    assert_same(net.biases[0], b - 0.5 * g_b)


def test_decoupled_weight_decay_shrinks_weights_only():
    net, X, Y = linear_net()
    W, b = net.weights[0].copy(), net.biases[0].copy()
    g_w, g_b = linear_gradients(W, b, X[:2], Y[:2])
    train(net, X[:2], Y[:2], 0.5, weight_decay=0.2)
    assert_same(net.weights[0], (1 - 0.5 * 0.2) * W - 0.5 * g_w)
    assert_same(net.biases[0], b - 0.5 * g_b)


def test_clipping_scales_the_global_norm_down_to_clip_norm():
    net, X, Y = linear_net()
    W, b = net.weights[0].copy(), net.biases[0].copy()
    g_w, g_b = linear_gradients(W, b, X[:2], Y[:2])
    total = np.sqrt(np.sum(g_w**2) + np.sum(g_b**2))
    clip = total / 4
    _, _, grad_norms = train(net, X[:2], Y[:2], 0.5, clip_norm=clip)
    applied_w, applied_b = (W - net.weights[0]) / 0.5, (b - net.biases[0]) / 0.5
    clipped = np.sqrt(np.sum(applied_w**2) + np.sum(applied_b**2))
    assert clipped == pytest.approx(clip, rel=1e-5)  # clip / (total + 1e-6) * total
    np.testing.assert_allclose(applied_w, g_w * clip / (total + 1e-6), rtol=1e-10)
    assert grad_norms == [pytest.approx(np.linalg.norm(g_w), rel=1e-12)]  # the raw gradient


def test_clipping_leaves_a_smaller_gradient_unchanged():
    net, X, Y = linear_net()
    W, b = net.weights[0].copy(), net.biases[0].copy()
    g_w, g_b = linear_gradients(W, b, X[:2], Y[:2])
    train(net, X[:2], Y[:2], 0.5, clip_norm=1e3)
    assert_same(net.weights[0], W - 0.5 * g_w)
    assert_same(net.biases[0], b - 0.5 * g_b)


# ---- epoch bookkeeping ----------------------------------------------------------------------


def test_train_epoch_returns_loss_correct_and_mean_gradient_norms():
    net, X, Y = linear_net()
    X, Y = X[:5], Y[:5]
    W, b = net.weights[0].copy(), net.biases[0].copy()
    order = np.array([2, 0, 3, 1, 4])  # 5 rows in batches of 2, 2, 1
    losses, correct, norms = [], 0, []
    for begin in (0, 2, 4):
        rows = order[begin:begin + 2]
        A = X[rows] @ W.T + b
        losses.append(0.5 * np.sum((A - Y[rows]) ** 2))  # C * m
        correct += np.sum(A.argmax(axis=1) == Y[rows].argmax(axis=1))
        g_w, g_b = linear_gradients(W, b, X[rows], Y[rows])
        norms.append(np.linalg.norm(g_w))
        W, b = W - 0.2 * g_w, b - 0.2 * g_b
    net._begin_training(settings(n_train=5))
    mean_loss, got_correct, got_norms = net._train_epoch(X, Y, order, 2, 0.2, 0)
    assert mean_loss == pytest.approx(sum(losses) / 5, rel=1e-12)
    assert got_correct == correct and isinstance(got_correct, int)
    assert got_norms == [pytest.approx(np.mean(norms), rel=1e-12)]
    assert_same(net.weights[0], W)


def test_correct_count_thresholds_a_single_output_at_half():
    net = reference.Network([1, 1], "identity")
    net.weights, net.biases = [np.ones((1, 1))], [np.zeros(1)]
    X = np.array([[0.2], [0.7], [0.9], [0.4]])
    Y = np.array([[0.0], [1.0], [0.3], [0.8]])  # right, right, wrong, wrong
    net._begin_training(settings(n_train=4))
    assert net._train_epoch(X, Y, None, 4, 1e-9, 0)[1] == 2


def test_snapshot_and_restore_copy_every_parameter():
    net = reference.Network([2, 3, 2], seed=0)
    snapshot = net._snapshot()
    before = net.weights + net.biases
    before = [p.copy() for p in before]
    for p in net.weights + net.biases:
        p += 1.0
    net._restore(snapshot)
    assert_same_list(net.weights + net.biases, before)


def test_step_is_still_plain_sgd_whatever_fit_left_behind():
    net, X, Y = linear_net()
    train(net, X, Y, 0.1, optimizer=Adam(), l2=5.0, weight_decay=0.5, clip_norm=1e-3)
    W, b = net.weights[0].copy(), net.biases[0].copy()
    g_w, g_b = linear_gradients(W, b, X[:2], Y[:2])
    net.step(X[:2], Y[:2], 0.3)
    assert_same(net.weights[0], W - 0.3 * g_w)
    assert_same(net.biases[0], b - 0.3 * g_b)


# ---- dropout hash ----------------------------------------------------------------------------


def hash_uniform(key, step, layer, index):
    """The SPEC's hash with plain Python integers, reduced mod 2^64 after every operation."""
    x = (key + 0x9E3779B97F4A7C15 * ((step * 64 + layer) * 2**32 + index)) & MASK64
    z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z = z ^ (z >> 31)
    return (z >> 11) * 2.0**-53


def test_hash_is_splitmix64():
    # the first output of splitmix64 seeded with 0 (Vigna's reference) is 0xE220A8397B1DCDAF
    assert hash_uniform(0, 0, 0, 1) == (0xE220A8397B1DCDAF >> 11) * 2.0**-53


@pytest.mark.parametrize("key, step, layer, m, n", [
    (0, 0, 0, 2, 3),
    (12345, 7, 2, 3, 4),
    (2**63 - 1, 10**6, 63, 2, 5),  # everything wraps around 2^64
    (987654321987654321, 7 * 2**25 + 5, 1, 4, 3),  # counter beyond 2^64, bit 63 set
])
def test_dropout_uniforms_match_plain_integers(key, step, layer, m, n):
    with warnings.catch_warnings():
        error_on_warnings()  # no overflow warnings from uint64 wrap-around
        u = reference.dropout_uniforms(key, step, layer, m, n)
    assert u.shape == (m, n) and u.dtype == np.float64
    expected = [[hash_uniform(key, step, layer, i * n + j) for j in range(n)] for i in range(m)]
    np.testing.assert_array_equal(u, expected)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_one_minus_p_and_preserves_the_mean(p):
    m, n = 250, 400
    N = m * n
    mask = reference.dropout_mask(2024, 3, 1, p, m, n, np.float64)
    assert set(np.unique(mask)) <= {0.0, 1 / (1 - p)}
    kept = np.mean(mask > 0)
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / N)  # binomial, 5 sigma
    A = np.random.default_rng(0).uniform(0.0, 2.0, (m, n))
    masked = A * mask
    assert abs(masked.mean() - A.mean()) < 5 * masked.std() / np.sqrt(N)
    other_layer = reference.dropout_mask(2024, 3, 2, p, m, n, np.float64) > 0
    other_step = reference.dropout_mask(2024, 4, 1, p, m, n, np.float64) > 0
    agree = p**2 + (1 - p) ** 2  # of two independent masks
    bound = 5 * np.sqrt(agree * (1 - agree) / N)
    assert abs(np.mean(other_layer == (mask > 0)) - agree) < bound
    assert abs(np.mean(other_step == (mask > 0)) - agree) < bound


def test_dropout_mask_is_computed_in_float64_then_cast():
    mask = reference.dropout_mask(1, 0, 0, 0.3, 4, 50, np.float32)
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) <= {np.float32(0.0), np.float32(1 / 0.7)}


def test_dropout_step_written_out():
    """[3, 4, 2] sigmoid -> identity, quadratic: two steps (first_step 5 and 6) with masks."""
    rng = np.random.default_rng(1)
    net = reference.Network([3, 4, 2], "sigmoid", output="identity", seed=1)
    X, Y = rng.uniform(-1, 1, (6, 3)), rng.uniform(-1, 1, (6, 2))
    W1, W2 = (w.copy() for w in net.weights)
    b1, b2 = (b.copy() for b in net.biases)
    key, p, eta = 99, 0.5, 0.3
    total_loss = 0.0
    for step, rows in ((5, slice(0, 3)), (6, slice(3, 6))):
        keep = np.array([[hash_uniform(key, step, 0, i * 4 + j) >= p for j in range(4)]
                         for i in range(3)])
        M = keep / (1 - p)
        Z1 = X[rows] @ W1.T + b1
        A1 = 1 / (1 + np.exp(-Z1))
        H1 = A1 * M
        A2 = H1 @ W2.T + b2
        total_loss += 0.5 * np.sum((A2 - Y[rows]) ** 2)
        D2 = A2 - Y[rows]
        D1 = (D2 @ W2) * A1 * (1 - A1) * M
        W1, b1 = W1 - eta * D1.T @ X[rows] / 3, b1 - eta * D1.mean(axis=0)
        W2, b2 = W2 - eta * D2.T @ H1 / 3, b2 - eta * D2.mean(axis=0)
    net._begin_training(settings(dropout=(p,), key=key))
    mean_loss, _, _ = net._train_epoch(X, Y, None, 3, eta, 5)
    assert mean_loss == pytest.approx(total_loss / 6, rel=1e-12)
    assert_same_list(net.weights, [W1, W2])
    assert_same_list(net.biases, [b1, b2])


def test_dropout_rate_zero_means_no_mask():
    rng = np.random.default_rng(2)
    X, Y = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (4, 2))
    nets = {rates: reference.Network([3, 4, 5, 2], "tanh", seed=2)
            for rates in [(), (0.0, 0.0), (0.0, 0.5)]}
    for rates, net in nets.items():
        train(net, X, Y, 0.1, batch_size=4, dropout=rates)
    assert_same_list(nets[(0.0, 0.0)].weights, nets[()].weights)
    # the mask of hidden layer 2 reaches layer 1 through BP2
    assert not np.allclose(nets[(0.0, 0.5)].weights[0], nets[()].weights[0])


# ---- initializers ------------------------------------------------------------------------------

N_IN, N_OUT = 300, 200
NORMAL_STD = {
    "nielsen": 1 / np.sqrt(N_IN),
    "large": 1.0,
    "glorot_normal": np.sqrt(2 / (N_IN + N_OUT)),
    "he_normal": np.sqrt(2 / N_IN),
    "lecun_normal": np.sqrt(1 / N_IN),
}
UNIFORM_LIMIT = {"glorot_uniform": np.sqrt(6 / (N_IN + N_OUT)), "he_uniform": np.sqrt(6 / N_IN)}


@pytest.mark.parametrize("init", initializers.INITIALIZERS)
def test_initializer_statistics(init):
    W, b = initializers.draw_layer(np.random.default_rng(0), N_IN, N_OUT, "sigmoid", init,
                                   np.float64)
    assert W.shape == (N_OUT, N_IN) and b.shape == (N_OUT,)
    N = W.size
    if init in UNIFORM_LIMIT:
        limit = UNIFORM_LIMIT[init]
        assert np.abs(W).max() <= limit and np.abs(W).max() > 0.999 * limit
        std = limit / np.sqrt(3)
    else:
        std = NORMAL_STD[init]
        assert np.abs(W).max() > 3 * std  # normal tails, not uniform
    assert abs(W.mean()) < 5 * std / np.sqrt(N)
    assert W.std() == pytest.approx(std, rel=5 / np.sqrt(2 * N))
    if init in ("nielsen", "large"):
        assert abs(b.mean()) < 5 / np.sqrt(N_OUT)
        assert b.std() == pytest.approx(1.0, rel=5 / np.sqrt(2 * N_OUT))
    else:
        assert not b.any()


@pytest.mark.parametrize("init", initializers.INITIALIZERS)
def test_initializers_are_deterministic_and_draw_weights_then_biases(init):
    first = initializers.draw_network([4, 5, 3], ["tanh", "tanh"], init, np.float64, 7)
    again = initializers.draw_network([4, 5, 3], ["tanh", "tanh"], init, np.float64, 7)
    other = initializers.draw_network([4, 5, 3], ["tanh", "tanh"], init, np.float64, 8)
    assert_same_list(first[0] + first[1], again[0] + again[1])
    assert not np.allclose(first[0][0], other[0][0])
    rng = np.random.default_rng(7)  # one generator for all layers, in order
    for layer, (n_in, n_out) in enumerate([(4, 5), (5, 3)]):
        W, b = initializers.draw_layer(rng, n_in, n_out, "tanh", init, np.float64)
        assert_same(first[0][layer], W)
        assert_same(first[1][layer], b)


def test_nielsen_and_he_normal_draw_exactly_as_the_spec_says():
    W, b = initializers.draw_layer(np.random.default_rng(3), 4, 2, "sigmoid", "nielsen",
                                   np.float64)
    rng = np.random.default_rng(3)
    assert_same(W, rng.standard_normal((2, 4)) / np.sqrt(4))
    assert_same(b, rng.standard_normal(2))
    W, _ = initializers.draw_layer(np.random.default_rng(3), 4, 2, "sigmoid", "glorot_uniform",
                                   np.float32)
    limit = np.sqrt(6 / 6)
    assert_same(W, np.random.default_rng(3).uniform(-limit, limit, (2, 4)).astype(np.float32))


@pytest.mark.parametrize("activation, scheme", [
    ("relu", "he_normal"), ("leaky_relu", "he_normal"), ("elu", "he_normal"),
    ("sigmoid", "nielsen"), ("tanh", "nielsen"), ("softplus", "nielsen"),
    ("identity", "nielsen"), ("softmax", "nielsen"),
])
def test_default_initializer_per_activation(activation, scheme):
    default = initializers.draw_layer(np.random.default_rng(1), 6, 4, activation, None, np.float64)
    chosen = initializers.draw_layer(np.random.default_rng(1), 6, 4, activation, scheme,
                                     np.float64)
    assert_same_list(default, chosen)


def test_he_is_an_alias_of_he_normal_and_unknown_names_raise():
    he = initializers.draw_layer(np.random.default_rng(1), 6, 4, "relu", "he", np.float64)
    he_normal = initializers.draw_layer(np.random.default_rng(1), 6, 4, "relu", "he_normal",
                                        np.float64)
    assert_same_list(he, he_normal)
    with pytest.raises(ValueError, match="glorot_uniform"):
        initializers.check_init("xavier")
    with pytest.raises(ValueError):
        reference.Network([2, 2], init="xavier")


# ---- elu, softplus, huber ------------------------------------------------------------------


def test_elu_and_softplus_values():
    z = np.array([-1e4, -30.0, -1.0, 0.0, 2.0, 1e4])
    np.testing.assert_allclose(
        reference.elu(z), [-1.0, np.expm1(-30.0), np.exp(-1.0) - 1, 0.0, 2.0, 1e4], rtol=1e-15)
    np.testing.assert_allclose(
        reference.elu_prime(z), [0.0, np.exp(-30.0), np.exp(-1.0), 1.0, 1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(
        reference.softplus(z),
        [0.0, 9.357622968839737e-14, np.log(1 + np.exp(-1.0)), np.log(2.0), np.log1p(np.exp(2.0)),
         1e4], rtol=1e-14)
    np.testing.assert_allclose(reference.softplus_prime(z), reference.sigmoid(z), rtol=0)


def test_huber_values_and_gradient():
    A = np.array([[0.5, -2.0, 1.0], [0.0, 0.25, 3.5]])
    Y = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    # r = [[0.5, -2, 1], [0, 0.25, 3]]: 1/2 r^2 where |r| <= 1, |r| - 1/2 beyond
    rows = [0.125 + 1.5 + 0.5, 0.0 + 0.03125 + 2.5]
    assert reference.huber(None, A, Y) == pytest.approx(np.mean(rows), rel=1e-15)
    assert_same(reference.huber_gradient(A, Y), np.array([[0.5, -1.0, 1.0], [0.0, 0.25, 1.0]]))


def test_huber_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    A = rng.uniform(-3, 3, (4, 5))
    Y = rng.uniform(-1, 1, (4, 5))
    assert (np.abs(A - Y) > 1).any() and (np.abs(A - Y) < 1).any()
    h = 1e-6
    numeric = np.zeros_like(A)
    for index in np.ndindex(A.shape):
        step = np.zeros_like(A)
        step[index] = h
        numeric[index] = (reference.huber(None, A + step, Y) - reference.huber(None, A - step, Y)
                          ) / (2 * h) * A.shape[0]  # d(sum over rows) / dA
    np.testing.assert_allclose(reference.huber_gradient(A, Y), numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("hidden", ["elu", "softplus"])
@pytest.mark.parametrize("output, loss", [("identity", "huber"), ("softmax", "huber"),
                                          ("elu", "huber"), ("softplus", "quadratic")])
def test_network_gradient_with_new_activations_and_huber_matches_finite_differences(
        hidden, output, loss):
    rng = np.random.default_rng(4)
    net = reference.Network([3, 4, 3, 2], hidden, output, loss, seed=4, init="large")
    X = rng.standard_normal((6, 3))
    Y = rng.uniform(-3, 3, (6, 2)) if output != "softmax" else rng.uniform(-1, 2, (6, 2))
    trace = net.trace(X, Y)
    assert (trace.zs[0] < 0).any() and (trace.zs[0] > 0).any()  # both branches of elu
    if loss == "huber":  # both branches of the loss
        r = np.abs(trace.activations[-1] - Y)
        assert (r < 1).any() and (r > 1).any()
    grad_b, grad_w = net.backprop(X, Y)
    expected = numerical_gradients(net, X, Y)
    atol = 1e-8 * max(1.0, net.loss(X, Y))
    for index, (got, want) in enumerate(zip(grad_w + grad_b, expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=atol, err_msg=f"parameter {index}")


# ---- History --------------------------------------------------------------------------------


def test_history_has_the_new_fields():
    history = History()
    assert history.learning_rate == [] and history.grad_norms == []
    assert history.best_epoch is None and history.stopped_early is False
    assert history.epochs == 0


def filled_history():
    return History(loss=[1.0, 0.5, 0.25], accuracy=[0.5, 0.7, 0.9], val_loss=[1.1, 0.6, 0.4],
                   val_accuracy=[0.4, 0.6, 0.8], learning_rate=[0.1] * 3,
                   grad_norms=[[1.0, 2.0], [0.5, 1.0], [0.1, 0.2]])


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        filled_history().plot()


def test_plot_draws_loss_accuracy_and_gradient_norms():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    figure = filled_history().plot()
    loss_axes, accuracy_axes, norm_axes = figure.axes
    assert [axes.get_title() for axes in figure.axes][:2] == ["loss", "accuracy"]
    assert len(loss_axes.lines) == 2 and len(accuracy_axes.lines) == 2
    assert len(norm_axes.lines) == 2 and norm_axes.get_yscale() == "log"
    np.testing.assert_array_equal(norm_axes.lines[1].get_ydata(), [2.0, 1.0, 0.2])
    import matplotlib.pyplot as plt

    plt.close(figure)


# ---- fit: the orchestration drives these methods -------------------------------------------


def test_fit_runs_the_epochs_the_spec_describes():
    X = np.random.default_rng(5).uniform(-1, 1, (9, 3))
    Y = np.random.default_rng(6).uniform(-1, 1, (9, 2))
    fitted = reference.Network([3, 4, 2], "tanh", output="identity", seed=3)
    history = fitted.fit(X, Y, epochs=2, batch_size=4, learning_rate=0.2, optimizer="nesterov",
                         l2=0.5, dropout=0.25, clip_norm=1.0, seed=11)
    manual = reference.Network([3, 4, 2], "tanh", output="identity", seed=3)
    rng = np.random.default_rng(11)
    key = int(rng.integers(0, 2**63, dtype=np.int64))  # drawn first
    manual._begin_training(settings(optimizer=Nesterov(), l2=0.5, dropout=(0.25,),
                                    clip_norm=1.0, key=key, n_train=9))
    for epoch in range(2):
        loss, _, norms = manual._train_epoch(X, Y, rng.permutation(9), 4, 0.2, epoch * 3)
        assert history.loss[epoch] == pytest.approx(loss, rel=1e-12)
        assert history.grad_norms[epoch] == pytest.approx(norms, rel=1e-12)
    assert history.learning_rate == [0.2, 0.2]
    assert_same_list(fitted.weights + fitted.biases, manual.weights + manual.biases)
