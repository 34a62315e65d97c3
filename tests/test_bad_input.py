"""Bad input is refused with ValueError/TypeError naming what was expected and what arrived,
and a refused call leaves the network unchanged. Lists, non-contiguous, Fortran-ordered,
int and bool arrays are accepted and converted."""

import warnings

import numpy as np
import pytest

import deltaprop as dp

from helpers import assert_same, assert_same_list

SIZES = [4, 5, 3]
N_ROWS = 6
DTYPE = np.dtype(np.float64)


@pytest.fixture
def net():
    return dp.Network(SIZES, activation="sigmoid", seed=0)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(N_ROWS, SIZES[0]))
    Y = rng.uniform(0, 1, size=(N_ROWS, SIZES[-1]))
    return X, Y


def snapshot(net):
    return [w.copy() for w in net.weights], [b.copy() for b in net.biases]


def assert_unchanged(net, snap):
    weights, biases = snap
    assert_same_list(net.weights, weights, net.dtype, scale=0)
    assert_same_list(net.biases, biases, net.dtype, scale=0)
    for layer, w, b in zip(net.layers, weights, biases):
        assert_same(layer.weights, w, net.dtype, scale=0)
        assert_same(layer.biases, b, net.dtype, scale=0)


def refused(net, exc, match, call):
    """call() raises exc matching `match`, and leaves the network's parameters unchanged."""
    snap = snapshot(net)
    with pytest.raises(exc, match=match):
        call()
    assert_unchanged(net, snap)


# Every method taking X (and Y where it needs targets).
X_METHODS = {
    "predict": lambda net, X, Y: net.predict(X),
    "backprop": lambda net, X, Y: net.backprop(X, Y),
    "trace": lambda net, X, Y: net.trace(X, Y),
    "loss": lambda net, X, Y: net.loss(X, Y),
    "step": lambda net, X, Y: net.step(X, Y, 0.5),
    "fit": lambda net, X, Y: net.fit(X, Y, epochs=1, batch_size=2, learning_rate=0.5),
    "evaluate": lambda net, X, Y: net.evaluate(X, Y),
}
Y_METHODS = {name: call for name, call in X_METHODS.items() if name != "predict"}


# --- X ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", X_METHODS)
def test_x_3d(net, data, method):
    _, Y = data
    X = np.zeros((N_ROWS, 2, 2))
    refused(
        net, ValueError, r"(?is)2-D.*\(n_samples, 4\).*\(6, 2, 2\)",
        lambda: X_METHODS[method](net, X, Y),
    )


@pytest.mark.parametrize("method", X_METHODS)
def test_x_wrong_feature_count(net, data, method):
    _, Y = data
    X = np.zeros((N_ROWS, 7))
    refused(net, ValueError, r"(?is)7 features.*expects 4", lambda: X_METHODS[method](net, X, Y))


