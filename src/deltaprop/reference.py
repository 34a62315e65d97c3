"""Pure NumPy reference of deltaprop: Nielsen's chapter 2, one equation per line.

Rows are samples. Layer l = 1..L has W_l of shape (n_l, n_{l-1}) and b_l of shape (n_l,);
Python lists are 0-based (weights[0] is W_1). For a batch of m rows:

    Z_l = A_{l-1} @ W_l.T + b_l,   A_l = f_l(Z_l),   A_0 = X             (forward)
    BP1  D_L = dC/dA_L (.) f_L'(Z_L)   (exact fused forms for sigmoid + binary_crossentropy
         and softmax + categorical_crossentropy: D_L = A_L - Y)
    BP2  D_l = (D_{l+1} @ W_{l+1}) (.) f_l'(Z_l)
    BP3  grad_b_l = (1/m) * sum over rows of D_l
    BP4  grad_W_l = (1/m) * D_l.T @ A_{l-1}

Inside ``fit`` a training step adds dropout (a hidden layer passes on H_l = A_l (.) M_l, which
the next layer and BP4 use in place of A_l, and BP2 gains a factor M_l), gradient clipping,
L2/L1 regularization, decoupled weight decay and an optimizer update: ``Network._train_step``.

This module imports no native code: it is what the native core is checked against.
Every function keeps the dtype of its array arguments (float32 stays float32).
"""

import numpy as np

from . import _training
from ._names import CLASSIFICATION_LOSSES, LEAKY_RELU_SLOPE, REQUIRED_OUTPUT, default_output
from ._results import Trace
from ._validation import (
    as_input,
    as_labels,
    as_parameter_list,
    as_targets,
    check_activation,
    check_finite_array,
    check_finite_scalar,
    check_loss,
    check_loss_pairing,
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
    "dropout_mask",
    "dropout_uniforms",
    "elu",
    "elu_prime",
    "huber",
    "huber_gradient",
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
    "softplus",
    "softplus_prime",
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


def elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))  # alpha = 1; exp never overflows


def elu_prime(z):
    return np.where(z > 0, 1, np.exp(np.minimum(z, 0))).astype(z.dtype)  # e^z = elu(z) + 1


def softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))  # ln(1 + e^z), stable


def softplus_prime(z):
    return sigmoid(z)


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
    "elu": (elu, elu_prime),
    "softplus": (softplus, softplus_prime),
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


def huber(Z, A, Y):
    """C = sum_j (1/2 r_j^2 if |r_j| <= 1 else |r_j| - 1/2), r = a - y (delta = 1)."""
    r = np.abs(A - Y)
    return np.sum(np.where(r <= 1, 0.5 * r ** 2, r - 0.5)) / A.shape[0]


def huber_gradient(A, Y):
    """dC/dA for the Huber cost: r clipped to [-1, 1]."""
    return np.clip(A - Y, -1, 1)


LOSS_FUNCTIONS = {
    "quadratic": quadratic,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "huber": huber,
}

# dC/dA of the losses valid with any output (the cross-entropies only enter BP1 fused).
LOSS_GRADIENTS = {"quadratic": quadratic_gradient, "huber": huber_gradient}


def output_error(Z, A, Y, activation, loss):
    """BP1: the per-sample output delta D_L of shape (m, n_L), not divided by m."""
    check_loss_pairing(activation, loss)
    if REQUIRED_OUTPUT.get(loss) == activation:
        return A - Y  # BP1, fused (sigmoid + binary, softmax + categorical cross-entropy)
    G = LOSS_GRADIENTS[loss](A, Y)  # dC/dA
    if activation == "softmax":
        return softmax_jvp(A, G)  # BP1 through the softmax Jacobian
    return G * ACTIVATION_FUNCTIONS[activation][1](Z)  # BP1: D_L = dC/dA (.) f'(Z_L)


