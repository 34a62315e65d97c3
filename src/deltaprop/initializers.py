"""Initial weights and biases, drawn in NumPy so native and reference networks start equal.

One ``np.random.default_rng(seed)`` feeds all layers in order; for each layer the weights
are drawn first (standard normal, shape (n_out, n_in), times the scheme's scale), then the
biases.

========  =====================  ==========  ============================================
name      weight scale           biases      source
========  =====================  ==========  ============================================
nielsen   1 / sqrt(n_in)         N(0, 1)     network2.py ``default_weight_initializer``
large     1                      N(0, 1)     network.py / ``large_weight_initializer``
he        sqrt(2 / n_in)         0           He et al. 2015, for relu-like layers
========  =====================  ==========  ============================================

``init=None`` chooses per layer: 'he' for relu and leaky_relu layers, 'nielsen' otherwise.
"""

import numpy as np

INITIALIZERS = ("nielsen", "large", "he")


def default_init(activation):
    return "he" if activation in ("relu", "leaky_relu") else "nielsen"


def check_init(init):
    if init is not None and init not in INITIALIZERS:
        raise ValueError(f"unknown init {init!r}; expected None or one of {INITIALIZERS}")
    return init


def draw_layer(rng, n_in, n_out, activation, init, dtype):
    """(weights, biases) for one layer, drawn from ``rng``."""
    scheme = init if init is not None else default_init(activation)
    if scheme == "nielsen":
        weights = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        biases = rng.standard_normal(n_out)
    elif scheme == "large":
        weights = rng.standard_normal((n_out, n_in))
        biases = rng.standard_normal(n_out)
    elif scheme == "he":
        weights = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        biases = np.zeros(n_out)
    else:
        raise ValueError(f"unknown init {scheme!r}; expected None or one of {INITIALIZERS}")
    return weights.astype(dtype), biases.astype(dtype)


def draw_network(sizes, activations, init, dtype, seed):
    """Lists of weights and biases for a network of ``sizes`` with per-layer activations."""
    check_init(init)
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out, activation in zip(sizes[:-1], sizes[1:], activations):
        w, b = draw_layer(rng, n_in, n_out, activation, init, dtype)
        weights.append(w)
        biases.append(b)
    return weights, biases
