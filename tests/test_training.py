"""fit: optimizers, schedules, regularizers, dropout, initializers, the new activations and
loss, early stopping, validation, History, callbacks and warm starts.

Three kinds of oracle:
- the pure NumPy reference (``reference.Network.fit``) for the full machinery (mini-batches,
  shuffling, dropout), 20 steps, parameters and History within the tolerance table;
- ``hand_fit`` below, written from SPEC3's "one training step" and the update rules in
  ``deltaprop.optimizers``, for full-batch runs (independent of both training loops);
- closed forms (schedule formulas, initializer formulas, f and f' of elu/softplus, huber).
"""

import math
import sys
import warnings

import numpy as np
import pytest
from helpers import (
    error_on_warnings,
    DTYPES,
    INITIALIZER_NAMES,
    NEW_ACTIVATIONS,
    OPTIMIZER_NAMES,
    SCHEDULE_NAMES,
    assert_same,
    assert_same_history,
    assert_same_list,
    assert_same_parameters,
    assert_same_scalar,
    build_pair,
    make_inputs,
    make_targets,
    one_hot_rows,
)

import deltaprop as dp
from deltaprop import optimizers, reference, schedules
from deltaprop._results import History

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)

# A classification problem: two hidden layers (BP2 twice, two dropout layers), softmax + CCE.
CLS_SIZES = [5, 8, 6, 3]
# 40 rows in batches of 4 for 2 epochs: 20 steps, shuffled.
RUN = dict(epochs=2, batch_size=4, shuffle=True, seed=3)
RATES = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "adam": 0.01, "adamw": 0.01,
         "rmsprop": 0.01, "adagrad": 0.1}


def classification_data(dtype, m=40, sizes=CLS_SIZES, seed=1):
    rng = np.random.default_rng(seed)
    return make_inputs(rng, m, sizes[0], dtype), rng.integers(0, sizes[-1], size=m)


def regression_data(sizes, dtype, m=40, seed=2, loss="quadratic"):
    rng = np.random.default_rng(seed)
    return make_inputs(rng, m, sizes[0], dtype), make_targets(rng, loss, m, sizes[-1], dtype)


def cls_pair(dtype, seed=0, hidden="tanh"):
    return build_pair(CLS_SIZES, hidden, None, "categorical_crossentropy", dtype, seed=seed)


def fit_both(net, ref, X, Y, dtype, scale=1.0, **kwargs):
    """Fit both networks with the same arguments; parameters and History must agree."""
    history = net.fit(X, Y, **kwargs)
    ref_history = ref.fit(X, Y, **kwargs)
    assert_same_parameters(net, ref, dtype, scale)
    assert_same_history(history, ref_history, dtype, scale)
    return history, ref_history


def clone(net):
    """A fresh native network with the architecture and parameters of ``net``."""
    copy = dp.Network(net.sizes, activation=net.activations[0], output=net.activations[-1],
                      loss=net.loss_name, dtype=net.dtype)
    copy.weights, copy.biases = net.weights, net.biases
    return copy


def copies(net):
    return [w.copy() for w in net.weights], [b.copy() for b in net.biases]


# --- an independent full-batch trainer, written from the spec -----------------------------------


def optimizer_rule(opt, p, g, state, t, eta):
    """p after one update with gradient g (the table in deltaprop.optimizers' docstring)."""
    name = opt.name
    if name == "sgd":
        return p - eta * g
    if name in ("momentum", "nesterov"):
        v = opt.momentum * state.get("v", 0.0) + g
        state["v"] = v
        return p - eta * v if name == "momentum" else p - eta * (g + opt.momentum * v)
    if name in ("adam", "adamw"):
        m = opt.beta1 * state.get("m", 0.0) + (1 - opt.beta1) * g
        s = opt.beta2 * state.get("s", 0.0) + (1 - opt.beta2) * g * g
        state["m"], state["s"] = m, s
        m_hat = m / (1 - opt.beta1 ** t)
        s_hat = s / (1 - opt.beta2 ** t)
        return p - eta * m_hat / (np.sqrt(s_hat) + opt.eps)
    if name == "rmsprop":
        s = opt.alpha * state.get("s", 0.0) + (1 - opt.alpha) * g * g
        state["s"] = s
        return p - eta * g / (np.sqrt(s) + opt.eps)
    if name == "adagrad":
        s = state.get("s", 0.0) + g * g
        state["s"] = s
        return p - eta * g / (np.sqrt(s) + opt.eps)
    raise AssertionError(name)


def hand_fit(net, X, Y, rates, optimizer="sgd", l2=0.0, l1=0.0, weight_decay=None,
             clip_norm=None):
    """Full-batch training (one step per entry of ``rates``) as SPEC3 prescribes, with the
    gradient of each step from ``backprop`` at the current parameters. Returns (W, b, norms)."""
    opt = optimizers.get_optimizer(optimizer)
    weight_decay = opt.default_weight_decay if weight_decay is None else weight_decay
    probe = clone(net)
    n = X.shape[0]
    L = len(net.weights)
    params = [w.copy() for w in net.weights] + [b.copy() for b in net.biases]
    state = [{} for _ in params]
    norms = []
    for t, eta in enumerate(rates, start=1):
        probe.weights, probe.biases = params[:L], params[L:]
        grad_b, grad_w = probe.backprop(X, Y)
        grads = [g.copy() for g in grad_w] + [g.copy() for g in grad_b]
        norms.append([float(np.linalg.norm(g)) for g in grad_w])
        if clip_norm is not None:
            total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
            coef = clip_norm / (total + 1e-6)
            if coef < 1:
                grads = [g * coef for g in grads]
        for i in range(L):  # weights only
            grads[i] = grads[i] + (l2 / n) * params[i] + (l1 / n) * np.sign(params[i])
            params[i] = params[i] - eta * weight_decay * params[i]
        params = [optimizer_rule(opt, p, g, s, t, eta) for p, g, s in zip(params, grads, state)]
    return params[:L], params[L:], norms


def assert_matches_hand(net, hand, dtype=F64, scale=1.0):
    weights, biases, _ = hand
    assert_same_list(net.weights, weights, dtype, scale)
    assert_same_list(net.biases, biases, dtype, scale)


# --- 1. optimizers ------------------------------------------------------------------------------

OPTIMIZER_CASES = [(name, name) for name in OPTIMIZER_NAMES] + [
    ("Adam(beta1=0.8)", optimizers.Adam(beta1=0.8)),
    ("Momentum(0.5)", optimizers.Momentum(0.5)),
    ("Nesterov(0.7)", optimizers.Nesterov(momentum=0.7)),
    ("RMSprop(alpha=0.9,eps=1e-6)", optimizers.RMSprop(alpha=0.9, eps=1e-6)),
    ("Adagrad(eps=1e-6)", optimizers.Adagrad(eps=1e-6)),
    ("AdamW(beta2=0.99)", optimizers.AdamW(beta2=0.99)),
]


def _rate(optimizer):
    return RATES[optimizers.get_optimizer(optimizer).name]


@pytest.mark.parametrize("label, optimizer", OPTIMIZER_CASES, ids=[c[0] for c in OPTIMIZER_CASES])
def test_optimizer_matches_reference(label, optimizer):
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    history, _ = fit_both(net, ref, X, labels, F64, learning_rate=_rate(optimizer),
                          optimizer=optimizer, **RUN)
    assert all(a is not None for a in history.accuracy)
    # It trained: the parameters moved.
    start, _ = cls_pair(F64)
    assert not np.allclose(net.weights[0], start.weights[0])


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop", optimizers.Adam(beta1=0.8)],
                         ids=str)
def test_optimizer_matches_reference_float32(optimizer):
    net, ref = cls_pair(F32)
    X, labels = classification_data(F32)
    fit_both(net, ref, X, labels, F32, learning_rate=_rate(optimizer), optimizer=optimizer, **RUN)