# ---- dropout: a counter-based hash (splitmix64), identical in the native core -----------------

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def dropout_uniforms(key, step, layer, m, n):
    """u in [0, 1), shape (m, n), for hidden layer ``layer`` (0-based) at training ``step``.

    Element (i, j) hashes the counter (step * 64 + layer) * 2^32 + i * n + j. All arithmetic
    is mod 2^64: uint64 arrays wrap silently, so every operation keeps an array operand.
    """
    base = np.uint64((step * 64 + layer) * 2 ** 32 % 2 ** 64)
    x = np.uint64(key) + _GOLDEN_GAMMA * (base + np.arange(m * n, dtype=np.uint64))
    z = (x ^ (x >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).reshape(m, n)


def dropout_mask(key, step, layer, p, m, n, dtype):
    """M = keep / (1 - p) with keep = u >= p, computed in float64, cast to dtype."""
    keep = dropout_uniforms(key, step, layer, m, n) >= p
    return (keep / (1 - p)).astype(dtype)


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
        self._optimizer = None
        self.reset_optimizer()

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

    def _forward(self, X, masks=None):
        """zs and [A_0, ..., A_L]; with dropout masks a hidden A_l is passed on as H_l."""
        masks = masks or [None] * self.n_layers
        zs, activations = [], [X]
        for W, b, name, M in zip(self._weights, self._biases, self.activations, masks):
            zs.append(activations[-1] @ W.T + b)  # Z_l = A_{l-1} W_l^T + b_l
            A = ACTIVATION_FUNCTIONS[name][0](zs[-1])  # A_l = f_l(Z_l)
            activations.append(A if M is None else A * M)  # dropout: H_l = A_l (.) M_l
        return zs, activations

    def _cost(self, Z, A, Y):
        return float(LOSS_FUNCTIONS[self.loss_name](Z, A, Y))

    def _trace(self, X, Y, masks=None):
        m = X.shape[0]
        masks = masks or [None] * self.n_layers
        zs, activations = self._forward(X, masks)
        D_L = output_error(zs[-1], activations[-1], Y, self.activations[-1], self.loss_name)  # BP1
        deltas = [D_L]
        for l in range(self.n_layers - 2, -1, -1):
            f_prime = ACTIVATION_FUNCTIONS[self.activations[l]][1]
            D = (deltas[0] @ self._weights[l + 1]) * f_prime(zs[l])  # BP2
            deltas.insert(0, D if masks[l] is None else D * masks[l])  # dropout: D_l (.) M_l
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

    def fit(self, X, Y, epochs=30, batch_size=10, learning_rate=3.0, *, optimizer="sgd",
            schedule="constant", l2=0.0, l1=0.0, weight_decay=None, dropout=0.0,
            clip_norm=None, validation_data=None, validation_fraction=None,
            early_stopping=False, patience=5, shuffle=True, seed=0, callbacks=(),
            verbose=False):
        """Mini-batch training, exactly as ``deltaprop.Network.fit``; returns a ``History``.

        The orchestration (validation, schedules, early stopping, callbacks) is shared with
        the native network (``deltaprop._training.fit``); each epoch runs
        ``_train_epoch`` below, one ``_train_step`` per mini-batch.
        """
        return _training.fit(
            self, X, Y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            optimizer=optimizer, schedule=schedule, l2=l2, l1=l1, weight_decay=weight_decay,
            dropout=dropout, clip_norm=clip_norm, validation_data=validation_data,
            validation_fraction=validation_fraction, early_stopping=early_stopping,
            patience=patience, shuffle=shuffle, seed=seed, callbacks=callbacks,
            verbose=verbose,
        )

    # ---- training inside fit: the model side of deltaprop._training ---------------------

    def reset_optimizer(self):
        """Forget the optimizer state (v, m, s per parameter, and t); the next fit starts fresh."""
        self._state = [{} for _ in self._weights + self._biases]
        self._t = 0

    def _begin_training(self, settings):
        """Keep the optimizer state if ``settings.optimizer`` equals the previous one."""
        if settings.optimizer != self._optimizer:
            self.reset_optimizer()
        self._optimizer = settings.optimizer
        self._settings = settings

    def _snapshot(self):
        return [p.copy() for p in self._weights + self._biases]

    def _restore(self, snapshot):
        _copy_into(self._weights + self._biases, snapshot)

    def _train_epoch(self, X, Y, order, batch_size, learning_rate, first_step, check_finite=False):
        """One epoch over the rows of X in ``order`` (None: as given), in mini-batches.

        Returns (mean loss, number of correct rows, per layer the mean over the epoch's
        steps of ||g_W_l||_F); loss and correct rows are measured before each step.
        check_finite: refuse NaN/Inf in X or Y (ValueError) before the first step.
        """
        if check_finite:
            check_finite_array(X, "X")
            check_finite_array(Y, "Y")
        n = X.shape[0]
        order = np.arange(n) if order is None else order
        total_loss, correct, norm_sums = 0.0, 0, np.zeros(self.n_layers)
        starts = range(0, n, batch_size)
        for step, begin in enumerate(starts, start=first_step):
            rows = order[begin:begin + batch_size]
            loss, outputs, norms = self._train_step(X[rows], Y[rows], learning_rate, step)
            total_loss += loss * len(rows)
            correct += int(np.sum(_classes(outputs) == _classes(Y[rows])))
            norm_sums += norms
        return total_loss / n, correct, [float(total) / len(starts) for total in norm_sums]

    def _train_step(self, X, Y, eta, step):
        """One training step inside fit on the mini-batch (X, Y), at learning rate eta.

        Returns the batch loss and outputs A_L before the update, and ||g_W_l||_F per layer.
        """
        s = self._settings
        m = X.shape[0]
        masks = [None] * self.n_layers  # s.dropout: one rate per hidden layer
        for l, p in enumerate(s.dropout):
            if p > 0:
                masks[l] = dropout_mask(s.key, step, l, p, m, self.sizes[l + 1], self.dtype)
        trace = self._trace(X, Y, masks)  # forward with dropout, BP1-BP4
        grad_w, grad_b = trace.grad_w, trace.grad_b
        norms = [np.linalg.norm(g) for g in grad_w]  # ||g_W_l||_F of the raw data gradient
        if s.clip_norm is not None:
            total = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grad_w + grad_b))
            coef = float(s.clip_norm / (total + 1e-6))
            if coef < 1:
                for g in grad_w + grad_b:
                    g *= coef  # clip by global norm
        for W, g in zip(self._weights, grad_w):
            g += (s.l2 / s.n_train) * W  # L2: g_W += (l2 / n) W
            g += (s.l1 / s.n_train) * np.sign(W)  # L1: g_W += (l1 / n) sign(W)
            W -= eta * s.weight_decay * W  # decoupled weight decay: W <- W - eta wd W
        self._t += 1
        for p, g, state in zip(self._weights + self._biases, grad_w + grad_b, self._state):
            self._update(p, g, state, eta)
        return trace.loss, trace.activations[-1], norms

    def _update(self, p, g, state, eta):
        """The optimizer's update of parameter p, in place (rules in ``deltaprop.optimizers``)."""
        opt, t = self._optimizer, self._t
        if opt.name == "sgd":
            p -= eta * g  # p <- p - eta g
        elif opt.name in ("momentum", "nesterov"):
            mu = opt.momentum
            v = state.setdefault("v", np.zeros_like(p))
            v[...] = mu * v + g  # v <- mu v + g
            if opt.name == "nesterov":
                p -= eta * (g + mu * v)  # p <- p - eta (g + mu v)
            else:
                p -= eta * v  # p <- p - eta v
        elif opt.name in ("adam", "adamw"):
            b1, b2 = opt.beta1, opt.beta2
            m, s = state.setdefault("m", np.zeros_like(p)), state.setdefault("s", np.zeros_like(p))
            m[...] = b1 * m + (1 - b1) * g  # m <- b1 m + (1 - b1) g
            s[...] = b2 * s + (1 - b2) * g ** 2  # s <- b2 s + (1 - b2) g^2
            p -= eta * (m / (1 - b1 ** t)) / (np.sqrt(s / (1 - b2 ** t)) + opt.eps)
        elif opt.name == "rmsprop":
            s = state.setdefault("s", np.zeros_like(p))
            s[...] = opt.alpha * s + (1 - opt.alpha) * g ** 2  # s <- alpha s + (1 - alpha) g^2
            p -= eta * g / (np.sqrt(s) + opt.eps)  # p <- p - eta g / (sqrt(s) + eps)
        elif opt.name == "adagrad":
            s = state.setdefault("s", np.zeros_like(p))
            s += g ** 2  # s <- s + g^2
            p -= eta * g / (np.sqrt(s) + opt.eps)  # p <- p - eta g / (sqrt(s) + eps)
        else:
            raise ValueError(f"unknown optimizer {opt.name!r}")

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
