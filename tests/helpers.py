"""The one comparison helper and the one tolerance table of the test suite."""

import warnings

import numpy as np

# Native and reference compute the same equations in a different order of summation (BLAS
# GEMM blocks the k-loop, NumPy's matmul may not), so they agree to a few ulps per
# accumulated product, growing with the length of the sums (n_in, batch size).
# float64: eps = 2.2e-16, sums of a few hundred terms -> ~1e-13 relative; 1e-10 leaves margin
#          for 20 chained SGD steps.
# float32: eps = 1.2e-7, the same reasoning gives ~1e-5; 20 chained steps with sigmoid
#          saturation amplify it, hence 2e-4 relative / 1e-5 absolute.
TOLERANCES = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 2e-4, "atol": 1e-5},
}


def assert_same(actual, expected, dtype=None, scale=1.0, atol_scale=1.0):
    """Shape, then dtype, then values within the dtype's tolerance (times ``scale``; the
    absolute part also times ``atol_scale``, the size of the terms a result was summed from
    where they can cancel: rounding is relative to them, not to the result)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    dtype = np.dtype(dtype) if dtype is not None else expected.dtype
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    tol = TOLERANCES[dtype]
    np.testing.assert_allclose(
        actual, expected, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale * atol_scale
    )


def assert_same_list(actual, expected, dtype=None, scale=1.0, atol_scale=1.0):
    assert len(actual) == len(expected), f"{len(actual)} arrays != {len(expected)}"
    for index, (a, e) in enumerate(zip(actual, expected)):
        try:
            assert_same(a, e, dtype, scale, atol_scale)
        except AssertionError as exc:
            raise AssertionError(f"item {index}: {exc}") from None


def assert_same_scalar(actual, expected, dtype, scale=1.0):
    """A Python float (a loss) against the expected one, at the network dtype's tolerance."""
    assert isinstance(actual, float), f"expected a Python float, got {type(actual).__name__}"
    assert_same(np.asarray(actual, dtype=dtype), np.asarray(expected, dtype=dtype), dtype, scale)


# --- shared test data ------------------------------------------------------------------------

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT_ACTIVATIONS = HIDDEN_ACTIVATIONS + ("softmax",)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Every valid (hidden activation, output activation, loss) triple.
PAIRINGS = (
    [(h, o, "quadratic") for h in HIDDEN_ACTIVATIONS for o in OUTPUT_ACTIVATIONS]
    + [(h, "sigmoid", "binary_crossentropy") for h in HIDDEN_ACTIVATIONS]
    + [(h, "softmax", "categorical_crossentropy") for h in HIDDEN_ACTIVATIONS]
)


def pairing_id(pairing):
    return "-".join(pairing)


def make_inputs(rng, m, n_in, dtype, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=(m, n_in)).astype(dtype)


def make_targets(rng, loss, m, n_out, dtype):
    """Valid targets for the loss: (0,1) for BCE, one-hot rows for CCE, any reals otherwise."""
    if loss == "binary_crossentropy":
        return rng.uniform(0.05, 0.95, size=(m, n_out)).astype(dtype)
    if loss == "categorical_crossentropy":
        return one_hot_rows(rng.integers(0, n_out, size=m), n_out, dtype)
    return rng.normal(0.0, 1.0, size=(m, n_out)).astype(dtype)


def one_hot_rows(labels, n_out, dtype):
    """The one-hot encoding the spec prescribes for integer labels (n_out == 1: a column)."""
    labels = np.asarray(labels)
    if n_out == 1:
        return labels.astype(dtype).reshape(-1, 1)
    targets = np.zeros((labels.shape[0], n_out), dtype=dtype)
    targets[np.arange(labels.shape[0]), labels] = 1
    return targets


# --- training (fit): shared data and comparisons ------------------------------------------------

NEW_ACTIVATIONS = ("elu", "softplus")
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULE_NAMES = ("constant", "step", "exponential", "invscaling", "cosine")
INITIALIZER_NAMES = (
    "nielsen", "large", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
    "lecun_normal",
)


def build_pair(sizes, hidden, output, loss, dtype, seed=0, init=None):
    """A native and a reference network from the same arguments (hence the same parameters)."""
    import deltaprop as dp
    from deltaprop import reference

    kwargs = dict(activation=hidden, output=output, loss=loss, dtype=dtype, seed=seed, init=init)
    net = dp.Network(sizes, **kwargs)
    ref = reference.Network(sizes, **kwargs)
    assert_same_parameters(net, ref, dtype, scale=0)
    return net, ref


def assert_same_parameters(actual, expected, dtype=None, scale=1.0):
    """Weights and biases of two networks (native or reference) agree."""
    try:
        assert_same_list(actual.weights, expected.weights, dtype, scale)
        assert_same_list(actual.biases, expected.biases, dtype, scale)
    except AssertionError as exc:
        raise AssertionError(f"parameters differ: {exc}") from None


def assert_same_history(actual, expected, dtype, scale=1.0):
    """Two fit Histories agree: the same epochs, learning rates, early-stopping outcome and
    accuracies (counts of rows: exact), losses and gradient norms within the tolerance."""
    assert actual.epochs == expected.epochs, f"{actual.epochs} epochs != {expected.epochs}"
    assert actual.learning_rate == expected.learning_rate
    assert actual.accuracy == expected.accuracy
    assert actual.val_accuracy == expected.val_accuracy
    assert actual.best_epoch == expected.best_epoch
    assert actual.stopped_early == expected.stopped_early
    for name in ("loss", "val_loss"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert len(a) == len(e), f"History.{name}: {len(a)} entries != {len(e)}"
        if a:
            assert_same(np.asarray(a, dtype=dtype), np.asarray(e, dtype=dtype), dtype, scale)
    assert len(actual.grad_norms) == len(expected.grad_norms)
    if actual.grad_norms:
        assert_same(np.asarray(actual.grad_norms, dtype=dtype),
                    np.asarray(expected.grad_norms, dtype=dtype), dtype, scale)


def error_on_warnings():
    """Inside ``warnings.catch_warnings()``: every warning becomes an error, except the
    spurious FP flag some OpenBLAS float32 kernels leave behind (see pyproject.toml)."""
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", "invalid value encountered in matmul", RuntimeWarning)
