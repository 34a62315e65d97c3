"""Pure NumPy reference of deltaprop: Nielsen's chapter 2, one equation per line.

Rows are samples. Layer l = 1..L has W_l of shape (n_l, n_{l-1}) and b_l of shape (n_l,);
Python lists are 0-based (weights[0] is W_1). For a batch of m rows:

    Z_l = A_{l-1} @ W_l.T + b_l,   A_l = f_l(Z_l),   A_0 = X             (forward)
    BP1  D_L = dC/dA_L (.) f_L'(Z_L)   (exact fused forms for sigmoid + binary_crossentropy
         and softmax + categorical_crossentropy: D_L = A_L - Y)
    BP2  D_l = (D_{l+1} @ W_{l+1}) (.) f_l'(Z_l)
    BP3  grad_b_l = (1/m) * sum over rows of D_l
    BP4  grad_W_l = (1/m) * D_l.T @ A_{l-1}

This module imports no native code: it is what the native core is checked against.
Every function keeps the dtype of its array arguments (float32 stays float32).
"""

import time

import numpy as np

from ._names import CLASSIFICATION_LOSSES, LEAKY_RELU_SLOPE, REQUIRED_OUTPUT, default_output
from ._results import History, Trace
from ._validation import (
    as_input,
    as_labels,
    as_parameter_list,
    as_targets,
    check_activation,
    check_finite_scalar,
    check_loss,
    check_loss_pairing,
    check_positive_int,
    check_sizes,
    is_label_vector,
    resolve_dtype,
)
from .initializers import draw_network

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "LOSS_FUNCTIONS",
    "Network",
    "binary_crossentropy",
    "categorical_crossentropy",
    "identity",
    "identity_prime",
    "leaky_relu",
    "leaky_relu_prime",
    "logsumexp",
    "output_error",
    "quadratic",
    "quadratic_gradient",
    "relu",
    "relu_prime",
    "sigmoid",
    "sigmoid_prime",
    "softmax",
    "softmax_jvp",
    "tanh",
    "tanh_prime",
]

# ---- activations: f(z) next to f'(z); z is an ndarray, rows are samples ---------------------


def identity(z):
    return z.copy()


def identity_prime(z):
    return np.ones_like(z)


def sigmoid(z):
    e = np.exp(-np.abs(z))  # in (0, 1]: cannot overflow
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_prime(z):
    a = sigmoid(z)
    return a * (1 - a)


def tanh(z):
    return np.tanh(z)


def tanh_prime(z):
    return 1 - np.tanh(z) ** 2


def relu(z):
    return np.maximum(z, 0)


def relu_prime(z):
    return (z > 0).astype(z.dtype)


def leaky_relu(z):
    return np.where(z > 0, z, LEAKY_RELU_SLOPE * z)


def leaky_relu_prime(z):
    return np.where(z > 0, 1, LEAKY_RELU_SLOPE).astype(z.dtype)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # largest exponent is 0: cannot overflow
    return e / e.sum(axis=-1, keepdims=True)


def softmax_jvp(a, g):
    """Row-wise J(z)^T g for a = softmax(z): a (.) (g - sum_j g_j a_j).

    Softmax has no elementwise f'; this product takes the place of g (.) f'(z) in BP1.
    """
    return a * (g - np.sum(g * a, axis=-1, keepdims=True))


# name -> (f, f'); softmax is output-only and enters BP1 through softmax_jvp.
ACTIVATION_FUNCTIONS = {
    "identity": (identity, identity_prime),
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "leaky_relu": (leaky_relu, leaky_relu_prime),
    "softmax": (softmax, None),
}

# ---- losses: C(Z, A, Y) averaged over the m rows, next to the output error (BP1) -----------


def logsumexp(z):
    top = z.max(axis=-1, keepdims=True)
    return top + np.log(np.sum(np.exp(z - top), axis=-1, keepdims=True))


def quadratic(Z, A, Y):
    """C = 1/2 sum_j (a_j - y_j)^2."""
    return 0.5 * np.sum((A - Y) ** 2) / A.shape[0]


def quadratic_gradient(A, Y):
    """dC/dA for the quadratic cost."""
    return A - Y