@pytest.mark.parametrize("method", X_METHODS)
def test_x_1d_wrong_length(net, data, method):
    _, Y = data
    refused(
        net, ValueError, r"(?is)3 features.*expects 4",
        lambda: X_METHODS[method](net, np.zeros(3), Y[:1]),
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("method", X_METHODS)
def test_x_not_finite(net, data, method, bad):
    X, Y = data
    X = X.copy()
    X[2, 1] = bad
    refused(
        net, ValueError, r"(?is)\bX\b.*NaN or Inf.*\(2, 1\)", lambda: X_METHODS[method](net, X, Y)
    )


def test_x_with_an_overflowing_sum_is_still_finite():
    """The finite check sums X first; a sum that overflows must not refuse finite data."""
    net = dp.Network([2, 3, 1], "tanh", dtype=np.float64, seed=0)
    X = np.full((4, 2), 1e308)
    out = net.predict(X)
    assert out.shape == (4, 1) and np.isfinite(out).all()
    X[3, 0] = -np.inf  # and one Inf beside the overflow is still found
    with pytest.raises(ValueError, match=r"NaN or Inf.*\(3, 0\)"):
        net.predict(X)


@pytest.mark.parametrize("method", X_METHODS)
def test_x_empty(net, method):
    X = np.zeros((0, SIZES[0]))
    Y = np.zeros((0, SIZES[-1]))
    refused(net, ValueError, r"(?is)empty.*\(0, 4\)", lambda: X_METHODS[method](net, X, Y))


@pytest.mark.parametrize(
    "X, dtype_text",
    [
        (np.array([["a", "b", "c", "d"]]), "<U1"),
        (np.array([[1, 2, 3, None]], dtype=object), "object"),
        (np.ones((2, 4), dtype=complex), "complex128"),
        ([["1", "2", "3", "4"]], "<U1"),
    ],
    ids=["str", "object", "complex", "str-list"],
)
@pytest.mark.parametrize("method", X_METHODS)
def test_x_not_numeric(net, method, X, dtype_text):
    n = np.asarray(X).shape[0]
    Y = np.zeros((n, SIZES[-1]))
    refused(
        net, TypeError, rf"(?is)real numbers.*{dtype_text}", lambda: X_METHODS[method](net, X, Y)
    )


# --- Y ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", Y_METHODS)
def test_rows_mismatch(net, data, method):
    X, Y = data
    refused(
        net, ValueError, r"(?is)\(6, 3\).*\(5, 3\)", lambda: Y_METHODS[method](net, X, Y[:5])
    )


@pytest.mark.parametrize("method", Y_METHODS)
def test_label_count_mismatch(net, data, method):
    X, _ = data
    labels = np.array([0, 1, 2, 0, 1])
    refused(net, ValueError, r"(?is)5 labels.*6 rows", lambda: Y_METHODS[method](net, X, labels))


@pytest.mark.parametrize("method", Y_METHODS)
def test_y_wrong_width(net, data, method):
    X, _ = data
    Y = np.zeros((N_ROWS, 4))
    refused(net, ValueError, r"(?is)\(6, 3\).*\(6, 4\)", lambda: Y_METHODS[method](net, X, Y))


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("method", Y_METHODS)
def test_y_not_finite(net, data, method, bad):
    X, Y = data
    Y = Y.copy()
    Y[4, 2] = bad
    refused(
        net, ValueError, r"(?is)\bY\b.*NaN or Inf.*\(4, 2\)", lambda: Y_METHODS[method](net, X, Y)
    )


@pytest.mark.parametrize(
    "labels, got",
    [([0, 1, 2, -1, 0, 1], "-1 to 2"), ([0, 1, 2, 3, 0, 1], "0 to 3")],
    ids=["negative", "too-large"],
)
@pytest.mark.parametrize("method", Y_METHODS)
def test_labels_out_of_range(net, data, method, labels, got):
    X, _ = data
    labels = np.array(labels)
    refused(
        net, ValueError, rf"(?is)\[0, 3\).*{got}", lambda: Y_METHODS[method](net, X, labels)
    )


def test_binary_labels_out_of_range(data):
    X, _ = data
    net = dp.Network([4, 3, 1], loss="binary_crossentropy", seed=0)
    refused(
        net, ValueError, r"(?is)\[0, 2\).*0 to 2",
        lambda: net.evaluate(X, np.array([0, 1, 2, 0, 1, 1])),
    )


# --- names, pairings, dtypes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: dp.Network(SIZES, activation="swish"),
        lambda: dp.Network(SIZES, activation="sigmoid", output="swish"),
        lambda: dp.Layer(4, 3, "swish"),
    ],
    ids=["hidden", "output", "layer"],
)
def test_unknown_activation(make):
    with pytest.raises(ValueError, match=r"(?is)unknown activation 'swish'.*sigmoid"):
        make()


def test_activation_not_a_string():
    with pytest.raises(TypeError, match=r"(?is)activation.*string.*got 3"):
        dp.Network(SIZES, activation=3)


