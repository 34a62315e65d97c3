"""The implementations that benchmarks/run.py times side by side, one class each.

Every class is built from the same configuration, the same data and the same initial
parameters (drawn by ``deltaprop.Network(..., seed=0)``) and offers:

- ``reset()``: put the initial parameters back (not timed);
- ``run()``: one training epoch (in order, no shuffling, consecutive mini-batches), or one
  ``predict`` over the whole input for an inference configuration (timed);
- ``parameters()``: the parameters after ``run()``, as float64 NumPy ``(W, b)`` pairs with
  W of shape (n_out, n_in), so one NumPy evaluator computes every final loss alike;
- ``outputs()`` (inference only): what the last ``run()`` predicted.

A peer whose library is not importable raises ``Unavailable`` from its constructor and is
skipped with a note. ``compare_loss = False`` marks a peer that cannot run the same objective
(scikit-learn has no quadratic cost on sigmoid/tanh outputs); its final loss is shown but
left out of the agreement check.
"""

import numpy as np


class Unavailable(Exception):
    """The peer cannot run here (library missing) or cannot run this configuration."""


def one_hot(labels, n_out, dtype):
    Y = np.zeros((labels.shape[0], n_out), dtype=dtype)
    Y[np.arange(labels.shape[0]), labels] = 1
    return Y


# ---- the common NumPy evaluator (float64) ----------------------------------------------------

def _np_activation(name, z):
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(name)


def forward64(cfg, params, X, chunk=2048):
    """(Z_L, A_L) in float64 for the parameters ``params`` (list of (W, b))."""
    zs, outs = [], []
    for start in range(0, X.shape[0], chunk):
        A = np.asarray(X[start:start + chunk], dtype=np.float64)
        for index, (W, b) in enumerate(params):
            Z = A @ np.asarray(W, np.float64).T + np.asarray(b, np.float64)
            A = _np_activation(cfg.activations[index], Z)
        zs.append(Z)
        outs.append(A)
    return np.concatenate(zs), np.concatenate(outs)


def loss64(cfg, params, X, Y):
    """Mean cost over the rows, in float64, of the configuration's loss."""
    Z, A = forward64(cfg, params, X)
    Y = np.asarray(Y, np.float64)
    if cfg.loss == "quadratic":
        return float(np.mean(0.5 * np.sum((A - Y) ** 2, axis=1)))
    if cfg.loss == "categorical_crossentropy":
        m = Z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(Z - m), axis=1))
        return float(np.mean(lse - np.sum(Y * Z, axis=1)))
    raise ValueError(cfg.loss)


# ---- base -------------------------------------------------------------------------------------

class Peer:
    name = "?"
    library = None       # module name shown in the environment block
    compare_loss = True  # same objective as deltaprop
    note = ""

    def __init__(self, cfg, data, init):
        self.cfg, self.data, self.init = cfg, data, init

    def reset(self):
        raise NotImplementedError

    def run(self):
        raise NotImplementedError

    def parameters(self):
        raise NotImplementedError

    def outputs(self):
        return self._outputs

    def sync(self):
        """Wait for asynchronous work (JAX) so that the timer sees all of it."""


# ---- deltaprop ---------------------------------------------------------------------------------

def deltaprop_network(cfg, seed=0, module=None):
    """A network of the configuration: deltaprop's native one, or from ``module``
    (``deltaprop.reference``), which has the same API."""
    if module is None:
        import deltaprop as module

    return module.Network(cfg.sizes, activation=cfg.hidden, output=cfg.output,
                          loss=cfg.loss, dtype=cfg.dtype, seed=seed)