def binary_crossentropy(Z, A, Y):
    """C = -sum_j [y ln a + (1-y) ln(1-a)] with a = sigmoid(z), computed from Z."""
    return np.sum(np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z)))) / Z.shape[0]


def categorical_crossentropy(Z, A, Y):
    """C = -sum_j y_j ln a_j with a = softmax(z), computed from Z."""
    return np.sum(Y * (logsumexp(Z) - Z)) / Z.shape[0]


LOSS_FUNCTIONS = {
    "quadratic": quadratic,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
}


def output_error(Z, A, Y, activation, loss):
    """BP1: the per-sample output delta D_L of shape (m, n_L), not divided by m."""
    check_loss_pairing(activation, loss)
    if REQUIRED_OUTPUT.get(loss) == activation:
        return A - Y  # BP1, fused (sigmoid + binary, softmax + categorical cross-entropy)
    G = quadratic_gradient(A, Y)  # dC/dA
    if activation == "softmax":
        return softmax_jvp(A, G)  # BP1 through the softmax Jacobian
    return G * ACTIVATION_FUNCTIONS[activation][1](Z)  # BP1: D_L = dC/dA (.) f'(Z_L)


def _classes(A):
    """Predicted class per row: argmax, or a > 0.5 for a single output."""
    return (A[:, 0] > 0.5).astype(np.int64) if A.shape[1] == 1 else np.argmax(A, axis=1)


def _copy_into(targets, values):
    for target, value in zip(targets, values):
        target[...] = value


def _one_sample(v, name):
    """A vector of shape (n,) or (n, 1) as one row of shape (1, n)."""
    v = np.asarray(v)
    if v.ndim == 1 or (v.ndim == 2 and v.shape[1] == 1):
        return v.reshape(1, -1)
    raise ValueError(f"{name} must be one sample of shape (n,) or (n, 1); got shape {v.shape}")