def test_unknown_loss():
    with pytest.raises(ValueError, match=r"(?is)unknown loss 'hinge'.*quadratic"):
        dp.Network(SIZES, loss="hinge")


def test_softmax_hidden():
    with pytest.raises(ValueError, match=r"(?is)'softmax'.*output layer"):
        dp.Network(SIZES, activation="softmax", output="sigmoid")


def test_softmax_hidden_from_layers():
    layers = [dp.Layer(4, 5, "softmax"), dp.Layer(5, 3, "sigmoid")]
    with pytest.raises(ValueError, match=r"(?is)'softmax'.*output layer"):
        dp.Network(layers=layers)


@pytest.mark.parametrize(
    "loss, output, required",
    [
        ("binary_crossentropy", "softmax", "sigmoid"),
        ("binary_crossentropy", "tanh", "sigmoid"),
        ("categorical_crossentropy", "sigmoid", "softmax"),
        ("categorical_crossentropy", "identity", "softmax"),
    ],
)
def test_cross_entropy_wrong_output(loss, output, required):
    with pytest.raises(ValueError, match=rf"(?is){loss}.*{required}.*{output}"):
        dp.Network(SIZES, activation="relu", output=output, loss=loss)
    layers = [dp.Layer(4, 5, "relu"), dp.Layer(5, 3, output)]
    with pytest.raises(ValueError, match=rf"(?is){loss}.*{required}.*{output}"):
        dp.Network(layers=layers, loss=loss)


@pytest.mark.parametrize("dtype", ["int32", "float16", np.int64, "complex128"])
def test_unsupported_dtype(dtype):
    name = np.dtype(dtype).name
    with pytest.raises(ValueError, match=rf"(?is)float32.*float64.*{name}"):
        dp.Network(SIZES, dtype=dtype)
    with pytest.raises(ValueError, match=rf"(?is)float32.*float64.*{name}"):
        dp.Layer(4, 3, dtype=dtype)


def test_mixed_dtype_layers():
    layers = [dp.Layer(4, 5, dtype="float32"), dp.Layer(5, 3, dtype="float64")]
    with pytest.raises((ValueError, TypeError), match=r"(?is)float32.*float64|float64.*float32"):
        dp.Network(layers=layers)


def test_mismatched_layer_sizes():
    layers = [dp.Layer(4, 5), dp.Layer(6, 3)]
    with pytest.raises(ValueError, match=r"(?is)(5.*6|6.*5)"):
        dp.Network(layers=layers)


# --- training arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -3])
def test_batch_size_not_positive(net, data, value):
    X, Y = data
    refused(
        net, ValueError, rf"(?is)batch_size.*positive integer.*{value}",
        lambda: net.fit(X, Y, epochs=1, batch_size=value),
    )


@pytest.mark.parametrize("value", [2.5, 2.0, "2", None], ids=["2.5", "2.0", "str", "None"])
def test_batch_size_not_integer(net, data, value):
    X, Y = data
    refused(
        net, TypeError, r"(?is)batch_size.*integer",
        lambda: net.fit(X, Y, epochs=1, batch_size=value),
    )


@pytest.mark.parametrize("value", [0, -1])
def test_epochs_not_positive(net, data, value):
    X, Y = data
    refused(
        net, ValueError, rf"(?is)epochs.*positive integer.*{value}",
        lambda: net.fit(X, Y, epochs=value, batch_size=2),
    )


def test_epochs_not_integer(net, data):
    X, Y = data
    refused(
        net, TypeError, r"(?is)epochs.*integer.*1.5",
        lambda: net.fit(X, Y, epochs=1.5, batch_size=2),
    )


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("method", ["step", "fit"])
def test_learning_rate_not_finite(net, data, method, value):
    X, Y = data
    if method == "step":
        call = lambda: net.step(X, Y, value)  # noqa: E731
    else:
        call = lambda: net.fit(X, Y, epochs=1, batch_size=2, learning_rate=value)  # noqa: E731
    refused(net, ValueError, rf"(?is)learning_rate.*finite.*{value}", call)


