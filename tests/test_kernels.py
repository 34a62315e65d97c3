"""The Cython per-layer kernels, through dp.Layer, against the reference equations.

Shapes are deliberately awkward: 1x1, 1xn, nx1, primes; batches of 1 and batches larger
than the layer widths.
"""

import warnings

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import reference

from helpers import (
    error_on_warnings,
    assert_same_scalar,
    DTYPES,
    HIDDEN_ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    assert_same,
    assert_same_list,
    make_targets,
)

LAYER_SHAPES = [(1, 1), (1, 5), (5, 1), (13, 7), (31, 17), (3, 2)]  # (n_in, n_out)
BATCHES = [1, 3, 40]  # 40 > every width above


def shape_id(shape):
    return f"{shape[0]}x{shape[1]}"


def make_layer(n_in, n_out, activation, dtype, seed=0):
    layer = dp.Layer(n_in, n_out, activation, dtype=dtype, seed=seed)
    assert (layer.n_in, layer.n_out, layer.activation) == (n_in, n_out, activation)
    assert np.dtype(layer.dtype) == dtype
    assert layer.weights.shape == (n_out, n_in) and layer.weights.dtype == dtype
    assert layer.biases.shape == (n_out,) and layer.biases.dtype == dtype
    # Give the biases some spread (he init leaves them at zero).
    rng = np.random.default_rng(seed + 100)
    layer.biases = rng.uniform(-1, 1, n_out).astype(dtype)
    return layer


def inputs(m, n, dtype, seed=1, scale=2.0):
    return np.random.default_rng(seed).uniform(-scale, scale, (m, n)).astype(dtype)


def ref_forward(layer, A_prev):
    Z = A_prev @ layer.weights.T + layer.biases  # Z = A_prev W^T + b
    return Z, reference.ACTIVATION_FUNCTIONS[layer.activation][0](Z)


def test_layer_initialization_follows_spec():
    rng = np.random.default_rng(4)
    layer = dp.Layer(6, 3, "sigmoid", seed=4)
    assert_same(layer.weights, rng.standard_normal((3, 6)) / np.sqrt(6), np.float64, scale=0)
    assert_same(layer.biases, rng.standard_normal(3), np.float64, scale=0)
    layer = dp.Layer(6, 3, "relu", seed=4, dtype="float32")
    rng = np.random.default_rng(4)
    expected = (rng.standard_normal((3, 6)) * np.sqrt(2 / 6)).astype(np.float32)
    assert_same(layer.weights, expected, np.float32, scale=0)
    assert_same(layer.biases, np.zeros(3, np.float32), np.float32, scale=0)