class DeltapropFit(Peer):
    """``deltaprop.Network.fit(X, Y, epochs=1, shuffle=False)``: the public API, whole epoch
    in the C++ core without the GIL (validation and History bookkeeping included)."""

    name = "deltaprop"
    library = "deltaprop"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        self.net = self.make_network(cfg)
        self.reset()

    @staticmethod
    def make_network(cfg):
        return deltaprop_network(cfg)

    def reset(self):
        self.net.weights = [W for W, _ in self.init]
        self.net.biases = [b for _, b in self.init]

    def run(self):
        if self.cfg.kind == "predict":
            self._outputs = self.net.predict(self.data.X)
        else:
            self.net.fit(self.data.X, self.data.Y, epochs=1, batch_size=self.cfg.batch,
                         learning_rate=self.cfg.eta, shuffle=False)

    def parameters(self):
        return [(np.asarray(W, np.float64), np.asarray(b, np.float64))
                for W, b in zip(self.net.weights, self.net.biases)]


class DeltapropEngine(DeltapropFit):
    """The pybind11 engine's ``train_epoch`` called directly: what is left without the
    Python layer of ``fit`` (argument checks, History)."""

    name = "deltaprop.engine"

    def run(self):
        if self.cfg.kind == "predict":
            self._outputs = self.net._engine.predict(self.data.X)
        else:
            self.net._engine.train_epoch(self.data.X, self.data.Y, None, self.cfg.batch,
                                         self.cfg.eta, 0)


class Reference(DeltapropFit):
    """``deltaprop.reference.Network.fit``: the pure NumPy twin, one batch matrix product
    per equation (same API, so the same calls as ``DeltapropFit``)."""

    name = "reference"

    @staticmethod
    def make_network(cfg):
        from deltaprop import reference

        return deltaprop_network(cfg, module=reference)


# ---- Nielsen's network.py, generalised to the configurations' activations and costs ------------