def test_learning_rate_not_a_number(net, data):
    X, Y = data
    refused(net, TypeError, r"(?is)learning_rate.*real number.*'fast'", lambda: net.step(X, Y, "fast"))


# --- parameter assignment -----------------------------------------------------------------------


def test_assign_network_weights_wrong_shape(net):
    new = [np.zeros((5, 4)), np.zeros((5, 3))]  # second is transposed
    refused(
        net, ValueError, r"(?is)weights\[1\].*\(3, 5\).*\(5, 3\)",
        lambda: setattr(net, "weights", new),
    )


def test_assign_network_biases_wrong_shape(net):
    new = [np.zeros(5), np.zeros((3, 1))]
    refused(
        net, ValueError, r"(?is)biases\[1\].*\(3,\).*\(3, 1\)", lambda: setattr(net, "biases", new)
    )


def test_assign_is_all_or_nothing(net):
    """A valid first array followed by a bad second one changes nothing."""
    new = [np.full((5, 4), 7.0), np.full((3, 4), 7.0)]
    refused(net, ValueError, r"(?is)\(3, 5\).*\(3, 4\)", lambda: setattr(net, "weights", new))
    new = [np.full(5, 7.0), np.full(3, np.nan)]
    refused(net, ValueError, r"(?is)NaN", lambda: setattr(net, "biases", new))


@pytest.mark.parametrize("attribute", ["weights", "biases"])
@pytest.mark.parametrize("count", [1, 3])
def test_assign_wrong_number_of_arrays(net, attribute, count):
    current = getattr(net, attribute)
    new = ([a.copy() for a in current] + [current[0].copy()])[:count]
    refused(
        net, ValueError, rf"(?is)2 arrays.*got {count}", lambda: setattr(net, attribute, new)
    )


def test_assign_single_array_instead_of_list(net):
    refused(net, TypeError, r"(?is)list of 2 arrays.*ndarray",
            lambda: setattr(net, "weights", np.zeros((5, 4))))


def test_assign_nan_weights(net):
    new = [w.copy() for w in net.weights]
    new[0][0, 0] = np.nan
    refused(net, ValueError, r"(?is)NaN or Inf", lambda: setattr(net, "weights", new))


@pytest.mark.parametrize(
    "attribute, value, match",
    [
        ("weights", np.zeros((4, 5)), r"\(5, 4\).*\(4, 5\)"),
        ("weights", np.zeros(20), r"\(5, 4\).*\(20,\)"),
        ("biases", np.zeros(4), r"\(5,\).*\(4,\)"),
        ("biases", np.zeros((5, 1)), r"\(5,\).*\(5, 1\)"),
        ("weights", np.full((5, 4), np.inf), r"NaN or Inf"),
        ("weights", np.full((5, 4), "x"), r"real numbers"),
    ],
)
def test_assign_network_layer_wrong(net, attribute, value, match):
    exc = TypeError if value.dtype.kind == "U" else ValueError
    refused(net, exc, rf"(?is){match}", lambda: setattr(net.layers[0], attribute, value))


@pytest.mark.parametrize(
    "attribute, value, match",
    [
        ("weights", np.zeros((3, 4)), r"\(4, 3\).*\(3, 4\)"),
        ("biases", np.zeros(3), r"\(4,\).*\(3,\)"),
        ("biases", np.array([1.0, np.nan, 0, 0]), r"NaN or Inf"),
    ],
)
def test_assign_standalone_layer_wrong(attribute, value, match):
    layer = dp.Layer(3, 4, "tanh", seed=0)
    before_w, before_b = layer.weights.copy(), layer.biases.copy()
    with pytest.raises(ValueError, match=rf"(?is){match}"):
        setattr(layer, attribute, value)
    assert_same(layer.weights, before_w, DTYPE, scale=0)
    assert_same(layer.biases, before_b, DTYPE, scale=0)


# --- accepted conversions -----------------------------------------------------------------------