@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", OUTPUT_ACTIVATIONS)
def test_forward(activation, dtype, shape, m, product_path):
    layer = make_layer(*shape, activation, dtype)
    A_prev = inputs(m, shape[0], dtype)
    Z, A = layer.forward(A_prev)
    Z_ref, A_ref = ref_forward(layer, A_prev)
    assert_same(Z, Z_ref, dtype)
    assert_same(A, A_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forward_every_register_block(dtype, product_path):
    # The small-batch forward kernel works in blocks of up to 5 x 5 (rows x outputs) whose
    # vector accumulators are summed lane by lane together, in groups; every count of rows and
    # outputs up to two blocks and a remainder, over inputs of whole vectors plus a ragged end
    # (35 inputs: 2 x 16 + 3 floats and 4 x 8 + 3 doubles with AVX-512, 4 x 8 + 3 and 8 x 4 + 3
    # with AVX2, 8 x 4 + 3 and 17 x 2 + 1 in the baseline), so a sum written to the wrong
    # output shows.
    for n_out in range(1, 12):
        layer = make_layer(35, n_out, "identity", dtype, seed=n_out)
        for m in range(1, 13):
            A_prev = inputs(m, 35, dtype, seed=m)
            Z, _ = layer.forward(A_prev)
            assert_same(Z, ref_forward(layer, A_prev)[0], dtype)


SENTINEL = 0xA5  # the bytes around an at_phase copy


def at_phase(array, phase, with_buffer=False):
    """A C-contiguous copy of ``array`` whose data starts ``phase`` bytes past a 64-byte
    boundary (NumPy itself promises only 16), amid SENTINEL bytes; with_buffer: also the
    whole buffer and the copy's byte range in it."""
    buffer = np.full(array.nbytes + 192, SENTINEL, np.uint8)
    start = (-buffer.ctypes.data) % 64 + 64 + phase
    placed = buffer[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    placed[...] = array
    assert placed.ctypes.data % 64 == phase
    return (placed, buffer, start, start + array.nbytes) if with_buffer else placed


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_products_of_rows_off_a_cache_line(dtype, product_path):
    # When X's rows and W's start at the same offset past a 64-byte boundary and are whole
    # vectors long, the AVX-512 kernels read them as aligned vectors, the first and last
    # masked (a row of 64 floats spans 5 lines then, not 4, and each vector is split across
    # two lines unless so read). The forward product's accumulators then hold their lanes
    # rotated, and are put back before their sums: Z and the SGD-updated W must be the same
    # bit for bit as from aligned copies, at every offset, for blocks of every size (m and
    # n_out up to two blocks and a remainder), and right against the reference.
    from deltaprop import _kernels

    itemsize = np.dtype(dtype).itemsize
    code = dp._names.ACTIVATION_CODES["identity"]
    # 1, 4 and 8 vectors of floats; 2, 8 and 16 of doubles, and 8 doubles: one vector
    for n_in in (16, 64, 128) if dtype == np.float32 else (8, 16, 64, 128):
        for m, n_out in [(1, 1), (3, 11), (10, 7), (12, 10), (32, 5)]:
            rng = np.random.default_rng(n_in + m + n_out)
            A_prev = rng.uniform(-2, 2, (m, n_in)).astype(dtype)
            W = rng.uniform(-1, 1, (n_out, n_in)).astype(dtype)
            b = rng.uniform(-1, 1, n_out).astype(dtype)
            D = rng.uniform(-1, 1, (m, n_out)).astype(dtype)
            expected = {}
            for phase in range(0, 64, itemsize):
                A_at, W_at = at_phase(A_prev, phase), at_phase(W, phase)
                Z, A = np.empty((m, n_out), dtype), np.empty((m, n_out), dtype)
                _kernels.forward(code, A_at, W_at, b, Z, A)
                steps = {}
                for beta in (0.0, 1.0, 0.5):
                    G, buffer, begin, end = at_phase(W, phase, with_buffer=True)
                    _kernels.weight_gradient(D, A_at, -0.3, beta, G)
                    steps[beta] = G
                    # the masked stores leave the bytes before G's first row and after its
                    # last alone
                    assert np.all(buffer[:begin] == SENTINEL) and np.all(buffer[end:] == SENTINEL)
                if phase > 0:  # X and W at different offsets: read as they lie
                    W_apart = at_phase(W, (phase + 16) % 64)
                    Z_apart = np.empty((m, n_out), dtype)
                    _kernels.forward(code, A_at, W_apart, b, Z_apart, np.empty_like(Z_apart))
                    assert_same(Z_apart, A_prev @ W.T + b, dtype)
                if phase == 0:
                    assert_same(Z, A_prev @ W.T + b, dtype)
                    for beta, G in steps.items():
                        assert_same(G, (-0.3 * (D.T @ A_prev) + beta * W).astype(dtype), dtype)
                    expected = {"Z": Z, **steps}
                    continue
                where = f"{phase} bytes past a line, m={m}, n_out={n_out}, n_in={n_in}"
                np.testing.assert_array_equal(Z, expected["Z"], err_msg=f"Z, {where}")
                for beta, G in steps.items():
                    np.testing.assert_array_equal(G, expected[beta],
                                                  err_msg=f"W, beta={beta}, {where}")
                np.testing.assert_array_equal(A_at, A_prev)  # read only


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", OUTPUT_ACTIVATIONS)
def test_forward_extreme_z_is_finite(activation, dtype):
    """|z| up to 1e4: no overflow, no NaN."""
    layer = make_layer(1, 4, activation, dtype)
    layer.weights = np.array([[1.0], [-1.0], [0.5], [-0.25]], dtype=dtype)
    layer.biases = np.zeros(4, dtype)
    A_prev = np.array([[1e4], [-1e4], [0.0], [3e3]], dtype=dtype)
    with warnings.catch_warnings():
        error_on_warnings()
        Z, A = layer.forward(A_prev)
        Z_ref, A_ref = ref_forward(layer, A_prev)
    assert np.isfinite(A).all()
    assert_same(Z, Z_ref, dtype)
    assert_same(A, A_ref, dtype)


# sigmoid and tanh are computed by the core's own vectorized e^x (csrc/deltaprop/vmath.hpp):
# within 3 ulp of the exact values everywhere (ulp: of the result, in its dtype).
ACTIVATION_GRID = np.concatenate([
    np.linspace(-60, 60, 120_001),           # every regime, steps of 0.001
    np.linspace(-1e-6, 1e-6, 2001),          # tanh's series branch near 0
    # tanh's e^-2|z| - 1 changes method at |z| = 3/8, and changed at 1/4 where the direct
    # difference cost 3.02 ulp at z = 0.2547998494265728: both, in steps of 1e-6
    np.linspace(0.24, 0.39, 150_001), np.linspace(-0.39, -0.24, 150_001),
    [0.2547998494265728, -0.2547998494265728],
    [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 0.25, -0.25, 700.0, -700.0],
    # just above the underflow cut-offs: the results are still normal numbers
    [-708.39, -708.2, -708.0, -87.33, -87.2, -87.0],
])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_vectorized_activation_accuracy(activation, dtype, product_path):
    z = ACTIVATION_GRID.astype(dtype)
    layer = dp.Layer(1, 1, activation, dtype=dtype, seed=0)
    layer.weights = np.ones((1, 1), dtype)
    layer.biases = np.zeros(1, dtype)
    Z, A = layer.forward(z[:, None])
    assert_same(Z[:, 0], z, dtype, scale=0)
    exact_z = z.astype(np.longdouble)
    exact = np.tanh(exact_z) if activation == "tanh" else 1 / (1 + np.exp(-exact_z))
    ulp = np.spacing(exact.astype(dtype))
    error_in_ulp = np.abs(A[:, 0] - exact) / np.abs(ulp)
    assert error_in_ulp.max() <= 3.0, (activation, z[np.argmax(error_in_ulp)], error_in_ulp.max())
    assert np.isfinite(A).all()


def test_vectorized_activation_extremes():
    net_layer = dp.Layer(1, 1, "sigmoid", dtype=np.float64, seed=0)
    net_layer.weights = np.ones((1, 1))
    net_layer.biases = np.zeros(1)
    _, A = net_layer.forward(np.array([[-1000.0], [1000.0], [-708.5]]))
    # below the smallest normal number the result is 0 (documented in vmath.hpp)
    assert A[0, 0] == 0.0 and A[1, 0] == 1.0 and 0.0 <= A[2, 0] < 1e-307


OUTPUT_PAIRS = (
    [(activation, "quadratic") for activation in OUTPUT_ACTIVATIONS]
    + [("sigmoid", "binary_crossentropy"), ("softmax", "categorical_crossentropy")]
)


@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation, loss", OUTPUT_PAIRS)
def test_output_error(activation, loss, dtype, shape, m):
    layer = make_layer(*shape, activation, dtype)
    A_prev = inputs(m, shape[0], dtype)
    Z, A = layer.forward(A_prev)
    Y = make_targets(np.random.default_rng(m), loss, m, shape[1], dtype)
    D = layer.output_error(Z, A, Y, loss)
    assert_same(D, reference.output_error(Z, A, Y, activation, loss), dtype)


@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation, loss", OUTPUT_PAIRS)
def test_layer_loss(activation, loss, dtype, m):
    layer = make_layer(7, 3, activation, dtype)
    Z, A = layer.forward(inputs(m, 7, dtype))
    Y = make_targets(np.random.default_rng(m), loss, m, 3, dtype)
    expected = reference.LOSS_FUNCTIONS[loss](Z, A, Y)
    assert_same_scalar(layer.loss(Z, A, Y, loss), float(expected), dtype)


# softmax and the cross-entropy run e^(z - max z) through the vectorized exp: softmax over
# the whole batch at once, the loss over blocks of 256 values (as many whole rows as fit, or
# one row a block at a time when it is longer). Batches that cross those blocks, rows longer
# than one and than two blocks, and logits far apart, whose smaller exps underflow to 0.
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m, n_out", [(200, 3), (64, 10), (3, 300), (2, 1000), (1, 256), (9, 257)])
def test_softmax_crossentropy_in_blocks(dtype, m, n_out, product_path):
    rng = np.random.default_rng(n_out)
    layer = make_layer(5, n_out, "softmax", dtype)
    Z, A = layer.forward(inputs(m, 5, dtype))
    assert_same(A, ref_forward(layer, inputs(m, 5, dtype))[1], dtype)
    assert_same(A.sum(axis=1), np.ones(m, dtype), dtype)
    Y = make_targets(rng, "categorical_crossentropy", m, n_out, dtype)
    cce = reference.LOSS_FUNCTIONS["categorical_crossentropy"]
    assert_same_scalar(layer.loss(Z, A, Y, "categorical_crossentropy"), float(cce(Z, A, Y)), dtype)
    # logits spread over +-200: most e^(z - max z) underflow, the cost stays exact
    Z_far = rng.uniform(-200, 200, (m, n_out)).astype(dtype)
    A_far = reference.ACTIVATION_FUNCTIONS["softmax"][0](Z_far)
    expected = float(cce(Z_far.astype(np.float64), A_far.astype(np.float64), Y.astype(np.float64)))
    assert_same_scalar(layer.loss(Z_far, A_far, Y, "categorical_crossentropy"), expected, dtype)


@pytest.mark.parametrize(
    "activation, loss",
    [("identity", "binary_crossentropy"), ("softmax", "binary_crossentropy"),
     ("sigmoid", "categorical_crossentropy"), ("relu", "categorical_crossentropy")],
)
def test_output_error_refuses_invalid_pairing(activation, loss):
    layer = make_layer(3, 2, activation, np.dtype(np.float64))
    Z, A = layer.forward(inputs(4, 3, np.float64))
    Y = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match=rf"(?is){loss}.*{activation}"):
        layer.output_error(Z, A, Y, loss)


@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("n_next", [1, 3])
def test_delta(activation, dtype, shape, m, n_next, product_path):
    layer = make_layer(*shape, activation, dtype)
    A_prev = inputs(m, shape[0], dtype)
    Z, A = layer.forward(A_prev)
    rng = np.random.default_rng(9)
    W_next = rng.standard_normal((n_next, shape[1])).astype(dtype)
    D_next = rng.standard_normal((m, n_next)).astype(dtype)
    D = layer.delta(D_next, W_next, Z, A)
    f_prime = reference.ACTIVATION_FUNCTIONS[activation][1]
    assert_same(D, (D_next @ W_next) * f_prime(Z), dtype)  # BP2


def test_delta_refuses_softmax():
    layer = make_layer(3, 2, "softmax", np.dtype(np.float64))
    Z, A = layer.forward(inputs(4, 3, np.float64))
    with pytest.raises(ValueError, match=r"(?is)softmax.*output layer"):
        layer.delta(np.ones((4, 5)), np.ones((5, 2)), Z, A)


@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gradients(dtype, shape, m, product_path):
    layer = make_layer(*shape, "tanh", dtype)
    A_prev = inputs(m, shape[0], dtype)
    D = inputs(m, shape[1], dtype, seed=5)
    grad_b, grad_w = layer.gradients(D, A_prev)
    assert_same(grad_b, D.sum(axis=0) / m, dtype)  # BP3
    assert_same(grad_w, D.T @ A_prev / m, dtype)  # BP4


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_weight_gradient_beta(dtype, beta, product_path):
    """G = scale D^T A + beta G, as the BLAS defines it: beta = 0 ignores what G held (NaN
    included), so a caller may pass an uninitialised G."""
    from deltaprop import _kernels

    m, n_in, n_out = 7, 37, 9  # whole vectors and a ragged rest in every kernel set
    A_prev = inputs(m, n_in, dtype)
    D = inputs(m, n_out, dtype, seed=5)
    G0 = np.full((n_out, n_in), np.nan if beta == 0 else 0.25, dtype)
    G = G0.copy()
    _kernels.weight_gradient(D, A_prev, -0.3, beta, G)
    expected = -0.3 * (D.T @ A_prev) + (beta * G0 if beta else 0)
    assert_same(G, expected.astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "sizes, hidden, output, loss",
    [
        ([1, 1], "sigmoid", "sigmoid", "quadratic"),
        ([1, 5], "tanh", "softmax", "categorical_crossentropy"),
        ([5, 1], "relu", "sigmoid", "binary_crossentropy"),
        ([13, 7, 3], "leaky_relu", "identity", "quadratic"),
        ([31, 17, 11, 2], "tanh", "softmax", "quadratic"),
    ],
)
@pytest.mark.parametrize("m", [1, 40])
def test_layers_chained_reproduce_network(sizes, hidden, output, loss, dtype, m):
    """Layer kernels, chained by hand, give the network's predict, trace and backprop."""
    net = dp.Network(sizes, activation=hidden, output=output, loss=loss, dtype=dtype, seed=3)
    X = inputs(m, sizes[0], dtype)
    Y = make_targets(np.random.default_rng(2), loss, m, sizes[-1], dtype)
    zs, activations = [], [X]
    for layer in net.layers:
        Z, A = layer.forward(activations[-1])
        zs.append(Z)
        activations.append(A)
    assert_same(activations[-1], net.predict(X), dtype)

    layers = net.layers
    deltas = [layers[-1].output_error(zs[-1], activations[-1], Y, loss)]  # BP1
    for l in range(len(layers) - 2, -1, -1):
        deltas.insert(0, layers[l].delta(deltas[0], layers[l + 1].weights, zs[l], activations[l + 1]))
    grads = [layer.gradients(D, A_prev) for layer, D, A_prev in zip(layers, deltas, activations)]

    t = net.trace(X, Y)
    assert_same_list(zs, t.zs, dtype)
    assert_same_list(activations, t.activations, dtype)
    assert_same_list(deltas, t.deltas, dtype)
    assert_same_list([g[0] for g in grads], t.grad_b, dtype)
    assert_same_list([g[1] for g in grads], t.grad_w, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_weights_share_memory_with_network(dtype):
    net = dp.Network([4, 6, 5, 3], activation="tanh", dtype=dtype, seed=0)
    for i, layer in enumerate(net.layers):
        assert np.shares_memory(layer.weights, net.weights[i])
        assert np.shares_memory(layer.biases, net.biases[i])

        # writing through the network's list is seen by the layer ...
        net.weights[i][0, 0] = 7.5
        net.biases[i][-1] = -2.25
        assert layer.weights[0, 0] == 7.5 and layer.biases[-1] == -2.25
        # ... and writing through the layer is seen by the network
        layer.weights[-1, -1] = 1.25
        layer.biases[0] = 0.5
        assert net.weights[i][-1, -1] == 1.25 and net.biases[i][0] == 0.5

    # assignment copies into place on either side
    new_w = [np.full(w.shape, 0.125 * (i + 1), dtype) for i, w in enumerate(net.weights)]
    net.weights = new_w
    for layer, w in zip(net.layers, new_w):
        assert_same(layer.weights, w, dtype, scale=0)
    new_b = np.arange(6, dtype=dtype)
    net.layers[0].biases = new_b
    assert_same(net.biases[0], new_b, dtype, scale=0)
    new_b[0] = 99  # copied, not aliased
    assert net.biases[0][0] == 0

    # a training step through the network moves the layers' parameters
    before = net.layers[1].weights.copy()
    X = inputs(8, 4, dtype)
    Y = inputs(8, 3, dtype, seed=2)
    net.step(X, Y, 0.5)
    assert not np.array_equal(net.layers[1].weights, before)
    assert_same_list([layer.weights for layer in net.layers], net.weights, dtype, scale=0)
    # and the layer's forward uses the network's current parameters
    assert_same(net.layers[0].forward(X)[1], reference.tanh(X @ net.weights[0].T + net.biases[0]),
                dtype)