@pytest.mark.parametrize("label, optimizer", OPTIMIZER_CASES, ids=[c[0] for c in OPTIMIZER_CASES])
def test_optimizer_follows_update_rule(label, optimizer):
    """Three full-batch steps equal the docstring's update rules applied by hand (state and
    the bias-corrected t of adam included)."""
    sizes = [4, 6, 3]
    net = dp.Network(sizes, "tanh", "identity", seed=4)
    X, Y = regression_data(sizes, F64, m=12)
    eta = _rate(optimizer)
    hand = hand_fit(net, X, Y, [eta] * 3, optimizer)
    history = net.fit(X, Y, epochs=3, batch_size=12, learning_rate=eta, optimizer=optimizer,
                      shuffle=False)
    assert_matches_hand(net, hand)
    assert_same(np.asarray(history.grad_norms), np.asarray(hand[2]))


def test_optimizers_differ():
    """Sanity of the comparisons above: each optimizer moves the weights differently."""
    X, labels = classification_data(F64)
    results = []
    for name in OPTIMIZER_NAMES:
        net, _ = cls_pair(F64)
        net.fit(X, labels, learning_rate=0.05, optimizer=name, **RUN)
        results.append(net.weights[0].copy())
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not np.allclose(results[i], results[j]), (OPTIMIZER_NAMES[i], OPTIMIZER_NAMES[j])


# --- 2. schedules -------------------------------------------------------------------------------

SCHEDULE_CASES = [(name, name) for name in SCHEDULE_NAMES] + [
    ("Step(2,0.5)", schedules.Step(step_size=2, gamma=0.5)),
    ("Exponential(0.8)", schedules.Exponential(gamma=0.8)),
    ("InvScaling(0.25)", schedules.InvScaling(power_t=0.25)),
    ("Cosine(eta_min=0.01)", schedules.Cosine(eta_min=0.01)),
]