def results(net, X, Y):
    """predict, backprop, loss, and the parameters after one step (on a fresh copy)."""
    fresh = dp.Network(SIZES, activation="sigmoid", seed=0, dtype=net.dtype)
    fresh.step(X, Y, 0.5)
    grad_b, grad_w = net.backprop(X, Y)
    return [net.predict(X), *grad_b, *grad_w, np.asarray(net.loss(X, Y), dtype=net.dtype), *fresh.weights]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.tolist(),
        lambda X: [list(row) for row in X],
        lambda X: np.asfortranarray(X),
        lambda X: np.repeat(X, 2, axis=1)[:, ::2],
        lambda X: X[::-1][::-1],
        lambda X: X.astype(np.float32) if X.dtype == np.float64 else X.astype(np.float64),
    ],
    ids=["list", "list-of-lists", "fortran", "strided", "reversed-view", "other-float"],
)
def test_accepted_x_layouts(dtype, convert):
    net = dp.Network(SIZES, activation="sigmoid", seed=0, dtype=dtype)
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(N_ROWS, SIZES[0])).astype(dtype)
    Y = rng.uniform(0, 1, size=(N_ROWS, SIZES[-1])).astype(dtype)
    X_in = convert(X)
    expected = results(net, np.ascontiguousarray(np.asarray(X_in), dtype=dtype), Y)
    actual = results(net, X_in, Y)
    assert_same_list(actual, expected, dtype, scale=0)


@pytest.mark.parametrize(
    "X",
    [
        np.arange(24).reshape(N_ROWS, 4) % 3 - 1,
        np.arange(24, dtype=np.int32).reshape(N_ROWS, 4) % 2,
        np.arange(24, dtype=np.uint8).reshape(N_ROWS, 4) % 5,
        (np.arange(24).reshape(N_ROWS, 4) % 3) == 0,
    ],
    ids=["int64", "int32", "uint8", "bool"],
)
def test_accepted_int_and_bool_x(net, X):
    Y = np.linspace(0, 1, N_ROWS * 3).reshape(N_ROWS, 3)
    expected = results(net, X.astype(DTYPE), Y)
    actual = results(net, X, Y)
    assert_same_list(actual, expected, DTYPE, scale=0)


@pytest.mark.parametrize(
    "convert",
    [
        lambda Y: Y.tolist(),
        lambda Y: np.asfortranarray(Y),
        lambda Y: np.repeat(Y, 2, axis=1)[:, ::2],
        lambda Y: Y.astype(np.float32),
    ],
    ids=["list", "fortran", "strided", "float32"],
)
def test_accepted_y_layouts(net, data, convert):
    X, Y = data
    Y_in = convert(Y)
    expected = results(net, X, np.ascontiguousarray(np.asarray(Y_in), dtype=DTYPE))
    actual = results(net, X, Y_in)
    assert_same_list(actual, expected, DTYPE, scale=0)


def test_accepted_layouts_in_fit(data):
    X, Y = data
    a = dp.Network(SIZES, seed=0)
    b = dp.Network(SIZES, seed=0)
    a.fit(X, Y, epochs=2, batch_size=4, learning_rate=1.0, seed=0)
    b.fit(np.asfortranarray(X).tolist(), np.repeat(Y, 2, axis=1)[:, ::2], epochs=2,
          batch_size=4, learning_rate=1.0, seed=0)
    assert_same_list(b.weights, a.weights, DTYPE, scale=0)
    assert_same_list(b.biases, a.biases, DTYPE, scale=0)


def test_input_arrays_not_modified(net, data):
    X, Y = data
    X_copy, Y_copy = X.copy(), Y.copy()
    net.trace(X, Y)
    net.step(X, Y, 0.5)
    net.fit(X, Y, epochs=1, batch_size=4)
    assert_same(X, X_copy, DTYPE, scale=0)
    assert_same(Y, Y_copy, DTYPE, scale=0)


# --- fit: its first epoch checks the training rows as it reaches them -------------------------