class NielsenNetwork:
    """network.py's ``update_mini_batch`` and ``backprop``: column vectors, one sample at a
    time, nabla summed over the mini-batch, then w -= (eta / m) nabla_w. Kept in the
    configuration's dtype (network.py's np.zeros would silently promote float32 to float64)."""

    def __init__(self, weights, biases, activations, loss, dtype):
        self.dtype = np.dtype(dtype)
        self.weights = [np.array(W, dtype=self.dtype) for W in weights]
        self.biases = [np.array(b, dtype=self.dtype).reshape(-1, 1) for b in biases]
        self.activations = activations
        self.loss = loss

    @staticmethod
    def f(name, z):
        if name == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z))
        if name == "tanh":
            return np.tanh(z)
        if name == "relu":
            return np.maximum(z, 0)
        if name == "softmax":
            e = np.exp(z - z.max())
            return e / e.sum()
        raise ValueError(name)

    @staticmethod
    def f_prime(name, z, a):
        if name == "sigmoid":
            return a * (1 - a)
        if name == "tanh":
            return 1 - a * a
        if name == "relu":
            return (z > 0).astype(z.dtype)
        raise ValueError(name)

    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape, self.dtype) for b in self.biases]
        nabla_w = [np.zeros(w.shape, self.dtype) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        nabla_b = [None] * len(self.biases)
        nabla_w = [None] * len(self.weights)
        activation = x
        activations = [x]
        zs = []
        for b, w, name in zip(self.biases, self.weights, self.activations):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = self.f(name, z)
            activations.append(activation)
        # BP1
        if self.loss == "categorical_crossentropy":  # softmax output: delta = a - y
            delta = activations[-1] - y
        else:  # quadratic: (a - y) * f'(z)
            delta = (activations[-1] - y) * self.f_prime(self.activations[-1], zs[-1],
                                                          activations[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for layer in range(2, len(self.weights) + 1):  # BP2, BP3, BP4
            z = zs[-layer]
            sp = self.f_prime(self.activations[-layer], z, activations[-layer])
            delta = np.dot(self.weights[-layer + 1].transpose(), delta) * sp
            nabla_b[-layer] = delta
            nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
        return nabla_b, nabla_w


class NielsenLoop(Peer):
    """Nielsen's network.py (per-sample NumPy loop over column vectors)."""

    name = "numpy-loop"
    library = "numpy"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        if cfg.kind == "predict":
            raise Unavailable("training only")
        dtype = np.dtype(cfg.dtype)
        self.samples = [(data.X[i].reshape(-1, 1), data.Y[i].reshape(-1, 1))
                        for i in range(data.X.shape[0])]
        self.reset()
        self.eta = dtype.type(cfg.eta)

    def reset(self):
        self.net = NielsenNetwork([W for W, _ in self.init], [b for _, b in self.init],
                                  self.cfg.activations, self.cfg.loss, self.cfg.dtype)

    def run(self):
        with np.errstate(over="ignore"):  # network.py's 1/(1+exp(-z)) overflows harmlessly
            B = self.cfg.batch
            for start in range(0, len(self.samples), B):
                self.net.update_mini_batch(self.samples[start:start + B], self.eta)

    def parameters(self):
        return [(W.astype(np.float64), b[:, 0].astype(np.float64))
                for W, b in zip(self.net.weights, self.net.biases)]


# ---- PyTorch eager -----------------------------------------------------------------------------

class Torch(Peer):
    """PyTorch eager on the CPU: F.linear + activation per layer, autograd, and the plain SGD
    update p -= eta * p.grad in place (what torch.optim.SGD(lr=eta) does, minus its
    per-parameter bookkeeping). Categorical cross-entropy is F.cross_entropy on the logits
    (log-softmax fused), quadratic is 0.5 * ((a - y)**2).sum(1).mean()."""

    name = "torch"
    library = "torch"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        try:
            import torch
        except ImportError as exc:
            raise Unavailable(f"torch not importable ({exc})")
        self.torch = torch
        self.F = torch.nn.functional
        self.weights = [torch.tensor(np.array(W), requires_grad=True) for W, _ in init]
        self.biases = [torch.tensor(np.array(b), requires_grad=True) for _, b in init]
        self.params = self.weights + self.biases
        self.acts = [{"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
                      "softmax": lambda z: torch.softmax(z, dim=1)}[a] for a in cfg.activations]
        X = torch.from_numpy(data.X)
        if cfg.kind == "predict":
            self.X = X
            return
        B = cfg.batch
        Y = torch.from_numpy(data.Y)
        labels = torch.from_numpy(data.labels) if data.labels is not None else None
        self.batches = []
        for start in range(0, data.X.shape[0], B):
            target = (labels[start:start + B] if cfg.loss == "categorical_crossentropy"
                      else Y[start:start + B])
            self.batches.append((X[start:start + B], target))

    def reset(self):
        with self.torch.no_grad():
            for p, W in zip(self.weights, [W for W, _ in self.init]):
                p.copy_(self.torch.from_numpy(np.asarray(W)))
            for p, b in zip(self.biases, [b for _, b in self.init]):
                p.copy_(self.torch.from_numpy(np.asarray(b)))

    def _logits(self, A):
        L = len(self.weights)
        for index, (W, b) in enumerate(zip(self.weights, self.biases)):
            Z = self.F.linear(A, W, b)
            A = Z if index == L - 1 else self.acts[index](Z)
        return Z

    def run(self):
        torch, F = self.torch, self.F
        if self.cfg.kind == "predict":
            with torch.inference_mode():
                self._outputs = self.acts[-1](self._logits(self.X)).numpy()
            return
        eta = self.cfg.eta
        cce = self.cfg.loss == "categorical_crossentropy"
        out = self.acts[-1]
        params = self.params
        for x, target in self.batches:
            for p in params:
                p.grad = None
            Z = self._logits(x)
            if cce:
                loss = F.cross_entropy(Z, target)
            else:
                loss = 0.5 * ((out(Z) - target) ** 2).sum(dim=1).mean()
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-eta)

    def parameters(self):
        return [(W.detach().numpy().astype(np.float64), b.detach().numpy().astype(np.float64))
                for W, b in zip(self.weights, self.biases)]


# ---- JAX ------------------------------------------------------------------------------------

class JaxBase(Peer):
    library = "jax"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as exc:
            raise Unavailable(f"jax not importable ({exc})")
        if np.dtype(cfg.dtype) == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp = jax, jnp
        acts = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
                "softmax": lambda z: jax.nn.softmax(z, axis=1)}
        activations = [acts[a] for a in cfg.activations]
        n_layers = len(activations)

        def logits(params, A):
            for index, (W, b) in enumerate(params):
                Z = A @ W.T + b
                A = Z if index == n_layers - 1 else activations[index](Z)
            return Z

        if cfg.loss == "categorical_crossentropy":
            def loss_fn(params, x, y):
                return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits(params, x), axis=1), axis=1))
        else:
            def loss_fn(params, x, y):
                a = activations[-1](logits(params, x))
                return jnp.mean(0.5 * jnp.sum((a - y) ** 2, axis=1))

        eta = cfg.eta

        def step(params, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            return jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grads), loss

        self.logits, self.loss_fn, self.step = logits, loss_fn, step
        self.activations = activations
        self.device_init = [(jnp.asarray(W), jnp.asarray(b)) for W, b in init]

    def reset(self):
        self.params = self.device_init  # immutable arrays: nothing to copy

    def sync(self):
        self.jax.block_until_ready(self.params)
        if getattr(self, "_outputs_device", None) is not None:
            self._outputs_device.block_until_ready()

    def parameters(self):
        return [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in self.params]