class Network:
    """Pure NumPy twin of ``deltaprop.Network``: same constructor, methods and results.

    sizes : list of layer widths [n_0, ..., n_L]
    activation : hidden activation; output : output activation (None: 'softmax' for
        categorical_crossentropy, 'sigmoid' for binary_crossentropy, else ``activation``)
    """

    def __init__(self, sizes, activation="sigmoid", output=None, loss="quadratic",
                 dtype="float64", seed=None, init=None):
        sizes = check_sizes(sizes)
        check_activation(activation, output_layer=len(sizes) == 2)
        output = default_output(check_loss(loss), activation) if output is None else output
        self._set_architecture(sizes, [activation] * (len(sizes) - 2) + [output], loss, dtype)
        self.weights, self.biases = draw_network(
            self.sizes, self.activations, init, self.dtype, seed
        )

    @classmethod
    def from_network(cls, net):
        """A reference copy of the architecture and parameters of ``net`` (e.g. a native one)."""
        copy = cls.__new__(cls)
        activations = [layer.activation for layer in net.layers]
        copy._set_architecture(check_sizes(net.sizes), activations, net.loss_name, net.dtype)
        copy.weights, copy.biases = net.weights, net.biases
        return copy

    def _set_architecture(self, sizes, activations, loss, dtype):
        if len(activations) != len(sizes) - 1:
            raise ValueError(
                f"need one activation per layer ({len(sizes) - 1}); got {len(activations)}"
            )
        self.sizes = list(sizes)
        self.n_layers = len(sizes) - 1
        self.activations = [
            check_activation(name, output_layer=index == self.n_layers - 1)
            for index, name in enumerate(activations)
        ]
        self.loss_name = check_loss(loss)
        check_loss_pairing(self.activations[-1], self.loss_name)
        self.dtype = resolve_dtype(dtype)
        self._weights = [np.zeros((n_out, n_in), self.dtype) for n_in, n_out in self._shapes()]
        self._biases = [np.zeros(n_out, self.dtype) for _, n_out in self._shapes()]

    def _shapes(self):
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def __repr__(self):
        return (
            f"reference.Network(sizes={self.sizes}, activations={self.activations}, "
            f"loss={self.loss_name!r}, dtype='{self.dtype.name}')"
        )

    # ---- parameters: lists of arrays; assignment validates and copies into place ----------

    @property
    def weights(self):
        return list(self._weights)

    @weights.setter
    def weights(self, values):
        shapes = [(n_out, n_in) for n_in, n_out in self._shapes()]
        _copy_into(self._weights, as_parameter_list(values, shapes, self.dtype, "weights"))

    @property
    def biases(self):
        return list(self._biases)

    @biases.setter
    def biases(self, values):
        shapes = [(n_out,) for _, n_out in self._shapes()]
        _copy_into(self._biases, as_parameter_list(values, shapes, self.dtype, "biases"))

    # ---- the equations ------------------------------------------------------------------

    def _forward(self, X):
        zs, activations = [], [X]
        for W, b, name in zip(self._weights, self._biases, self.activations):
            zs.append(activations[-1] @ W.T + b)  # Z_l = A_{l-1} W_l^T + b_l
            activations.append(ACTIVATION_FUNCTIONS[name][0](zs[-1]))  # A_l = f_l(Z_l)
        return zs, activations

    def _cost(self, Z, A, Y):
        return float(LOSS_FUNCTIONS[self.loss_name](Z, A, Y))

    def _trace(self, X, Y):
        m = X.shape[0]
        zs, activations = self._forward(X)
        D_L = output_error(zs[-1], activations[-1], Y, self.activations[-1], self.loss_name)  # BP1
        deltas = [D_L]
        for l in range(self.n_layers - 2, -1, -1):
            f_prime = ACTIVATION_FUNCTIONS[self.activations[l]][1]
            deltas.insert(0, (deltas[0] @ self._weights[l + 1]) * f_prime(zs[l]))  # BP2
        grad_b = [D.sum(axis=0) / m for D in deltas]  # BP3
        grad_w = [D.T @ A_prev / m for D, A_prev in zip(deltas, activations[:-1])]  # BP4
        loss = self._cost(zs[-1], activations[-1], Y)
        return Trace(zs, activations, deltas, grad_b, grad_w, loss)

    def _step(self, X, Y, learning_rate):
        """One SGD step on the batch; returns the trace of the batch before the step."""
        trace = self._trace(X, Y)
        for W, b, grad_w, grad_b in zip(self._weights, self._biases, trace.grad_w, trace.grad_b):
            W -= learning_rate * grad_w  # W_l <- W_l - eta grad_W_l
            b -= learning_rate * grad_b  # b_l <- b_l - eta grad_b_l
        return trace

    # ---- public API ---------------------------------------------------------------------

    def _convert(self, X, Y):
        X = as_input(X, self.sizes[0], self.dtype)
        return X, as_targets(Y, X.shape[0], self.sizes[-1], self.dtype)

    def predict(self, X):
        """Output activations A_L, ndarray of shape (m, n_L), for X of shape (m, n_0)."""
        return self._forward(as_input(X, self.sizes[0], self.dtype))[1][-1]

    def trace(self, X, Y):
        """Every intermediate of one forward and backward pass (a ``Trace``)."""
        return self._trace(*self._convert(X, Y))

    def backprop(self, X, Y):
        """(grad_b, grad_w): per-layer gradients of the mean cost over the rows of X."""
        trace = self.trace(X, Y)
        return trace.grad_b, trace.grad_w

    def loss(self, X, Y):
        """C, the mean over rows of the per-sample cost (a float)."""
        X, Y = self._convert(X, Y)
        zs, activations = self._forward(X)
        return self._cost(zs[-1], activations[-1], Y)

    def step(self, X, Y, learning_rate):
        """One SGD step on the batch (X, Y); returns the batch loss before the step."""
        learning_rate = check_finite_scalar(learning_rate, "learning_rate", positive=True)
        return self._step(*self._convert(X, Y), learning_rate).loss

    def _is_classification(self, y):
        return is_label_vector(y) or self.loss_name in CLASSIFICATION_LOSSES

    def _labels(self, y, n_rows):
        """Class labels from integer labels, or from a target matrix (its predicted class)."""
        if is_label_vector(y):
            return as_labels(y, n_rows, self.sizes[-1])
        return _classes(as_targets(y, n_rows, self.sizes[-1], self.dtype))

    def _accuracy(self, X, labels):
        return float(np.mean(_classes(self._forward(X)[1][-1]) == labels))

    def evaluate(self, X, y):
        """Accuracy for classification (integer labels or a cross-entropy loss), else the loss."""
        X = as_input(X, self.sizes[0], self.dtype)
        if not self._is_classification(y):
            return self.loss(X, y)
        return self._accuracy(X, self._labels(y, X.shape[0]))

    def fit(self, X, Y, epochs=30, batch_size=10, learning_rate=3.0, shuffle=True, seed=0,
            validation_data=None, verbose=False):
        """Mini-batch SGD; returns a ``History`` with one entry per epoch.

        Each epoch visits the rows in the order ``rng.permutation(n)`` (``arange(n)`` if not
        shuffle), rng = np.random.default_rng(seed) created once per call; consecutive
        chunks of batch_size rows are the mini-batches, the last one possibly smaller.
        The epoch's loss and accuracy are measured on each mini-batch just before its step.
        """
        X, targets = self._convert(X, Y)
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        learning_rate = check_finite_scalar(learning_rate, "learning_rate", positive=True)
        classification = self._is_classification(Y)
        labels = self._labels(Y, X.shape[0]) if classification else None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, y_val)")
            X_val, y_val = validation_data
        rng = np.random.default_rng(seed)
        history = History()
        n = X.shape[0]
        for epoch in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(n) if shuffle else np.arange(n)
            total_loss, correct = 0.0, 0
            for begin in range(0, n, batch_size):
                rows = order[begin:begin + batch_size]
                trace = self._step(X[rows], targets[rows], learning_rate)
                total_loss += trace.loss * len(rows)
                if classification:
                    correct += int(np.sum(_classes(trace.activations[-1]) == labels[rows]))
            seconds = time.perf_counter() - start
            history.loss.append(total_loss / n)
            history.accuracy.append(correct / n if classification else None)
            history.seconds.append(seconds)
            history.samples_per_second.append(n / seconds if seconds > 0 else float("inf"))
            if validation_data is not None:
                history.val_loss.append(self.loss(X_val, y_val))
                history.val_accuracy.append(
                    self.evaluate(X_val, y_val) if self._is_classification(y_val) else None
                )
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: loss {history.loss[-1]:.6g}"
                      + (f", accuracy {history.accuracy[-1]:.4f}" if classification else "")
                      + (f", val_loss {history.val_loss[-1]:.6g}" if history.val_loss else ""))
        return history

    def backprop_sample(self, x, y):
        """Nielsen's network.py ``backprop`` for one sample, with column vectors.

        x : array of shape (n_0,) or (n_0, 1)
        y : target of shape (n_L,) or (n_L, 1), or an integer class label
        Returns (nabla_b, nabla_w): nabla_b[l] of shape (n_l,), nabla_w[l] of shape (n_l, n_{l-1}).
        """
        x = as_input(_one_sample(x, "x"), self.sizes[0], self.dtype, "x").T
        y = np.reshape(y, 1) if np.ndim(y) == 0 else _one_sample(y, "y")
        y = as_targets(y, 1, self.sizes[-1], self.dtype, "y").T
        activation = x
        activations = [x]
        zs = []
        for b, w, name in zip(self._biases, self._weights, self.activations):
            z = np.dot(w, activation) + b[:, None]  # z = w a + b
            zs.append(z)
            activation = ACTIVATION_FUNCTIONS[name][0](z.T).T  # the functions act on rows
            activations.append(activation)
        nabla_b = [None] * self.n_layers
        nabla_w = [None] * self.n_layers
        output, loss = self.activations[-1], self.loss_name
        delta = output_error(zs[-1].T, activations[-1].T, y.T, output, loss).T  # BP1
        nabla_b[-1] = delta[:, 0]  # BP3
        nabla_w[-1] = np.dot(delta, activations[-2].T)  # BP4
        for l in range(2, self.n_layers + 1):
            sp = ACTIVATION_FUNCTIONS[self.activations[-l]][1](zs[-l])
            delta = np.dot(self._weights[-l + 1].T, delta) * sp  # BP2
            nabla_b[-l] = delta[:, 0]  # BP3
            nabla_w[-l] = np.dot(delta, activations[-l - 1].T)  # BP4
        return nabla_b, nabla_w