FIT_ROWS = 300
MODELS = {"native": dp.Network, "reference": dp.reference.Network}


def fit_refused(net, match, call, dtype=DTYPE):
    """refused() for either model (the reference has no .layers)."""
    weights, biases = snapshot(net)
    with pytest.raises(ValueError, match=match):
        call()
    assert_same_list(net.weights, weights, dtype, scale=0)
    assert_same_list(net.biases, biases, dtype, scale=0)


def fit_data():
    rng = np.random.default_rng(5)
    return rng.uniform(-1, 1, (FIT_ROWS, SIZES[0])), rng.uniform(0, 1, (FIT_ROWS, SIZES[-1]))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_size", [7, 150], ids=["small-batch", "blas"])
@pytest.mark.parametrize("where", ["X", "Y"])
def test_fit_refusing_the_last_row_changes_nothing(product_path, model, optimizer, batch_size,
                                                   where):
    """NaN in the last row: the native epoch has taken every other step when it reaches it.
    The refused call leaves the parameters and the optimizer state as they were: the next
    fit goes on exactly as on a twin that never saw the bad call."""
    X, Y = fit_data()
    options = dict(batch_size=batch_size, learning_rate=0.1, optimizer=optimizer, shuffle=False)
    net, twin = (MODELS[model](SIZES, seed=0) for _ in range(2))
    for each in (net, twin):  # optimizer state to keep
        each.fit(X, Y, epochs=1, **options)
    bad_X, bad_Y = X.copy(), Y.copy()
    (bad_X if where == "X" else bad_Y)[-1, 2] = np.nan
    fit_refused(
        net, rf"(?is)\b{where}\b.*NaN or Inf.*\({FIT_ROWS - 1}, 2\)",
        lambda: net.fit(bad_X, bad_Y, epochs=3, **options),
    )
    for each in (net, twin):
        each.fit(X, Y, epochs=2, **options)
    assert_same_list(net.weights, twin.weights, DTYPE, scale=0)
    assert_same_list(net.biases, twin.biases, DTYPE, scale=0)


