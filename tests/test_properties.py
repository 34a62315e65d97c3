"""Hypothesis properties: native and reference agree on drawn networks and data, and |z| up
to 1e4 gives finite results without RuntimeWarning."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import deltaprop as dp
from deltaprop import reference

from helpers import (
    error_on_warnings,
    DTYPES,
    PAIRINGS,
    assert_same,
    assert_same_list,
    assert_same_scalar,
    one_hot_rows,
)

SETTINGS = settings(
    deadline=None,
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def floats(dtype, low, high):
    width = 32 if dtype == np.float32 else 64
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)


@st.composite
def cases(draw):
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n_layers + 1, max_size=n_layers + 1))
    dtype = draw(st.sampled_from(DTYPES))
    hidden, output, loss = draw(st.sampled_from(PAIRINGS))
    m = draw(st.integers(1, 33))
    seed = draw(st.integers(0, 2**32 - 1))
    init = draw(st.sampled_from([None, "nielsen", "he", "large"]))
    X = draw(arrays(dtype, (m, sizes[0]), elements=floats(dtype, -5, 5)))
    n_out = sizes[-1]
    if loss == "categorical_crossentropy":
        labels = draw(arrays(np.int64, m, elements=st.integers(0, n_out - 1)))
        Y = one_hot_rows(labels, n_out, dtype)
    elif loss == "binary_crossentropy":
        Y = draw(arrays(dtype, (m, n_out), elements=floats(dtype, 0, 1)))
    else:
        Y = draw(arrays(dtype, (m, n_out), elements=floats(dtype, -5, 5)))
    return sizes, hidden, output, loss, dtype, seed, init, X, Y


def term_size(ref, trace, m):
    """The largest |term| summed in the step's products: |A_{l-1}| |W_l|^T + |b_l| (forward),
    |D_{l+1}| |W_{l+1}| (BP2), |D_l|^T |A_{l-1}| / m (BP4), at least 1. With 'large' weights
    and identity layers these reach hundreds while a result may cancel to ~0.02, and float32
    rounding of the terms (~3e-5 at 500) then exceeds the table's fixed atol: the native
    kernels and NumPy sum in different orders (seen: 1 draw in ~10 runs of 300)."""
    size = 1.0
    for l, (W, b) in enumerate(zip(ref.weights, ref.biases)):
        A_prev = np.abs(trace.activations[l].astype(np.float64))
        W = np.abs(W.astype(np.float64))
        D = np.abs(trace.deltas[l].astype(np.float64))
        size = max(size, float((A_prev @ W.T + np.abs(b)).max()), float((D.T @ A_prev).max()) / m)
        if l > 0:
            size = max(size, float((D @ W).max()))
    return size


@SETTINGS
@given(cases())
def test_native_agrees_with_reference(case):
    sizes, hidden, output, loss, dtype, seed, init, X, Y = case
    kwargs = dict(activation=hidden, output=output, loss=loss, dtype=dtype, seed=seed, init=init)
    net = dp.Network(sizes, **kwargs)
    ref = reference.Network(sizes, **kwargs)
    assert_same_list(net.weights, ref.weights, dtype, scale=0)
    assert_same_list(net.biases, ref.biases, dtype, scale=0)

    t, r = net.trace(X, Y), ref.trace(X, Y)
    size = term_size(ref, r, len(X))
    assert_same(net.predict(X), ref.predict(X), dtype, atol_scale=size)
    assert_same_list(t.zs, r.zs, dtype, atol_scale=size)
    assert_same_list(t.activations, r.activations, dtype, atol_scale=size)
    assert_same_list(t.deltas, r.deltas, dtype, atol_scale=size)
    assert_same_list(t.grad_b, r.grad_b, dtype, atol_scale=size)
    assert_same_list(t.grad_w, r.grad_w, dtype, atol_scale=size)
    assert_same_scalar(t.loss, r.loss, dtype)
    assert_same_scalar(net.loss(X, Y), ref.loss(X, Y), dtype)

    net.step(X, Y, 0.1)
    ref.step(X, Y, 0.1)
    assert_same_list(net.weights, ref.weights, dtype, atol_scale=size)
    assert_same_list(net.biases, ref.biases, dtype, atol_scale=size)


@st.composite
def extreme_cases(draw):
    """Networks whose pre-activations reach a drawn magnitude up to 1e4 in every layer."""
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n_layers + 1, max_size=n_layers + 1))
    dtype = draw(st.sampled_from(DTYPES))
    hidden, output, loss = draw(st.sampled_from(PAIRINGS))
    m = draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**32 - 1))
    magnitudes = draw(
        st.lists(st.sampled_from([1e1, 1e2, 1e3, 1e4]), min_size=n_layers, max_size=n_layers)
    )
    return sizes, hidden, output, loss, dtype, m, seed, magnitudes


@settings(deadline=None, max_examples=200, database=None)
@given(extreme_cases())
def test_extreme_preactivations_stay_finite(case):
    sizes, hidden, output, loss, dtype, m, seed, magnitudes = case
    rng = np.random.default_rng(seed)
    net = dp.Network(sizes, activation=hidden, output=output, loss=loss, dtype=dtype, seed=0)
    X = rng.uniform(-1, 1, (m, sizes[0])).astype(dtype)
    if loss == "categorical_crossentropy":
        Y = one_hot_rows(rng.integers(0, sizes[-1], m), sizes[-1], dtype)
    elif loss == "binary_crossentropy":
        Y = rng.uniform(0, 1, (m, sizes[-1])).astype(dtype)
    else:
        Y = rng.uniform(-1, 1, (m, sizes[-1])).astype(dtype)

    # Scale each layer's weights (biases 0) so that max |Z_l| over the batch is the drawn
    # magnitude (computed in float64 with the reference activations). Weights stay below
    # 1e4 in size: after a saturated sigmoid the layer input can be ~1e-44, and no sensible
    # weight brings that to the magnitude.
    weights, A = [], X.astype(np.float64)
    activations = [hidden] * (len(sizes) - 2) + [net.layers[-1].activation]
    for (n_in, n_out), magnitude, name in zip(zip(sizes[:-1], sizes[1:]), magnitudes, activations):
        W = rng.uniform(-1, 1, (n_out, n_in))
        Z = A @ W.T
        top = np.abs(Z).max()
        W *= min(magnitude / top, 1e4) if top > 0 else 1.0
        weights.append(W.astype(dtype))
        A = reference.ACTIVATION_FUNCTIONS[name][0](A @ W.T)
    net.weights = weights
    net.biases = [np.zeros(n, dtype) for n in sizes[1:]]
    ref = reference.Network.from_network(net)

    for model in (net, ref):
        with warnings.catch_warnings():
            error_on_warnings()  # a RuntimeWarning fails the test
            prediction = model.predict(X)
            t = model.trace(X, Y)
            loss_value = model.loss(X, Y)
        assert prediction.dtype == dtype and np.isfinite(prediction).all()
        assert np.abs(t.zs[-1]).max() <= 1.01e4
        for name in ("zs", "activations", "deltas", "grad_b", "grad_w"):
            for index, array in enumerate(getattr(t, name)):
                assert np.isfinite(array).all(), f"{type(model).__module__}: {name}[{index}]"
        assert np.isfinite(t.loss) and np.isfinite(loss_value)
        assert t.loss >= 0  # every loss here is a sum of non-negative terms