class JaxStep(JaxBase):
    """JAX: ``jax.jit`` of one SGD step (value_and_grad + update), called from a Python loop
    over mini-batches already placed on the device. For inference: ``jax.jit`` of predict."""

    name = "jax.jit"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        jax, jnp = self.jax, self.jnp
        if cfg.kind == "predict":
            self.predict = jax.jit(lambda params, X: self.activations[-1](self.logits(params, X)))
            self.X = jnp.asarray(data.X)
            self._outputs_device = None
        else:
            self.jstep = jax.jit(self.step)
            B = cfg.batch
            self.batches = [(jnp.asarray(data.X[s:s + B]), jnp.asarray(data.Y[s:s + B]))
                            for s in range(0, data.X.shape[0], B)]
        self.reset()
        self.run()  # compile outside the timings
        self.sync()
        self.reset()

    def run(self):
        if self.cfg.kind == "predict":
            self._outputs_device = self.predict(self.params, self.X)
            return
        params, step = self.params, self.jstep
        for x, y in self.batches:
            params, _ = step(params, x, y)
        self.params = params

    def outputs(self):
        return np.asarray(self._outputs_device)


class JaxScan(JaxBase):
    """JAX: the whole epoch as one ``jax.jit`` of ``lax.scan`` over the mini-batches
    (data reshaped to (steps, batch, n_in) on the device beforehand)."""

    name = "jax.scan"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        if cfg.kind == "predict":
            raise Unavailable("training only (jax.jit covers predict)")
        jax, jnp = self.jax, self.jnp
        B = cfg.batch
        n = data.X.shape[0]
        if n % B:
            raise Unavailable(f"rows ({n}) not a multiple of the batch ({B})")
        self.Xb = jnp.asarray(data.X.reshape(n // B, B, -1))
        self.Yb = jnp.asarray(data.Y.reshape(n // B, B, -1))
        step = self.step

        def epoch(params, Xb, Yb):
            return jax.lax.scan(lambda p, xy: step(p, xy[0], xy[1]), params, (Xb, Yb))

        self.epoch = jax.jit(epoch)
        self.reset()
        self.run()
        self.sync()
        self.reset()

    def run(self):
        self.params, _ = self.epoch(self.params, self.Xb, self.Yb)


# ---- scikit-learn -------------------------------------------------------------------------------

class Sklearn(Peer):
    """scikit-learn's MLPClassifier / MLPRegressor, solver='sgd', momentum=0,
    nesterovs_momentum=False, alpha=0, learning_rate='constant', batch_size and shuffle=False;
    one ``partial_fit(X, y)`` is one epoch. Initialised by one partial_fit on a batch, then
    coefs_ (W.T) and intercepts_ are overwritten in place with the common initial weights.

    Objectives: softmax + categorical cross-entropy is MLPClassifier's (multi-class labels)
    exactly. scikit-learn has no quadratic cost on sigmoid or tanh outputs: for the sigmoid
    quadratic configuration it runs MLPClassifier on one-hot targets as multi-label
    (sigmoid outputs, binary log-loss: same shapes and products, different BP1); for the
    tanh quadratic one MLPRegressor (identity output, squared_error = 1/2 mean over rows and
    outputs, which equals deltaprop's 1/2-sum-mean for one output; eta is multiplied by n_out
    for several outputs so the step matches)."""

    name = "sklearn"
    library = "sklearn"

    def __init__(self, cfg, data, init):
        super().__init__(cfg, data, init)
        try:
            from sklearn.neural_network import MLPClassifier, MLPRegressor
        except ImportError as exc:
            raise Unavailable(f"scikit-learn not importable ({exc})")
        import warnings

        acts = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}
        if cfg.hidden not in acts:
            raise Unavailable(f"no {cfg.hidden} activation in scikit-learn")
        n_out = cfg.sizes[-1]
        common = dict(hidden_layer_sizes=tuple(cfg.sizes[1:-1]), activation=acts[cfg.hidden],
                      solver="sgd", momentum=0.0, nesterovs_momentum=False, alpha=0.0,
                      learning_rate="constant", batch_size=cfg.batch, shuffle=False,
                      max_iter=1, tol=0.0, random_state=0)
        if cfg.loss == "categorical_crossentropy":
            self.model = MLPClassifier(learning_rate_init=cfg.eta, **common)
            self.y = data.labels
            classes = np.arange(n_out)
        elif cfg.output == "sigmoid":
            self.model = MLPClassifier(learning_rate_init=cfg.eta, **common)
            self.y = data.Y.astype(np.int64)  # multi-label indicator: sigmoid + binary log-loss
            classes = np.arange(n_out)
            self.compare_loss = False
            self.note = "sigmoid outputs + binary log-loss (no quadratic cost on sigmoid outputs)"
        else:
            self.model = MLPRegressor(learning_rate_init=cfg.eta * n_out, **common)
            self.y = data.Y[:, 0] if n_out == 1 else data.Y
            classes = None
            self.compare_loss = cfg.output == "identity"
            if not self.compare_loss:
                self.note = f"identity output + squared error (no {cfg.output} output layer)"
        self.X = data.X
        B = min(cfg.batch, data.X.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if classes is None:
                self.model.partial_fit(data.X[:B], self.y[:B])
            else:
                self.model.partial_fit(data.X[:B], self.y[:B], classes=classes)
        if self.model.coefs_[0].dtype != np.dtype(cfg.dtype):
            raise Unavailable(f"scikit-learn computes in {self.model.coefs_[0].dtype}")
        self.reset()

    def reset(self):
        for index, (W, b) in enumerate(self.init):
            self.model.coefs_[index][...] = W.T
            self.model.intercepts_[index][...] = b

    def run(self):
        if self.cfg.kind == "predict":
            self._outputs = self.model.predict_proba(self.X)
        else:
            self.model.partial_fit(self.X, self.y)

    def parameters(self):
        return [(W.T.astype(np.float64), b.astype(np.float64))
                for W, b in zip(self.model.coefs_, self.model.intercepts_)]


TRAINING = [DeltapropFit, DeltapropEngine, Reference, NielsenLoop, Torch, JaxStep, JaxScan, Sklearn]
INFERENCE = [DeltapropFit, DeltapropEngine, Reference, Torch, JaxStep, Sklearn]
DELTAPROP = ("deltaprop", "deltaprop.engine")