@pytest.mark.parametrize("model", MODELS)
def test_fit_refused_with_another_optimizer_keeps_the_old_state(model):
    """A fit that changes the optimizer discards the old one's state; refused, it must not
    have: the next fit with the old optimizer goes on as on a twin that never saw it."""
    X, Y = fit_data()
    options = dict(epochs=1, batch_size=7, learning_rate=0.05, shuffle=False)
    net, twin = (MODELS[model](SIZES, seed=0) for _ in range(2))
    for each in (net, twin):
        each.fit(X, Y, optimizer="adam", **options)
    bad_X = X.copy()
    bad_X[-1, 0] = np.nan
    fit_refused(net, r"(?is)\bX\b.*NaN or Inf", lambda: net.fit(bad_X, Y, optimizer="momentum",
                                                                 **options))
    for each in (net, twin):
        each.fit(X, Y, optimizer="adam", **options)
    assert_same_list(net.weights, twin.weights, DTYPE, scale=0)
    assert_same_list(net.biases, twin.biases, DTYPE, scale=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("hidden", [5, 100])
@pytest.mark.parametrize("n_in", [4, 36, 48])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
@pytest.mark.parametrize("offset", [8, 16, 48])
@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_on_an_x_off_the_64_byte_boundary(product_path, dtype, n_in, hidden, optimizer,
                                              offset, shuffle):
    """An X that does not start on a 64-byte boundary (NumPy promises 16 bytes) gives the same
    steps, bit for bit, as an aligned X, and NaN is still refused with the parameters put
    back, whichever way the engine reads it: rows narrower than a line as they are (4
    inputs); batches copied to an aligned buffer (shuffled, other optimizers, rows of 36
    values, whose offsets differ row to row); or, for plain SGD over consecutive rows of whole
    vectors (48), in place, with the first layer's W kept at X's offset for the epoch and
    given back at its end, refused or not; or, for plain SGD on 100 hidden units with
    AVX-512, in place with the first layer's W kept as a transposed panel (4 inputs too)."""
    itemsize = np.dtype(dtype).itemsize
    if offset % itemsize:
        pytest.skip("an offset of whole values")
    sizes = [n_in, hidden, 3]
    rng = np.random.default_rng(5)
    rows = FIT_ROWS + 1  # the last batch one row: the batch-1 step, on the offset W too
    X, Y = rng.uniform(-1, 1, (rows, n_in)), rng.uniform(0, 1, (rows, 3))
    buffer = np.empty(X.size + 128 // itemsize, dtype)
    start = (-buffer.ctypes.data % 64) // itemsize  # first 64-byte aligned element
    aligned = buffer[start:start + X.size].reshape(X.shape)
    skip = offset // itemsize
    shifted = buffer[start + skip:start + skip + X.size].reshape(X.shape)
    options = dict(epochs=2, batch_size=10, learning_rate=0.5, optimizer=optimizer,
                   shuffle=shuffle, seed=1)
    nets, histories = [], []
    for view in (aligned, shifted):
        assert (view.ctypes.data % 64 == 0) == (view is aligned)
        view[...] = X
        net = dp.Network(sizes, seed=0, dtype=dtype)
        histories.append(net.fit(view, Y, **options))
        nets.append(net)
    assert_same_list(nets[1].weights, nets[0].weights, dtype, scale=0)
    assert_same_list(nets[1].biases, nets[0].biases, dtype, scale=0)
    assert histories[1].loss == histories[0].loss
    # the gradient norms' sums of squares are added up in another order in place
    np.testing.assert_allclose(histories[1].grad_norms, histories[0].grad_norms, rtol=1e-5)
    assert not np.array_equal(nets[0].weights[0], dp.Network(sizes, seed=0, dtype=dtype).weights[0])
    shifted[57, 2] = np.inf
    net = dp.Network(sizes, seed=0, dtype=dtype)
    net.fit(shifted[:50], Y[:50], **options)  # steps before the refused call, to be kept
    fit_refused(net, r"(?is)\bX\b.*NaN or Inf.*\(57, 2\)", lambda: net.fit(shifted, Y, **options), dtype)
    net.fit(aligned[:50], Y[:50], **options)  # and training goes on from them
    assert np.all(np.isfinite(net.weights[0]))


@pytest.mark.parametrize("hidden", [5, 100])
@pytest.mark.parametrize("n_in", [4, 48])
@pytest.mark.parametrize("batch_size", [7, 150], ids=["small-batch", "blas"])
def test_fit_check_sees_through_dead_inputs_and_overflow(product_path, batch_size, n_in, hidden):
    """The small-batch path checks X through the first layer's Z (NaN or Inf in a row of X
    makes the whole row of Z NaN or Inf) and scans X only when Z is not finite: an Inf under
    an input whose weights are all 0 is still refused (Inf * 0 is NaN), and a finite X whose Z
    overflows is trained on, not refused. (With 100 hidden units, Z of the first layer's
    transposed panel on AVX-512.)"""
    rng = np.random.default_rng(5)
    # 48 inputs, X 16 bytes past a 64-byte boundary: read in place on AVX-512
    buffer = np.empty(FIT_ROWS * n_in + 16)
    start = (-buffer.ctypes.data % 64) // 8 + 2
    X = buffer[start:start + FIT_ROWS * n_in].reshape(FIT_ROWS, n_in)
    X[...] = rng.uniform(-1, 1, X.shape)
    Y = rng.uniform(0, 1, (FIT_ROWS, SIZES[-1]))
    net = dp.Network([n_in, hidden, SIZES[-1]], seed=0)
    weights = net.weights
    weights[0][:, 1] = 0.0  # input 1 is dead
    net.weights = weights
    X[123, 1] = np.inf
    fit_refused(net, r"(?is)\bX\b.*NaN or Inf.*\(123, 1\)",
                lambda: net.fit(X, Y, epochs=1, batch_size=batch_size, shuffle=False))
    X[123, 1] = 0.5
    huge_X = X.copy()
    huge_X[200, 0] = 1e308  # finite, and with weights of 10 on input 0, Z overflows to Inf
    weights[0][:, 0] = 10.0
    net.weights = weights
    with np.errstate(over="ignore"):
        assert np.all(np.isinf(huge_X[200] @ weights[0].T)), "Z overflows"
    before = [w.copy() for w in net.weights]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the loss may diverge
        net.fit(huge_X, Y, epochs=1, batch_size=batch_size, shuffle=False)
    assert not np.array_equal(net.weights[1], before[1]), "trained on, not refused"


@pytest.mark.parametrize("row, column", [(0, 0), (149, 3), (150, 1), (233, 2)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_fit_finds_a_bad_value_anywhere_in_a_batch(product_path, row, column, bad):
    """The engine's check reads each batch in whole vectors and a scalar rest: a value at
    either end of a batch of 150 rows (600 values), or inside one, is found."""
    X, Y = fit_data()
    X[row, column] = bad
    net = dp.Network(SIZES, seed=0)
    fit_refused(net, rf"(?is)\bX\b.*NaN or Inf.*\({row}, {column}\)",
                lambda: net.fit(X, Y, epochs=1, batch_size=150, shuffle=False))


@pytest.mark.parametrize("batch_size, row, column", [(1, 0, 0), (1, 77, 2), (2, 150, 1), (2, 233, 2)])
@pytest.mark.parametrize("where", ["X", "Y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_fit_finds_a_bad_value_in_a_batch_of_few_values(product_path, batch_size, row, column,
                                                        where, bad):
    """Batches of at most 8 values (1 or 2 rows of 4 inputs, of 3 targets) are checked in a
    short loop, without the vector kernel: a bad value anywhere in them is found."""
    X, Y = fit_data()
    (X if where == "X" else Y)[row, column] = bad
    net = dp.Network(SIZES, seed=0)
    fit_refused(net, rf"(?is)\b{where}\b.*NaN or Inf.*\({row}, {column}\)",
                lambda: net.fit(X, Y, epochs=1, batch_size=batch_size, shuffle=False))


@pytest.mark.parametrize("model", MODELS)
def test_fit_names_a_shuffled_bad_row_by_its_index_in_x(model):
    X, Y = fit_data()
    X[123, 1] = np.inf
    net = MODELS[model](SIZES, seed=0)
    fit_refused(net, r"(?is)\bX\b.*NaN or Inf.*\(123, 1\)",
            lambda: net.fit(X, Y, epochs=2, batch_size=10, shuffle=True, seed=4))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("where", ["X", "Y"])
def test_fit_checks_validation_rows_before_training(model, where):
    """validation_fraction's rows are not in the training epochs: they are checked before
    any step, and named by their index in the X and Y given."""
    X, Y = fit_data()
    (X if where == "X" else Y)[FIT_ROWS - 3, 0] = np.nan  # in the last 10%
    net = MODELS[model](SIZES, seed=0)
    fit_refused(net, rf"(?is)\b{where}\b.*NaN or Inf.*\({FIT_ROWS - 3}, 0\)",
            lambda: net.fit(X, Y, epochs=2, batch_size=10, validation_fraction=0.1))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("seed, error", [("abc", TypeError), (-1, ValueError), (1.5, TypeError)])
def test_fit_refuses_a_bad_seed_whether_or_not_it_shuffles(model, shuffle, seed, error):
    """Without shuffling or dropout fit draws nothing, and makes no generator, but a seed
    that np.random.default_rng refuses is still refused, before any step."""
    X, Y = fit_data()
    net = MODELS[model](SIZES, seed=0)
    weights, biases = snapshot(net)
    with pytest.raises(error):
        net.fit(X, Y, epochs=1, batch_size=10, shuffle=shuffle, seed=seed)
    assert_same_list(net.weights, weights, scale=0)
    assert_same_list(net.biases, biases, scale=0)
