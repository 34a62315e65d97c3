"""The network: validates and converts input once, then calls the native engine (pybind11)."""


import numpy as np

from . import _engine, _training
from ._names import ACTIVATION_CODES, CLASSIFICATION_LOSSES, LOSS_CODES, default_output
from ._results import Trace
from ._validation import (
    as_input,
    as_labels,
    as_parameter_list,
    as_targets,
    check_activation,
    check_finite_scalar,
    check_loss,
    check_loss_pairing,
    check_sizes,
    is_label_vector,
    resolve_dtype,
)
from .initializers import check_init, draw_network
from .optimizers import OPTIMIZER_CODES
from .layer import Layer

_ENGINES = {np.dtype(np.float32): _engine.Network32, np.dtype(np.float64): _engine.Network64}


class Network:
    """A fully connected feed-forward network trained by backpropagation.

    Build it from layer widths, ``Network([784, 30, 10], activation="sigmoid")``, or from
    layers, ``Network(layers=[Layer(784, 30, "relu"), Layer(30, 10, "softmax")], loss=...)``.

    Parameters
    ----------
    sizes : list of int
        Widths n_0 (inputs), n_1, ..., n_L (outputs).
    activation : str
        Activation of the hidden layers.
    output : str or None
        Activation of the output layer; None picks 'softmax' for categorical_crossentropy,
        'sigmoid' for binary_crossentropy and ``activation`` otherwise.
    loss : {'quadratic', 'binary_crossentropy', 'categorical_crossentropy', 'huber'}
    dtype : {'float64', 'float32'}
        Every input is converted once to this dtype; every output has it.
    seed : int or None
        Seed of the initial weights.
    init : {None, 'nielsen', 'large', 'glorot_uniform', 'glorot_normal', 'he_normal',
        'he_uniform', 'lecun_normal'}
        Weight initialization (see ``deltaprop.initializers``).
    layers : list of Layer
        Instead of ``sizes``: the layers themselves; they then share memory with the network.

    Conventions: rows are samples; layer l has ``weights[l-1]`` of shape (n_l, n_{l-1}) and
    ``biases[l-1]`` of shape (n_l,); costs are averaged over the rows of a batch.
    """

    def __init__(self, sizes=None, activation="sigmoid", output=None, loss="quadratic",
                 dtype="float64", seed=None, init=None, *, layers=None):
        self.loss_name = check_loss(loss)
        if layers is not None:
            if sizes is not None:
                raise ValueError("pass either sizes or layers, not both")
            layers = self._check_layers(layers)
            self.dtype = layers[0].dtype
            self.sizes = [layers[0].n_in] + [layer.n_out for layer in layers]
            activations = [layer.activation for layer in layers]
            weights = [layer.weights for layer in layers]
            biases = [layer.biases for layer in layers]
        else:
            if sizes is None:
                raise TypeError("Network needs sizes, e.g. Network([784, 30, 10]), or layers=[...]")
            self.sizes = check_sizes(sizes)
            self.dtype = resolve_dtype(dtype)
            # With no hidden layer, `activation` is only the default of `output`.
            check_activation(activation, output_layer=len(self.sizes) == 2)
            output = default_output(loss, activation) if output is None else output
            check_activation(output, output_layer=True)
            activations = [activation] * (len(self.sizes) - 2) + [output]
            weights, biases = draw_network(self.sizes, activations, check_init(init), self.dtype, seed)
            layers = [Layer(n_in, n_out, act, dtype=self.dtype) for n_in, n_out, act
                      in zip(self.sizes[:-1], self.sizes[1:], activations)]
        for index, act in enumerate(activations[:-1]):
            check_activation(act, output_layer=False)
        check_loss_pairing(activations[-1], self.loss_name)

        self._engine = _ENGINES[self.dtype](
            self.sizes, [ACTIVATION_CODES[a] for a in activations], LOSS_CODES[self.loss_name]
        )
        for index, layer in enumerate(layers):
            layer._weights[...] = weights[index]
            layer._biases[...] = biases[index]
            layer._bind(self._engine.weights(index), self._engine.biases(index))
        self.layers = list(layers)
        self._optimizer = None  # the optimizer whose state the engine holds
        self._settings = None  # the TrainingSettings it was last configured with

    @staticmethod
    def _check_layers(layers):
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one Layer; got an empty list")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{index}] must be a deltaprop.Layer; got {type(layer).__name__}")
        for index, (below, above) in enumerate(zip(layers[:-1], layers[1:])):
            if above.n_in != below.n_out:
                raise ValueError(
                    f"layers[{index + 1}] takes {above.n_in} inputs but layers[{index}] gives "
                    f"{below.n_out} outputs; consecutive layers must match"
                )
            if above.dtype != below.dtype:
                raise ValueError(
                    f"all layers must share one dtype; layers[{index}] is {below.dtype.name} and "
                    f"layers[{index + 1}] is {above.dtype.name}"
                )
        if len(set(map(id, layers))) != len(layers):
            raise ValueError("the same Layer object appears twice in layers")
        return layers

    # --- parameters -------------------------------------------------------------------

    @property
    def n_layers(self):
        return len(self.layers)

    @property
    def activations(self):
        """The activation name of each layer."""
        return [layer.activation for layer in self.layers]

    @property
    def weights(self):
        """List of the layers' weights, arrays of shape (n_l, n_{l-1}), sharing memory."""
        return [layer.weights for layer in self.layers]

    @weights.setter
    def weights(self, values):
        shapes = [(layer.n_out, layer.n_in) for layer in self.layers]
        for layer, array in zip(self.layers, as_parameter_list(values, shapes, self.dtype, "weights")):
            layer.weights[...] = array

    @property
    def biases(self):
        """List of the layers' biases, arrays of shape (n_l,), sharing memory."""
        return [layer.biases for layer in self.layers]

    @biases.setter
    def biases(self, values):
        shapes = [(layer.n_out,) for layer in self.layers]
        for layer, array in zip(self.layers, as_parameter_list(values, shapes, self.dtype, "biases")):
            layer.biases[...] = array

    # --- conversion -------------------------------------------------------------------

    def _inputs(self, X, name="X"):
        return as_input(X, self.sizes[0], self.dtype, name)

    def _batch(self, X, Y):
        X = self._inputs(X)
        return X, as_targets(Y, X.shape[0], self.sizes[-1], self.dtype)

    # --- computation ------------------------------------------------------------------

    def predict(self, X):
        """Output activations A_L, shape (n_samples, n_out), for X of shape (n_samples, n_in)."""
        return self._engine.predict(self._inputs(X))

    def loss(self, X, Y):
        """Mean cost over the rows of X (float)."""
        return float(self._engine.loss(*self._batch(X, Y)))

    def backprop(self, X, Y):
        """Gradients of the mean cost over the rows of X: (grad_b, grad_w), lists per layer.

        grad_b[l] has shape (n_{l+1},) and grad_w[l] shape (n_{l+1}, n_l). For one row these
        are exactly Nielsen's ``nabla_b, nabla_w`` (with 1-D biases).
        """
        result = self._engine.backprop(*self._batch(X, Y))
        return result["grad_b"], result["grad_w"]

    def trace(self, X, Y):
        """Every intermediate of one forward and backward pass, as a ``Trace``."""
        X, Y = self._batch(X, Y)
        result = self._engine.backprop(X, Y, keep_trace=True)
        return Trace(
            zs=result["zs"],
            activations=[X.copy()] + result["activations"],
            deltas=result["deltas"],
            grad_b=result["grad_b"],
            grad_w=result["grad_w"],
            loss=float(result["loss"]),
        )

    def step(self, X, Y, learning_rate):
        """One SGD step on the batch: W -= learning_rate * grad_W, b -= learning_rate * grad_b.

        Returns the mean cost over the batch before the step.
        """
        learning_rate = check_finite_scalar(learning_rate, "learning_rate", positive=True)
        X, Y = self._batch(X, Y)
        return float(self._engine.step(X, Y, learning_rate))

    def _is_classification(self, Y):
        """Integer labels, or a cross-entropy loss, make a classification task."""
        return is_label_vector(Y) or self.loss_name in CLASSIFICATION_LOSSES

    def fit(self, X, Y, epochs=30, batch_size=10, learning_rate=3.0, **options):
        """Train by mini-batch gradient descent; every epoch runs natively without the GIL.

        See ``deltaprop._training.fit`` (and the README) for the options: optimizer,
        schedule, l2, l1, weight_decay, dropout, clip_norm, validation_data,
        validation_fraction, early_stopping, patience, shuffle, seed, callbacks, verbose.
        Returns a ``History``.

        While an epoch runs, ``weights`` and ``biases`` read from another thread (or from a
        signal handler) are no consistent snapshot: the core may step a copy of the first
        layer's weights (or of some of its rows) and write it back when the epoch ends, so
        those show the epoch's start, and a write to them meanwhile is lost. Read or set the
        parameters between ``fit`` calls, or from a callback (it runs between epochs).
        """
        return _training.fit(self, X, Y, epochs, batch_size, learning_rate, **options)

    # --- the model interface of _training.fit -------------------------------------------

    def _begin_training(self, settings):
        reset = settings.optimizer != self._optimizer
        if not reset and settings == self._settings:
            return  # the engine holds exactly these (a repeated fit(epochs=1) call, say)
        self._engine.configure_training(
            OPTIMIZER_CODES[settings.optimizer.name], *settings.optimizer.hyperparameters(),
            settings.l2, settings.l1, settings.weight_decay, list(settings.dropout),
            settings.clip_norm or 0.0, settings.key, settings.n_train, reset,
        )
        # Only once the engine took the settings does it hold this optimizer's state.
        self._optimizer = settings.optimizer
        self._settings = settings

    def _train_epoch(self, X, Y, order, batch_size, learning_rate, first_step, check_finite=False):
        # The engine checks each batch as it reaches it (one pass over X fewer than checking
        # first) and puts parameters and optimizer state back if it refuses one.
        return self._engine.train_epoch(X, Y, order, batch_size, learning_rate, first_step,
                                        check_finite)

    def _snapshot(self):
        return self._engine.parameters().copy()

    def _restore(self, snapshot):
        self._engine.parameters()[...] = snapshot

    def reset_optimizer(self):
        """Forget the optimizer's state (momenta, moment estimates, step count)."""
        self._optimizer = None

    def evaluate(self, X, y):
        """Accuracy for classification, the mean cost otherwise.

        Classification means: y is 1-D integer labels, or the loss is a cross-entropy.
        Accuracy compares argmax of the outputs (a > 0.5 for one output) with the labels
        (or with argmax of a target matrix).
        """
        X = self._inputs(X)
        n_out = self.sizes[-1]
        if not self._is_classification(y):
            return self.loss(X, y)
        if is_label_vector(y):
            labels = as_labels(y, X.shape[0], n_out)
        else:
            labels = self._labels_of(as_targets(y, X.shape[0], n_out, self.dtype))
        return float(np.mean(self._labels_of(self.predict(X)) == labels))

    @staticmethod
    def _labels_of(outputs):
        if outputs.shape[1] == 1:
            return (outputs[:, 0] > 0.5).astype(np.int64)
        return np.argmax(outputs, axis=1)

    def __repr__(self):
        return (f"Network({self.sizes}, activations={self.activations}, loss={self.loss_name!r}, "
                f"dtype={self.dtype.name!r})")
