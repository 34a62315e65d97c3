"""A fully connected layer: its parameters and the per-layer kernels (Cython, nogil)."""

import numpy as np

from . import _kernels
from ._names import ACTIVATION_CODES, LOSS_CODES
from ._validation import (
    as_input,
    as_parameter,
    as_targets,
    check_activation,
    check_loss,
    check_loss_pairing,
    check_positive_int,
    resolve_dtype,
)
from .initializers import check_init, draw_layer


class Layer:
    """A dense layer ``Z = A_prev @ W.T + b``, ``A = f(Z)``.

    Parameters
    ----------
    n_in, n_out : int
        Inputs and outputs (neurons) of the layer.
    activation : str
        One of ``deltaprop.ACTIVATIONS``; 'softmax' only as a network's output layer.
    dtype : {'float64', 'float32'}
    seed : int or None
        Seed of the initial weights (see ``deltaprop.initializers``).
    init : {None, 'nielsen', 'large', 'glorot_uniform', 'glorot_normal', 'he_normal',
        'he_uniform', 'lecun_normal'}

    Attributes
    ----------
    weights : ndarray of shape (n_out, n_in)
    biases : ndarray of shape (n_out,)
        Both assignable; assignment is validated and copied into place, so a layer inside a
        ``Network`` keeps sharing memory with it.
    """

    def __init__(self, n_in, n_out, activation="sigmoid", *, dtype="float64", seed=None, init=None):
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.activation = check_activation(activation, output_layer=True)
        self.dtype = resolve_dtype(dtype)
        self.init = check_init(init)
        rng = np.random.default_rng(seed)
        self._weights, self._biases = draw_layer(
            rng, self.n_in, self.n_out, self.activation, init, self.dtype
        )

    @property
    def _code(self):
        return ACTIVATION_CODES[self.activation]

    @property
    def weights(self):
        return self._weights

    @weights.setter
    def weights(self, value):
        self._weights[...] = as_parameter(value, (self.n_out, self.n_in), self.dtype, "weights")

    @property
    def biases(self):
        return self._biases

    @biases.setter
    def biases(self, value):
        self._biases[...] = as_parameter(value, (self.n_out,), self.dtype, "biases")

    def _bind(self, weights_view, biases_view):
        """Move the parameters into a network's buffer and keep views of it."""
        weights_view[...] = self._weights
        biases_view[...] = self._biases
        self._weights, self._biases = weights_view, biases_view

    def _matrix(self, value, n_cols, name):
        return as_input(value, n_cols, self.dtype, name)

    def forward(self, A_prev):
        """Z, A for A_prev of shape (m, n_in); both of shape (m, n_out)."""
        A_prev = self._matrix(A_prev, self.n_in, "A_prev")
        Z = np.empty((A_prev.shape[0], self.n_out), dtype=self.dtype)
        A = np.empty_like(Z)
        _kernels.forward(self._code, A_prev, self._weights, self._biases, Z, A)
        return Z, A

    def _output_batch(self, Z, A, Y, loss):
        """Checked (Z, A, Y) of this layer as an output layer with ``loss``, and its code."""
        check_loss(loss)
        check_loss_pairing(self.activation, loss)
        Z = self._matrix(Z, self.n_out, "Z")
        A = self._matrix(A, self.n_out, "A")
        self._check_rows(A, Z.shape[0], "A")
        Y = as_targets(Y, Z.shape[0], self.n_out, self.dtype)
        return Z, A, Y, LOSS_CODES[loss]

    def output_error(self, Z, A, Y, loss):
        """BP1 for this layer as the output layer: D of shape (m, n_out)."""
        Z, A, Y, loss_code = self._output_batch(Z, A, Y, loss)
        D = np.empty_like(Z)
        _kernels.output_error(self._code, loss_code, Z, A, Y, D)
        return D

    def loss(self, Z, A, Y, loss):
        """The mean cost over the m rows of this layer's output (as an output layer)."""
        Z, A, Y, loss_code = self._output_batch(Z, A, Y, loss)
        return _kernels.loss_sum(loss_code, Z, A, Y) / Z.shape[0]

    def delta(self, D_next, W_next, Z, A):
        """BP2: this layer's D = (D_next @ W_next) * f'(Z), shape (m, n_out).

        D_next : (m, n_next), the next layer's delta; W_next : (n_next, n_out), its weights.
        """
        if self.activation == "softmax":
            raise ValueError("a softmax layer has no elementwise derivative; it can only be an output layer")
        D_next = as_input(D_next, np.shape(D_next)[-1], self.dtype, "D_next")
        W_next = as_input(W_next, self.n_out, self.dtype, "W_next")
        if W_next.shape[0] != D_next.shape[1]:
            raise ValueError(
                f"W_next must have shape ({D_next.shape[1]}, {self.n_out}) to match D_next; "
                f"got {W_next.shape}"
            )
        Z = self._matrix(Z, self.n_out, "Z")
        A = self._matrix(A, self.n_out, "A")
        for name, array in (("Z", Z), ("A", A)):
            self._check_rows(array, D_next.shape[0], name)
        D = np.empty_like(Z)
        _kernels.delta(self._code, D_next, W_next, Z, A, D)
        return D

    def gradients(self, D, A_prev):
        """BP3, BP4: grad_b (n_out,), grad_w (n_out, n_in) of the mean cost over the m rows."""
        D = self._matrix(D, self.n_out, "D")
        A_prev = self._matrix(A_prev, self.n_in, "A_prev")
        self._check_rows(A_prev, D.shape[0], "A_prev")
        grad_b = np.empty(self.n_out, dtype=self.dtype)
        grad_w = np.empty((self.n_out, self.n_in), dtype=self.dtype)
        scale = 1.0 / D.shape[0]
        _kernels.bias_gradient(D, scale, grad_b)
        _kernels.weight_gradient(D, A_prev, scale, 0.0, grad_w)
        return grad_b, grad_w

    @staticmethod
    def _check_rows(array, rows, name):
        if array.shape[0] != rows:
            raise ValueError(f"{name} must have {rows} rows like the other inputs; got {array.shape[0]}")

    def __repr__(self):
        return f"Layer({self.n_in}, {self.n_out}, activation={self.activation!r}, dtype={self.dtype.name!r})"