def schedule_formula(schedule, eta, epoch, epochs, n):
    """SPEC3 / deltaprop.schedules' table, written out with the defaults."""
    s = schedules.get_schedule(schedule)
    name = s.name
    if name == "constant":
        return eta
    if name == "step":
        return eta * s.gamma ** (epoch // s.step_size)
    if name == "exponential":
        return eta * s.gamma ** epoch
    if name == "invscaling":
        return eta / (epoch * n + 1) ** s.power_t
    return s.eta_min + (eta - s.eta_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def test_schedule_defaults():
    assert (schedules.Step().step_size, schedules.Step().gamma) == (10, 0.1)
    assert schedules.Exponential().gamma == 0.95
    assert schedules.InvScaling().power_t == 0.5
    assert schedules.Cosine().eta_min == 0.0


@pytest.mark.parametrize("label, schedule", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_schedule_rates_and_reference(label, schedule):
    epochs, n, eta = 12, 16, 0.3  # 12 epochs: the default step schedule changes at epoch 10
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64, m=n)
    history, _ = fit_both(net, ref, X, labels, F64, epochs=epochs, batch_size=8,
                          learning_rate=eta, schedule=schedule, seed=5)
    expected = [schedule_formula(schedule, eta, e, epochs, n) for e in range(epochs)]
    np.testing.assert_allclose(history.learning_rate, expected, rtol=1e-14, atol=0)
    if schedules.get_schedule(schedule).name != "constant":
        assert len(set(history.learning_rate)) > 1


@pytest.mark.parametrize("schedule", ["cosine", schedules.Step(step_size=2, gamma=0.5),
                                      "invscaling"], ids=str)
def test_schedule_rate_is_used_by_the_step(schedule):
    """Full batch, sgd: epoch e moves the parameters by exactly eta_e * g."""
    sizes = [4, 5, 2]
    net = dp.Network(sizes, "sigmoid", seed=1)
    X, Y = regression_data(sizes, F64, m=10)
    epochs, eta = 5, 2.0
    rates = [schedule_formula(schedule, eta, e, epochs, 10) for e in range(epochs)]
    hand = hand_fit(net, X, Y, rates)
    net.fit(X, Y, epochs=epochs, batch_size=10, learning_rate=eta, schedule=schedule,
            shuffle=False)
    assert_matches_hand(net, hand)


def test_schedule_restarts_in_every_fit_call():
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    first = net.fit(X, labels, epochs=3, learning_rate=0.1, schedule="exponential")
    second = net.fit(X, labels, epochs=3, learning_rate=0.1, schedule="exponential")
    assert first.learning_rate == second.learning_rate == [0.1 * 0.95 ** e for e in range(3)]


# --- 3. regularizers, dropout, clipping ---------------------------------------------------------

REGULARIZER_CASES = {
    "l2": dict(l2=5.0),
    "l1": dict(l1=2.0),
    "weight_decay": dict(weight_decay=0.1),
    "adamw_default_decay": dict(optimizer="adamw"),
    "adamw_decay_0.2": dict(optimizer="adamw", weight_decay=0.2),
    "adam_weight_decay": dict(optimizer="adam", weight_decay=0.1),
    "dropout": dict(dropout=0.3),
    "dropout_list": dict(dropout=[0.2, 0.5]),
    "dropout_first_off": dict(dropout=[0.0, 0.5]),
    "dropout_last_off": dict(dropout=[0.4, 0.0]),
    "clip_norm": dict(clip_norm=0.05),
    "combination_sgd": dict(l2=1.0, l1=0.5, weight_decay=0.05, dropout=[0.3, 0.2], clip_norm=0.5),
    "combination_adam": dict(optimizer="adam", l2=1.0, l1=0.5, weight_decay=0.05, dropout=0.25,
                             clip_norm=0.3),
    "combination_nesterov": dict(optimizer="nesterov", l2=2.0, dropout=[0.5, 0.0], clip_norm=1.0),
}


@pytest.mark.parametrize("case", list(REGULARIZER_CASES))
def test_regularizer_matches_reference(case):
    kwargs = REGULARIZER_CASES[case]
    optimizer = kwargs.get("optimizer", "sgd")
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    fit_both(net, ref, X, labels, F64, learning_rate=_rate(optimizer), **{**RUN, **kwargs})
    # The option mattered: without it (and without any weight decay) the result differs.
    plain, _ = cls_pair(F64)
    plain.fit(X, labels, learning_rate=_rate(optimizer), optimizer=optimizer, weight_decay=0.0,
              **RUN)
    assert not np.allclose(plain.weights[0], net.weights[0], rtol=1e-8, atol=0)


@pytest.mark.parametrize("case", ["combination_adam", "dropout_list"])
def test_regularizer_matches_reference_float32(case):
    kwargs = REGULARIZER_CASES[case]
    net, ref = cls_pair(F32)
    X, labels = classification_data(F32)
    fit_both(net, ref, X, labels, F32,
             learning_rate=_rate(kwargs.get("optimizer", "sgd")), **{**RUN, **kwargs})


HAND_CASES = {
    "l2_nielsen": dict(l2=5.0),
    "l1": dict(l1=3.0),
    "weight_decay": dict(weight_decay=0.2),
    "clip_active": dict(clip_norm=0.05),
    "clip_inactive": dict(clip_norm=1e6),
    "adamw_default": dict(optimizer="adamw"),
    "all_adam": dict(optimizer="adam", l2=2.0, l1=1.0, weight_decay=0.1, clip_norm=0.1),
    "all_momentum": dict(optimizer="momentum", l2=2.0, l1=1.0, weight_decay=0.1, clip_norm=0.1),
}


@pytest.mark.parametrize("case", list(HAND_CASES))
def test_regularizer_follows_spec_step(case):
    """Three full-batch steps: clip, then g_W += l2/n W + l1/n sign(W), then
    W <- W - eta wd W, then the optimizer; biases are not regularized."""
    kwargs = HAND_CASES[case]
    sizes = [4, 6, 3]
    net = dp.Network(sizes, "tanh", "identity", seed=6)
    weights = net.weights
    weights[0][0, 0] = weights[0][1, 2] = weights[1][2, 3] = 0.0  # sign(0) = 0 for l1
    net.weights = weights
    X, Y = regression_data(sizes, F64, m=12)
    eta = _rate(kwargs.get("optimizer", "sgd"))
    hand = hand_fit(net, X, Y, [eta] * 3, **kwargs)
    net.fit(X, Y, epochs=3, batch_size=12, learning_rate=eta, shuffle=False, **kwargs)
    assert_matches_hand(net, hand)


def test_l2_is_nielsens_form():
    """One sgd step with L2: w <- (1 - eta l2 / n) w - eta g; b <- b - eta g_b."""
    sizes = [3, 4, 2]
    net = dp.Network(sizes, seed=2)
    X, Y = regression_data(sizes, F64, m=8)
    W0, b0 = copies(net)
    grad_b, grad_w = net.backprop(X, Y)
    eta, lmbda, n = 0.5, 4.0, 8
    net.fit(X, Y, epochs=1, batch_size=8, learning_rate=eta, l2=lmbda, shuffle=False)
    assert_same_list(net.weights, [(1 - eta * lmbda / n) * w - eta * g for w, g in zip(W0, grad_w)])
    assert_same_list(net.biases, [b - eta * g for b, g in zip(b0, grad_b)])


def test_clipping_scales_all_gradients():
    """clip_norm rescales the gradients of every layer, biases included, by one factor."""
    sizes = [3, 4, 2]
    net = dp.Network(sizes, seed=2)
    X, Y = regression_data(sizes, F64, m=8)
    W0, b0 = copies(net)
    grad_b, grad_w = net.backprop(X, Y)
    total = math.sqrt(sum(float(np.sum(g ** 2)) for g in grad_w + grad_b))
    clip = total / 10
    coef = clip / (total + 1e-6)
    history = net.fit(X, Y, epochs=1, batch_size=8, learning_rate=1.0, clip_norm=clip,
                      shuffle=False)
    assert_same_list(net.weights, [w - coef * g for w, g in zip(W0, grad_w)])
    assert_same_list(net.biases, [b - coef * g for b, g in zip(b0, grad_b)])
    # the history records the raw (unclipped) norms
    assert_same(np.asarray(history.grad_norms[0]), np.array([np.linalg.norm(g) for g in grad_w]))


def test_reference_dropout_hash_is_the_spec():
    """reference.dropout_uniforms against SPEC3's formula in Python integers (mod 2^64)."""
    mask64 = 2 ** 64 - 1

    def u(key, step, layer, index):
        x = (key + 0x9E3779B97F4A7C15 * ((step * 64 + layer) * 2 ** 32 + index)) & mask64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask64
        z = z ^ (z >> 31)
        return (z >> 11) * 2.0 ** -53

    for key, step, layer, m, n in [(0, 0, 0, 2, 3), (2 ** 63 - 1, 5, 2, 3, 4),
                                   (123456789, 10 ** 9, 63, 2, 5), (2 ** 62 + 7, 1, 1, 1, 1)]:
        got = reference.dropout_uniforms(key, step, layer, m, n)
        expected = np.array([[u(key, step, layer, i * n + j) for j in range(n)] for i in range(m)])
        np.testing.assert_array_equal(got, expected)
    mask = reference.dropout_mask(99, 3, 1, 0.25, 4, 6, np.float32)
    expected = np.array([[u(99, 3, 1, i * 6 + j) >= 0.25 for j in range(6)] for i in range(4)])
    np.testing.assert_array_equal(mask, (expected / 0.75).astype(np.float32))
    assert mask.dtype == np.float32


def fit_key(seed):
    return int(np.random.default_rng(seed).integers(0, 2 ** 63, dtype=np.int64))


def test_dropout_one_step_by_hand():
    """One full-batch sgd step with dropout, computed here from SPEC3 step 1-3 and the hash."""
    sizes = [3, 7, 5, 2]
    net = dp.Network(sizes, "sigmoid", "identity", seed=3)
    X, Y = regression_data(sizes, F64, m=6)
    W, b = copies(net)
    p = [0.3, 0.6]
    eta, seed = 0.7, 17
    key = fit_key(seed)
    masks = [reference.dropout_mask(key, 0, l, p[l], 6, sizes[l + 1], F64) for l in range(2)]
    sig = lambda z: 1 / (1 + np.exp(-z))
    Z1 = X @ W[0].T + b[0]
    H1 = sig(Z1) * masks[0]
    Z2 = H1 @ W[1].T + b[1]
    H2 = sig(Z2) * masks[1]
    A3 = H2 @ W[2].T + b[2]
    D3 = A3 - Y
    D2 = (D3 @ W[2]) * sig(Z2) * (1 - sig(Z2)) * masks[1]
    D1 = (D2 @ W[1]) * sig(Z1) * (1 - sig(Z1)) * masks[0]
    grads_w = [D1.T @ X / 6, D2.T @ H1 / 6, D3.T @ H2 / 6]
    grads_b = [D.mean(axis=0) for D in (D1, D2, D3)]
    history = net.fit(X, Y, epochs=1, batch_size=6, learning_rate=eta, dropout=p, seed=seed,
                      shuffle=False)
    assert_same_list(net.weights, [w - eta * g for w, g in zip(W, grads_w)])
    assert_same_list(net.biases, [v - eta * g for v, g in zip(b, grads_b)])
    assert_same_scalar(history.loss[0], 0.5 * float(np.sum(D3 ** 2)) / 6, F64)


# --- 6. dropout statistics and determinism of inference --------------------------------------


def one_row_dropout_step(p, seed, width=2000):
    """[3, width, 1] sigmoid/identity, one row, one sgd step with dropout p; returns the
    network's parameters before and after, the row, and the fit key."""
    net = dp.Network([3, width, 1], "sigmoid", "identity", seed=1)
    X = np.array([[0.5, -1.0, 2.0]])
    Y = np.array([[10.0]])
    before = copies(net)
    net.fit(X, Y, epochs=1, batch_size=1, learning_rate=0.1, dropout=p, seed=seed)
    return net, before, X, Y


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_mask_statistics(p):
    width = 2000
    net, (W0, b0), X, Y = one_row_dropout_step(p, seed=0, width=width)
    # A dropped hidden unit j gets a zero delta (row j of g_W1 and g_b1 is 0) and passes on 0
    # (column j of g_W2 is 0): exactly its parameters stay unchanged.
    row_unchanged = np.all(net.weights[0] == W0[0], axis=1) & (net.biases[0] == b0[0])
    column_unchanged = net.weights[1][0] == W0[1][0]
    np.testing.assert_array_equal(row_unchanged, column_unchanged)
    dropped = row_unchanged
    # Binomial(width, p): 5 standard deviations.
    bound = 5 * math.sqrt(p * (1 - p) / width)
    assert abs(dropped.mean() - p) < bound, (dropped.mean(), p)
    # ... and exactly the units the hash drops.
    expected_mask = reference.dropout_mask(fit_key(0), 0, 0, p, 1, width, F64)[0]
    np.testing.assert_array_equal(dropped, expected_mask == 0)
    # Kept units are scaled by 1 / (1 - p): g_W2 = D2 * H1 with H1 = A1 / (1 - p).
    A1 = 1 / (1 + np.exp(-(X @ W0[0].T + b0[0])))[0]
    H1 = A1 * expected_mask
    D2 = float(H1 @ W0[1][0] + b0[1][0] - Y[0, 0])
    assert_same(net.weights[1][0], W0[1][0] - 0.1 * D2 * H1)


def test_dropout_masks_depend_on_seed_and_step():
    _, (W0, _), _, _ = one_row_dropout_step(0.5, seed=0)
    net_a, _, _, _ = one_row_dropout_step(0.5, seed=0)
    net_b, _, _, _ = one_row_dropout_step(0.5, seed=1)
    dropped_a = np.all(net_a.weights[0] == W0[0], axis=1)
    dropped_b = np.all(net_b.weights[0] == W0[0], axis=1)
    assert not np.array_equal(dropped_a, dropped_b)
    # across steps: two rows in batches of 1 use two different masks
    k0 = reference.dropout_mask(fit_key(0), 0, 0, 0.5, 1, 2000, F64)
    k1 = reference.dropout_mask(fit_key(0), 1, 0, 0.5, 1, 2000, F64)
    assert not np.array_equal(k0, k1)


def test_no_dropout_outside_training():
    """predict, loss, evaluate, trace and backprop apply no dropout, after a fit with dropout."""
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    before = net.predict(X)
    loss_before = net.loss(X, labels)
    start = net._snapshot()
    net.fit(X, labels, learning_rate=0.5, dropout=0.5, **RUN)
    ref.weights, ref.biases = net.weights, net.biases
    # deterministic, and equal to the reference without masks
    assert_same(net.predict(X), net.predict(X), scale=0)
    assert_same(net.predict(X), ref.predict(X))
    assert_same_scalar(net.loss(X, labels), ref.loss(X, labels), F64)
    assert net.evaluate(X, labels) == ref.evaluate(X, labels)
    t, r = net.trace(X, labels), ref.trace(X, labels)
    assert_same_list(t.deltas, r.deltas)
    assert_same_list(t.grad_w, r.grad_w)
    # same parameters as before training -> the very same outputs as before training
    net._restore(start)
    assert_same(net.predict(X), before, scale=0)
    assert net.loss(X, labels) == loss_before


# --- 4. initializers ---------------------------------------------------------------------------


def expected_initial(sizes, inits, seed):
    """SPEC3's initializers, one default_rng(seed), weights then biases per layer."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out, init in zip(sizes[:-1], sizes[1:], inits):
        shape = (n_out, n_in)
        b = np.zeros(n_out)
        if init == "nielsen":
            w = rng.standard_normal(shape) / math.sqrt(n_in)
            b = rng.standard_normal(n_out)
        elif init == "large":
            w = rng.standard_normal(shape)
            b = rng.standard_normal(n_out)
        elif init == "glorot_uniform":
            limit = math.sqrt(6 / (n_in + n_out))
            w = rng.uniform(-limit, limit, shape)
        elif init == "glorot_normal":
            w = rng.standard_normal(shape) * math.sqrt(2 / (n_in + n_out))
        elif init == "he_normal":
            w = rng.standard_normal(shape) * math.sqrt(2 / n_in)
        elif init == "he_uniform":
            limit = math.sqrt(6 / n_in)
            w = rng.uniform(-limit, limit, shape)
        elif init == "lecun_normal":
            w = rng.standard_normal(shape) * math.sqrt(1 / n_in)
        else:
            raise AssertionError(init)
        weights.append(w)
        biases.append(b)
    return weights, biases


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("init", INITIALIZER_NAMES + ("he",))
def test_initializer(init, dtype):
    sizes = [7, 5, 4, 3]
    net, _ = build_pair(sizes, "tanh", "sigmoid", "quadratic", dtype, seed=11, init=init)
    scheme = "he_normal" if init == "he" else init
    weights, biases = expected_initial(sizes, [scheme] * 3, seed=11)
    assert_same_list(net.weights, [w.astype(dtype) for w in weights], dtype)
    assert_same_list(net.biases, [b.astype(dtype) for b in biases], dtype)
    if scheme.endswith("uniform"):
        for (n_in, n_out), w in zip(zip(sizes[:-1], sizes[1:]), net.weights):
            limit = math.sqrt(6 / (n_in + n_out)) if scheme == "glorot_uniform" else math.sqrt(6 / n_in)
            assert np.all(np.abs(w) <= limit)


@pytest.mark.parametrize("hidden, output, loss, expected", [
    ("relu", "sigmoid", "quadratic", ["he_normal", "he_normal", "nielsen"]),
    ("leaky_relu", "softmax", "categorical_crossentropy", ["he_normal", "he_normal", "nielsen"]),
    ("elu", "elu", "huber", ["he_normal"] * 3),
    ("softplus", "identity", "quadratic", ["nielsen"] * 3),
    ("sigmoid", "relu", "quadratic", ["nielsen", "nielsen", "he_normal"]),
    ("tanh", "tanh", "quadratic", ["nielsen"] * 3),
])
def test_default_initializer_per_activation(hidden, output, loss, expected):
    sizes = [6, 5, 4, 3]
    net, _ = build_pair(sizes, hidden, output, loss, F64, seed=8)  # reference: the same
    weights, biases = expected_initial(sizes, expected, seed=8)
    assert_same_list(net.weights, weights)
    assert_same_list(net.biases, biases)


def test_initializer_seeds():
    a = dp.Network([4, 5, 2], seed=1, init="glorot_uniform")
    b = dp.Network([4, 5, 2], seed=1, init="glorot_uniform")
    c = dp.Network([4, 5, 2], seed=2, init="glorot_uniform")
    assert_same_parameters(a, b, scale=0)
    assert not np.allclose(a.weights[0], c.weights[0])


# --- 5. elu, softplus, huber ---------------------------------------------------------------------

NEW_PAIRINGS = (
    [(h, o, loss) for h in NEW_ACTIVATIONS
     for o in ("identity", "sigmoid", "elu", "softplus", "softmax", "tanh")
     for loss in ("quadratic", "huber")]
    + [(h, "sigmoid", "binary_crossentropy") for h in NEW_ACTIVATIONS]
    + [(h, "softmax", "categorical_crossentropy") for h in NEW_ACTIVATIONS]
    + [(h, o, "huber") for h in ("sigmoid", "relu")
       for o in ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")]
)
NEW_SIZES = [5, 7, 6, 3]


def check_native_vs_reference(net, ref, X, Y, dtype, steps=20, learning_rate=0.05):
    assert_same(net.predict(X), ref.predict(X), dtype)
    t, r = net.trace(X, Y), ref.trace(X, Y)
    for field in ("zs", "activations", "deltas", "grad_b", "grad_w"):
        try:
            assert_same_list(getattr(t, field), getattr(r, field), dtype)
        except AssertionError as exc:
            raise AssertionError(f"trace.{field}: {exc}") from None
    assert_same_scalar(t.loss, r.loss, dtype)
    grad_b, grad_w = net.backprop(X, Y)
    assert_same_list(grad_b, r.grad_b, dtype)
    assert_same_list(grad_w, r.grad_w, dtype)
    assert_same_scalar(net.loss(X, Y), ref.loss(X, Y), dtype)
    for _ in range(steps):
        assert_same_scalar(net.step(X, Y, learning_rate), ref.step(X, Y, learning_rate), dtype)
    assert_same_parameters(net, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pairing", NEW_PAIRINGS, ids="-".join)
def test_new_activations_and_huber(pairing, dtype):
    hidden, output, loss = pairing
    net, ref = build_pair(NEW_SIZES, hidden, output, loss, dtype, seed=2)
    # targets far from the outputs: huber's |r| > 1 branch is exercised
    rng = np.random.default_rng(3)
    X = make_inputs(rng, 9, NEW_SIZES[0], dtype)
    Y = make_targets(rng, loss, 9, NEW_SIZES[-1], dtype)
    if loss == "huber":
        Y = (Y * 3).astype(dtype)
    check_native_vs_reference(net, ref, X, Y, dtype)
    net2, ref2 = build_pair(NEW_SIZES, hidden, output, loss, dtype, seed=2)
    X, Y = regression_data(NEW_SIZES, dtype, m=40, loss=loss)
    fit_both(net2, ref2, X, Y, dtype, learning_rate=0.01, optimizer="adam", dropout=0.2, **RUN)


Z_VALUES = np.array([-1e4, -700.0, -30.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 30.0, 700.0, 1e4])


def exact_f(name, z):
    if name == "elu":
        return z if z > 0 else math.expm1(z)
    if z > 30:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))  # softplus


def exact_f_prime(name, z):
    if name == "elu":
        return 1.0 if z > 0 else math.exp(z)
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def identity_layer(name, dtype, loss="quadratic"):
    """One layer with W = I, b = 0: Z equals the input row."""
    k = len(Z_VALUES)
    net = dp.Network([k, k], name, loss=loss, dtype=dtype)
    net.weights = [np.eye(k)]
    net.biases = [np.zeros(k)]
    return net


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_new_activation_values_and_derivatives(name, dtype):
    """f(z) and f'(z) for |z| up to 1e4: finite, no warnings, equal to the closed forms."""
    net = identity_layer(name, dtype)
    X = Z_VALUES[None, :].astype(dtype)
    A = net.predict(X)[0]
    expected = np.array([exact_f(name, float(z)) for z in X[0]]).astype(dtype)
    assert np.all(np.isfinite(A))
    assert_same(A, expected, dtype)
    # quadratic loss with Y = A - 1: dC/dA = 1, so grad_b = D = f'(Z)
    grad_b, _ = net.backprop(X, (A - 1).reshape(1, -1))
    expected_prime = np.array([exact_f_prime(name, float(z)) for z in X[0]]).astype(dtype)
    assert_same(grad_b[0], expected_prime, dtype)


def test_huber_values_and_gradient():
    net = identity_layer("identity", F64, loss="huber")
    X = Z_VALUES[None, :]
    r = Z_VALUES
    expected = float(np.sum(np.where(np.abs(r) <= 1, 0.5 * r ** 2, np.abs(r) - 0.5)))
    assert_same_scalar(net.loss(X, np.zeros((1, len(r)))), expected, F64)
    grad_b, _ = net.backprop(X, np.zeros((1, len(r))))
    assert_same(grad_b[0], np.clip(r, -1, 1))
    # two rows: mean over rows
    X2 = np.vstack([X, -X])
    assert_same_scalar(net.loss(X2, np.zeros((2, len(r)))), expected, F64)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hidden", NEW_ACTIVATIONS)
@pytest.mark.parametrize("output, loss", [("identity", "huber"), ("softplus", "huber"),
                                          ("elu", "quadratic"), ("softmax", "huber"),
                                          ("sigmoid", "binary_crossentropy")])
def test_new_activations_huge_z(hidden, output, loss, dtype):
    """Hidden pre-activations up to |z| = 1e4: no overflow, NaN or RuntimeWarning, native ==
    reference, and training steps stay finite."""
    k = len(Z_VALUES)
    sizes = [1, k, 2]
    net, ref = build_pair(sizes, hidden, output, loss, dtype, seed=0)
    w1 = Z_VALUES.reshape(k, 1)
    w2 = np.random.default_rng(0).normal(0, 1e-3, (2, k))
    for model in (net, ref):
        model.weights = [w1, w2]
        model.biases = [np.zeros(k), np.zeros(2)]
    X = np.array([[1.0], [-1.0], [0.5]], dtype=dtype)
    Y = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    with warnings.catch_warnings():
        error_on_warnings()
        with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
            t = net.trace(X, Y)
            for field in ("zs", "activations", "deltas", "grad_b", "grad_w"):
                for array in getattr(t, field):
                    assert np.all(np.isfinite(array)), field
            assert math.isfinite(t.loss)
            check_native_vs_reference(net, ref, X, Y, dtype, steps=3, learning_rate=1e-6)


# --- 7. early stopping ---------------------------------------------------------------------------


def overfitting_problem(seed=0):
    """12 noisy training rows, a clean validation set, a wide net and a large rate: the
    validation loss goes up and down."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (12, 3))
    Y = np.sin(3 * X[:, :1]) + rng.normal(0, 0.5, (12, 1))
    X_val = rng.uniform(-1, 1, (40, 3))
    Y_val = np.sin(3 * X_val[:, :1])
    net = dp.Network([3, 40, 1], "tanh", "identity", seed=seed)
    return net, X, Y, (X_val, Y_val)


def recorder(net, store):
    """A callback storing copies of net.weights and net.biases after each epoch."""
    def callback(epoch, metrics):
        store.append(copies(net))
    return callback


def assert_parameters_are(net, recorded):
    weights, biases = recorded
    assert_same_list(net.weights, weights, scale=0)
    assert_same_list(net.biases, biases, scale=0)


def stop_epoch(val_loss, patience, epochs):
    """The number of epochs the rule of SPEC3 runs, and its best epoch."""
    best, best_epoch, waited = math.inf, None, 0
    for epoch, value in enumerate(val_loss):
        if value < best:
            best, best_epoch, waited = value, epoch, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch + 1, best_epoch
    return min(len(val_loss), epochs), best_epoch


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_restores_best_epoch(patience):
    net, X, Y, validation = overfitting_problem()
    snapshots = []
    epochs = 60
    history = net.fit(X, Y, epochs=epochs, batch_size=2, learning_rate=0.1,
                      validation_data=validation, early_stopping=True, patience=patience,
                      callbacks=[recorder(net, snapshots)])
    assert history.stopped_early
    assert history.epochs < epochs
    assert len(snapshots) == history.epochs == len(history.val_loss)
    ran, best = stop_epoch(history.val_loss, patience, epochs)
    assert history.epochs == ran
    assert history.best_epoch == best == int(np.argmin(history.val_loss))
    assert history.epochs == history.best_epoch + patience + 1
    assert_parameters_are(net, snapshots[history.best_epoch])
    assert net.loss(*validation) == history.val_loss[history.best_epoch]


def test_early_stopping_restores_best_even_without_stopping():
    net, X, Y, validation = overfitting_problem()
    snapshots = []
    history = net.fit(X, Y, epochs=30, batch_size=2, learning_rate=0.1,
                      validation_data=validation, early_stopping=True, patience=1000,
                      callbacks=[recorder(net, snapshots)])
    assert not history.stopped_early
    assert history.epochs == 30
    best = int(np.argmin(history.val_loss))
    assert best < 29, "the problem should not have its best epoch last"
    assert history.best_epoch == best
    assert_parameters_are(net, snapshots[best])


def test_early_stopping_needs_strict_improvement():
    """A rate so small that nothing moves: val_loss is constant, only epoch 0 improves."""
    net, X, Y, validation = overfitting_problem()
    history = net.fit(X, Y, epochs=20, batch_size=4, learning_rate=1e-300,
                      validation_data=validation, early_stopping=True, patience=4)
    assert len(set(history.val_loss)) == 1
    assert history.epochs == 5 and history.best_epoch == 0 and history.stopped_early


def test_early_stopping_matches_reference():
    net, X, Y, validation = overfitting_problem()
    ref = reference.Network.from_network(net)
    fit_both(net, ref, X, Y, F64, epochs=8, batch_size=4, learning_rate=0.05,
             validation_data=validation, early_stopping=True, patience=2)


def test_early_stopping_needs_validation():
    net, X, Y, _ = overfitting_problem()
    with pytest.raises(ValueError, match="validation"):
        net.fit(X, Y, epochs=2, early_stopping=True)
    ref = reference.Network.from_network(net)
    with pytest.raises(ValueError, match="validation"):
        ref.fit(X, Y, epochs=2, early_stopping=True)


def test_without_early_stopping_last_parameters_are_kept():
    net, X, Y, validation = overfitting_problem()
    snapshots = []
    history = net.fit(X, Y, epochs=10, batch_size=2, learning_rate=0.1,
                      validation_data=validation, callbacks=[recorder(net, snapshots)])
    assert history.best_epoch is None and not history.stopped_early
    assert_parameters_are(net, snapshots[-1])


# --- 8. validation_fraction ---------------------------------------------------------------------


@pytest.mark.parametrize("n, fraction, n_val", [(40, 0.25, 10), (41, 0.3, 13), (10, 0.01, 1)])
def test_validation_fraction_uses_last_rows(n, fraction, n_val):
    sizes = [4, 6, 2]
    X, Y = regression_data(sizes, F64, m=n)
    net = dp.Network(sizes, seed=0)
    plain = clone(net)
    kwargs = dict(epochs=1, batch_size=3, learning_rate=0.5, l2=1.0, dropout=0.2)
    history = net.fit(X, Y, validation_fraction=fraction, **kwargs)
    # training used exactly the first n - n_val rows (n_train enters l2 / n)
    plain.fit(X[: n - n_val], Y[: n - n_val], **kwargs)
    assert_same_parameters(net, plain, scale=0)
    assert history.val_loss == [net.loss(X[n - n_val:], Y[n - n_val:])]
    assert history.val_accuracy == [None]


def test_validation_fraction_with_labels():
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    history, _ = fit_both(net, ref, X, labels, F64, learning_rate=0.3, validation_fraction=0.2,
                          **RUN)
    assert history.val_loss[-1] == net.loss(X[32:], labels[32:])
    assert history.val_accuracy[-1] == net.evaluate(X[32:], labels[32:])


def test_validation_fraction_and_data_exclusive():
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    with pytest.raises(ValueError):
        net.fit(X, labels, epochs=1, validation_fraction=0.2, validation_data=(X, labels))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, 0.999])
def test_validation_fraction_bad_values(fraction):
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    with pytest.raises(ValueError):
        net.fit(X, labels, epochs=1, validation_fraction=fraction)


def test_validation_data_history():
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    Xv, lv = classification_data(F64, m=15, seed=9)
    history, _ = fit_both(net, ref, X, labels, F64, learning_rate=0.3,
                          validation_data=(Xv, lv), **RUN)
    assert len(history.val_loss) == len(history.val_accuracy) == 2
    assert history.val_accuracy[-1] == net.evaluate(Xv, lv)
    # a regression validation target: no val_accuracy values
    sizes = [4, 5, 2]
    net = dp.Network(sizes, seed=0)
    X, Y = regression_data(sizes, F64)
    history = net.fit(X, Y, epochs=2, validation_data=(X[:5], Y[:5]), learning_rate=0.1)
    assert history.val_accuracy == [None, None]
    assert history.val_loss[-1] == net.loss(X[:5], Y[:5])


# --- 9. determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_same_settings_give_identical_results(dtype):
    X, labels = classification_data(dtype)
    kwargs = dict(epochs=3, batch_size=5, learning_rate=0.01, optimizer="adam",
                  dropout=[0.3, 0.4], l2=0.5, clip_norm=1.0, seed=21)
    results = []
    for _ in range(2):
        net, _ = cls_pair(dtype)
        history = net.fit(X, labels, **kwargs)
        results.append((net, history))
    (a, ha), (b, hb) = results
    assert_same_parameters(a, b, dtype, scale=0)
    assert ha.loss == hb.loss and ha.grad_norms == hb.grad_norms
    c, _ = cls_pair(dtype)
    c.fit(X, labels, **{**kwargs, "seed": 22})
    assert not np.allclose(c.weights[0], a.weights[0])


# --- 10. History -------------------------------------------------------------------------------

METRIC_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
               "samples_per_second", "grad_norms"}


def test_history_contents_classification():
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    Xv, lv = classification_data(F64, m=10, seed=4)
    seen = []
    history = net.fit(X, labels, epochs=4, batch_size=7, learning_rate=0.2,
                      validation_data=(Xv, lv), callbacks=[lambda e, m: seen.append((e, m))])
    assert isinstance(history, History)
    assert history.epochs == 4
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds",
                 "samples_per_second", "learning_rate", "grad_norms"):
        assert len(getattr(history, name)) == 4, name
    assert all(0 <= a <= 1 for a in history.accuracy)
    assert all(len(g) == 3 and all(x > 0 for x in g) for g in history.grad_norms)
    assert all(s > 0 and math.isfinite(s) for s in history.samples_per_second)
    assert all(s >= 0 for s in history.seconds)
    assert history.best_epoch is None and history.stopped_early is False
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    for epoch, metrics in seen:
        assert set(metrics) == METRIC_KEYS
        for key in METRIC_KEYS:
            assert metrics[key] == getattr(history, key)[epoch], key


def test_history_contents_regression():
    sizes = [4, 5, 2]
    net = dp.Network(sizes, seed=0)
    X, Y = regression_data(sizes, F64)
    seen = []
    history = net.fit(X, Y, epochs=3, learning_rate=0.1, callbacks=[lambda e, m: seen.append(m)])
    assert history.accuracy == [None, None, None]
    assert history.val_loss == [] and history.val_accuracy == []
    assert all(len(g) == 2 for g in history.grad_norms)
    assert seen[-1]["val_loss"] is None and seen[-1]["val_accuracy"] is None
    assert seen[-1]["accuracy"] is None


@pytest.mark.parametrize("loss, n_out", [("categorical_crossentropy", 3),
                                         ("binary_crossentropy", 1), ("quadratic", 3)])
def test_history_first_epoch_measures_before_the_step(loss, n_out):
    """Full batch: loss, accuracy and grad norms of epoch 0 are those of the initial network."""
    sizes = [4, 5, n_out]
    net = dp.Network(sizes, "tanh", loss=loss, seed=3)
    rng = np.random.default_rng(0)
    X = make_inputs(rng, 20, 4, F64)
    labels = rng.integers(0, max(n_out, 2), size=20)
    loss_before = net.loss(X, labels)
    accuracy_before = net.evaluate(X, labels)
    _, grad_w = net.backprop(X, labels)
    history = net.fit(X, labels, epochs=1, batch_size=20, learning_rate=0.1)
    assert_same_scalar(history.loss[0], loss_before, F64)
    assert history.accuracy[0] == accuracy_before
    assert_same(np.asarray(history.grad_norms[0]), np.array([np.linalg.norm(g) for g in grad_w]))


# --- 11. callbacks -----------------------------------------------------------------------------


def test_callback_returning_true_stops():
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    calls = []

    def stop_at_2(epoch, metrics):
        calls.append(("stop", epoch))
        return epoch == 2

    def watcher(epoch, metrics):
        calls.append(("watch", epoch))

    history, _ = fit_both(net, ref, X, labels, F64, epochs=10, batch_size=8, learning_rate=0.3,
                          callbacks=[stop_at_2, watcher])
    assert history.epochs == 3 and history.stopped_early
    # every callback is called at every epoch, the stopping epoch included (native, then
    # reference)
    assert calls == 2 * [(name, e) for e in range(3) for name in ("stop", "watch")]
    # the parameters are those after epoch 2 (no restoring without early stopping)
    again, _ = cls_pair(F64)
    again.fit(X, labels, epochs=3, batch_size=8, learning_rate=0.3)
    assert_same_parameters(net, again, scale=0)


@pytest.mark.parametrize("bad", [1, "print", None, [print]])
def test_non_callable_callback(bad):
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    before = net._snapshot()
    with pytest.raises(TypeError):
        net.fit(X, labels, epochs=1, callbacks=[bad])
    assert_same(net._snapshot(), before, scale=0)


# --- 12. warm start ----------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "adagrad"])
def test_warm_start_matches_reference(optimizer):
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    eta = _rate(optimizer)
    for _ in range(2):
        fit_both(net, ref, X, labels, F64, epochs=1, batch_size=4, learning_rate=eta,
                 optimizer=optimizer, dropout=0.2)
    # a change of other settings keeps the optimizer state
    fit_both(net, ref, X, labels, F64, epochs=1, batch_size=4, learning_rate=eta,
             optimizer=optimizer, l2=1.0)


def test_warm_start_continues_adam():
    """Two 1-epoch fits (same order, constant rate) == one 2-epoch fit: adam's m, s and t
    carry over."""
    X, labels = classification_data(F64)
    kwargs = dict(batch_size=4, learning_rate=0.01, optimizer="adam", shuffle=False)
    twice, _ = cls_pair(F64)
    twice.fit(X, labels, epochs=1, **kwargs)
    twice.fit(X, labels, epochs=1, **kwargs)
    once, _ = cls_pair(F64)
    once.fit(X, labels, epochs=2, **kwargs)
    assert_same_parameters(twice, once, scale=0)


def test_reset_optimizer_and_optimizer_change_start_fresh():
    X, labels = classification_data(F64)
    kwargs = dict(epochs=1, batch_size=4, learning_rate=0.01, seed=2)
    net, _ = cls_pair(F64)
    net.fit(X, labels, optimizer="adam", **kwargs)
    fresh = clone(net)
    net.reset_optimizer()
    net.fit(X, labels, optimizer="adam", **kwargs)
    fresh.fit(X, labels, optimizer="adam", **kwargs)
    assert_same_parameters(net, fresh, scale=0)
    # without reset the result differs (the state was really kept)
    warm = clone(fresh)
    warm.fit(X, labels, optimizer="adam", **kwargs)  # fresh state
    fresh.fit(X, labels, optimizer="adam", **kwargs)  # warm state
    assert not np.allclose(fresh.weights[0], warm.weights[0], rtol=1e-9, atol=0)
    # a different optimizer (other hyperparameters) starts from fresh state
    changed = clone(fresh)
    fresh.fit(X, labels, optimizer=optimizers.Adam(beta1=0.8), **kwargs)
    changed.fit(X, labels, optimizer=optimizers.Adam(beta1=0.8), **kwargs)
    assert_same_parameters(fresh, changed, scale=0)


def test_reference_reset_optimizer_matches_native():
    X, labels = classification_data(F64)
    kwargs = dict(epochs=1, batch_size=4, learning_rate=0.01, optimizer="rmsprop")
    net, ref = cls_pair(F64)
    fit_both(net, ref, X, labels, F64, **kwargs)
    net.reset_optimizer()
    ref.reset_optimizer()
    fit_both(net, ref, X, labels, F64, **kwargs)
    fit_both(net, ref, X, labels, F64, **{**kwargs, "optimizer": "adamw"})


# --- 13. the native loop is repeated steps ------------------------------------------------------


def manual_steps(net, X, Y, orders, batch_size, eta):
    """net.step over the mini-batches of each order; returns the epochs' weighted mean losses
    and mean grad norms, measured before each step."""
    losses, norms = [], []
    for order in orders:
        total, norm_sum, steps = 0.0, 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            _, grad_w = net.backprop(X[rows], Y[rows])
            norm_sum = norm_sum + np.array([np.linalg.norm(g) for g in grad_w])
            total += net.step(X[rows], Y[rows], eta) * len(rows)
            steps += 1
        losses.append(total / len(order))
        norms.append(norm_sum / steps)
    return losses, norms


@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_is_repeated_steps(shuffle):
    sizes = [4, 6, 3]
    X, Y = regression_data(sizes, F64, m=23)  # 23 = 4 * 5 + 3: a partial last batch
    net = dp.Network(sizes, "sigmoid", seed=1)
    manual = clone(net)
    history = net.fit(X, Y, epochs=3, batch_size=5, learning_rate=0.7, shuffle=shuffle, seed=13)
    rng = np.random.default_rng(13)
    rng.integers(0, 2 ** 63, dtype=np.int64)  # the dropout key is drawn first, always
    orders = [rng.permutation(23) if shuffle else np.arange(23) for _ in range(3)]
    losses, norms = manual_steps(manual, X, Y, orders, 5, 0.7)
    assert_same_parameters(net, manual, scale=0)
    assert_same(np.asarray(history.loss), np.asarray(losses))
    assert_same(np.asarray(history.grad_norms), np.asarray(norms))


def test_fit_orchestration_is_the_spec():
    """fit == the model interface driven by hand as SPEC3 says: rng = default_rng(seed), the
    dropout key drawn first, one permutation per epoch, the schedule's rate, and the
    fit-wide index of each epoch's first step (which selects the dropout masks)."""
    from deltaprop._training import TrainingSettings

    X, labels = classification_data(F64, m=23)  # 23 rows in batches of 5: 5 steps per epoch
    net, ref = cls_pair(F64)
    kwargs = dict(epochs=3, batch_size=5, learning_rate=0.02, optimizer="adam", seed=4,
                  schedule="exponential", dropout=[0.5, 0.3], l2=1.0, clip_norm=2.0)
    history = net.fit(X, labels, **kwargs)

    rng = np.random.default_rng(4)
    key = int(rng.integers(0, 2 ** 63, dtype=np.int64))
    ref._begin_training(TrainingSettings(
        optimizer=optimizers.Adam(), l2=1.0, l1=0.0, weight_decay=0.0, dropout=(0.5, 0.3),
        clip_norm=2.0, key=key, n_train=23))
    Y = one_hot_rows(labels, 3, F64)
    for epoch in range(3):
        order = rng.permutation(23)
        loss, correct, norms = ref._train_epoch(X, Y, order, 5, 0.02 * 0.95 ** epoch, 5 * epoch)
        assert_same_scalar(history.loss[epoch], float(loss), F64)
        assert history.accuracy[epoch] == correct / 23
        assert_same(np.asarray(history.grad_norms[epoch]), np.asarray(norms))
    assert_same_parameters(net, ref)


def test_invscaling_counts_training_rows_only():
    """n_samples of the schedule is the number of training rows (validation rows excluded)."""
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64, m=16)
    history = net.fit(X, labels, epochs=3, learning_rate=1.0, schedule="invscaling",
                      validation_fraction=0.25)
    np.testing.assert_allclose(history.learning_rate, [1 / (e * 12 + 1) ** 0.5 for e in range(3)],
                               rtol=1e-14)


def test_early_stopping_restore_reaches_the_layers():
    """The restored parameters are visible through every view: net.weights, net.layers and
    the arrays obtained before the fit (they share memory with the network)."""
    net, X, Y, validation = overfitting_problem()
    views = net.weights + net.biases
    snapshots = []
    history = net.fit(X, Y, epochs=40, batch_size=2, learning_rate=0.1,
                      validation_data=validation, early_stopping=True, patience=2,
                      callbacks=[recorder(net, snapshots)])
    best_w, best_b = snapshots[history.best_epoch]
    assert_same_list(views, best_w + best_b, scale=0)
    assert_same_list([layer.weights for layer in net.layers], best_w, scale=0)
    assert_same(net.predict(validation[0]), reference.Network.from_network(net).predict(validation[0]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batch_larger_than_data_and_partial_batches(dtype):
    X, labels = classification_data(dtype, m=7)
    for batch_size in (10, 3):
        net, ref = cls_pair(dtype)
        fit_both(net, ref, X, labels, dtype, epochs=3, batch_size=batch_size, learning_rate=0.05,
                 optimizer="adam", dropout=[0.5, 0.5], seed=1)


def test_single_layer_network_trains_with_every_option():
    """No hidden layer: a scalar dropout applies to nothing; the rest works as usual."""
    net, ref = build_pair([5, 3], "softmax", None, "categorical_crossentropy", F64, seed=0)
    X, labels = classification_data(F64)
    fit_both(net, ref, X, labels, F64, learning_rate=0.05, optimizer="adamw", dropout=0.5,
             l2=1.0, l1=0.1, clip_norm=0.5, **RUN)
    plain, _ = build_pair([5, 3], "softmax", None, "categorical_crossentropy", F64, seed=0)
    plain.fit(X, labels, learning_rate=0.05, optimizer="adamw", l2=1.0, l1=0.1, clip_norm=0.5,
              **RUN)
    assert_same_parameters(net, plain, scale=0)


def test_verbose_output(capsys, monkeypatch):
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    Xv, lv = classification_data(F64, m=8, seed=3)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # no tqdm: plain lines
    net.fit(X, labels, epochs=2, learning_rate=0.1, validation_data=(Xv, lv), verbose=True)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "val_loss" in lines[1]
    monkeypatch.undo()
    net.fit(X, labels, epochs=2, learning_rate=0.1, verbose=True)  # tqdm bar (if installed)
    net.fit(X, labels, epochs=2, learning_rate=0.1, verbose=False)
    captured = capsys.readouterr()
    assert "epoch 1/2" not in captured.out


def test_history_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    net, _ = cls_pair(F64)
    X, labels = classification_data(F64)
    history = net.fit(X, labels, epochs=3, learning_rate=0.1, validation_fraction=0.25)
    figure = history.plot()
    assert len(figure.axes) == 3
    import matplotlib.pyplot as plt

    plt.close(figure)


BAD_FIT_ARGUMENTS = [
    (dict(epochs=0), ValueError),
    (dict(epochs=1.5), TypeError),
    (dict(batch_size=0), ValueError),
    (dict(learning_rate=0.0), ValueError),
    (dict(learning_rate=-1.0), ValueError),
    (dict(learning_rate=float("nan")), ValueError),
    (dict(optimizer="adamax"), ValueError),
    (dict(optimizer=3), TypeError),
    (dict(optimizer=optimizers.Optimizer()), TypeError),
    (dict(schedule="linear"), ValueError),
    (dict(schedule=None), TypeError),
    (dict(l2=-1.0), ValueError),
    (dict(l1=-0.1), ValueError),
    (dict(weight_decay=-0.1), ValueError),
    (dict(l2=float("inf")), ValueError),
    (dict(dropout=1.0), ValueError),
    (dict(dropout=-0.1), ValueError),
    (dict(dropout=[0.1]), ValueError),
    (dict(dropout=[0.1, 0.2, 0.3]), ValueError),
    (dict(dropout=[0.1, 1.2]), ValueError),
    (dict(clip_norm=0.0), ValueError),
    (dict(clip_norm=-1.0), ValueError),
    (dict(patience=0), ValueError),
    (dict(early_stopping=True), ValueError),
    (dict(validation_data=([[0.0] * 5], [0, 1])), ValueError),
    (dict(validation_data=[[0.0] * 5]), TypeError),
    (dict(callbacks=[None]), TypeError),
]


@pytest.mark.parametrize("cls", [dp.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("kwargs, error", BAD_FIT_ARGUMENTS,
                         ids=[repr(k)[:40] for k, _ in BAD_FIT_ARGUMENTS])
def test_bad_fit_arguments(cls, kwargs, error):
    net = cls(CLS_SIZES, "tanh", loss="categorical_crossentropy", seed=0)
    X, labels = classification_data(F64)
    before = copies(net)
    with pytest.raises(error):
        net.fit(X, labels, **{"epochs": 2, **kwargs})
    assert_same_list(net.weights, before[0], scale=0)
    assert_same_list(net.biases, before[1], scale=0)


def test_optimizer_objects_validate():
    with pytest.raises(ValueError):
        optimizers.Momentum(1.0)
    with pytest.raises(ValueError):
        optimizers.Adam(beta1=1.0)
    with pytest.raises(ValueError):
        optimizers.Adam(eps=0.0)
    with pytest.raises(ValueError):
        optimizers.RMSprop(alpha=-0.1)
    with pytest.raises(TypeError):
        optimizers.Adam(beta1="0.9")
    assert optimizers.AdamW().default_weight_decay == 0.01
    assert optimizers.Adam().default_weight_decay == 0.0


DEEP_SIZES = [2] * 66 + [1]  # 65 hidden layers: one more than the dropout hash numbers


def deep_problem():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 2)), rng.normal(size=(8, 1))


def test_dropout_limited_to_64_hidden_layers():
    X, Y = deep_problem()
    net = dp.Network(DEEP_SIZES, "tanh", "identity", seed=0)
    before = copies(net)
    with pytest.raises(ValueError, match="64"):
        net.fit(X, Y, epochs=1, dropout=0.1)
    assert_same_list(net.weights, before[0], scale=0)
    # dropout on the first 64 hidden layers only is accepted, and matches the reference
    ref = reference.Network.from_network(net)
    fit_both(net, ref, X, Y, F64, epochs=1, batch_size=4, learning_rate=0.01,
             dropout=[0.1] * 64 + [0.0])


def test_refused_fit_keeps_the_optimizer_consistent():
    """A fit refused by the engine's configuration must not leave the network believing it
    holds state for the refused settings' optimizer: the next fit with that optimizer must
    run it (here: sgd after adam), not the previous optimizer."""
    X, Y = deep_problem()
    kwargs = dict(epochs=1, batch_size=4, learning_rate=0.01)
    net = dp.Network(DEEP_SIZES, "tanh", "identity", seed=0)
    net.fit(X, Y, optimizer="adam", **kwargs)
    fresh = clone(net)
    with pytest.raises(ValueError):
        net.fit(X, Y, optimizer="sgd", dropout=0.1, **kwargs)
    net.fit(X, Y, optimizer="sgd", **kwargs)
    fresh.fit(X, Y, optimizer="sgd", **kwargs)
    gap = float(np.max(np.abs(net.weights[-1] - fresh.weights[-1])))
    assert gap < 1e-12, f"the sgd fit after the refused one ran another optimizer (gap {gap:.3g})"
    assert_same_parameters(net, fresh)


def test_inference_between_epochs_does_not_disturb_training():
    """Validation on many rows and callbacks running predict/trace on large inputs resize the
    engine's workspaces between epochs; training (with dropout) must go on as the reference."""
    net, ref = cls_pair(F64)
    X, labels = classification_data(F64)
    Xv, lv = classification_data(F64, m=300, seed=8)
    big = make_inputs(np.random.default_rng(5), 3000, CLS_SIZES[0], F64)

    def busy(model):
        def callback(epoch, metrics):
            model.predict(big)
            model.trace(big[:50], np.zeros((50, 3)))
        return callback

    kwargs = dict(epochs=3, batch_size=4, learning_rate=0.01, optimizer="adam",
                  dropout=[0.5, 0.3], validation_data=(Xv, lv), seed=2)
    history = net.fit(X, labels, callbacks=[busy(net)], **kwargs)
    ref_history = ref.fit(X, labels, callbacks=[busy(ref)], **kwargs)
    assert_same_parameters(net, ref)
    assert_same_history(history, ref_history, F64)


def test_callbacks_none_means_no_callbacks():
    net = dp.Network([3, 4, 2], seed=0)
    X = np.random.default_rng(0).random((12, 3))
    history = net.fit(X, np.arange(12) % 2, epochs=2, batch_size=4, callbacks=None)
    assert history.epochs == 2


def test_diverging_training_warns():
    net = dp.Network([3, 4, 1], activation="identity", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)) * 100, rng.normal(size=(40, 1)) * 100
    with pytest.warns(RuntimeWarning, match="training diverged.*lower the learning_rate"):
        net.fit(X, Y, epochs=5, batch_size=1, learning_rate=10.0)
