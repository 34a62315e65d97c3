"""Initial weights and biases, drawn in NumPy so native and reference networks start equal.

One ``np.random.default_rng(seed)`` feeds all layers in order; for each layer the weights
(shape (n_out, n_in)) are drawn first, then the biases (zero biases draw nothing).

==============  ==========================================  ========  ===========================
name            weights                                     biases    source
==============  ==========================================  ========  ===========================
nielsen         N(0, 1) / sqrt(n_in)                        N(0, 1)   network2.py default
large           N(0, 1)                                     N(0, 1)   network.py
glorot_uniform  U(-l, l), l = sqrt(6 / (n_in + n_out))      0         Glorot & Bengio 2010
glorot_normal   N(0, 1) * sqrt(2 / (n_in + n_out))          0         Glorot & Bengio 2010
he_normal       N(0, 1) * sqrt(2 / n_in)                    0         He et al. 2015
he_uniform      U(-l, l), l = sqrt(6 / n_in)                0         He et al. 2015
lecun_normal    N(0, 1) * sqrt(1 / n_in)                    0         LeCun et al. 1998
==============  ==========================================  ========  ===========================

'he' is an alias of 'he_normal'. ``init=None`` chooses per layer: 'he_normal' for relu,
leaky_relu and elu layers, 'nielsen' otherwise.
"""

import numpy as np

INITIALIZERS = (
    "nielsen", "large", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
    "lecun_normal",
)
ALIASES = {"he": "he_normal"}


def default_init(activation):
    return "he_normal" if activation in ("relu", "leaky_relu", "elu") else "nielsen"


def check_init(init):
    if init is not None and init not in INITIALIZERS and init not in ALIASES:
        raise ValueError(
            f"unknown init {init!r}; expected None or one of {INITIALIZERS + tuple(ALIASES)}"
        )
    return init


def draw_layer(rng, n_in, n_out, activation, init, dtype):
    """(weights, biases) for one layer, drawn from ``rng``."""
    check_init(init)
    scheme = default_init(activation) if init is None else ALIASES.get(init, init)
    shape = (n_out, n_in)
    biases = np.zeros(n_out)
    if scheme == "nielsen":
        weights = rng.standard_normal(shape) / np.sqrt(n_in)
        biases = rng.standard_normal(n_out)
    elif scheme == "large":
        weights = rng.standard_normal(shape)
        biases = rng.standard_normal(n_out)
    elif scheme == "glorot_uniform":
        limit = np.sqrt(6.0 / (n_in + n_out))
        weights = rng.uniform(-limit, limit, shape)
    elif scheme == "glorot_normal":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / (n_in + n_out))
    elif scheme == "he_normal":
        weights = rng.standard_normal(shape) * np.sqrt(2.0 / n_in)
    elif scheme == "he_uniform":
        limit = np.sqrt(6.0 / n_in)
        weights = rng.uniform(-limit, limit, shape)
    else:  # lecun_normal
        weights = rng.standard_normal(shape) * np.sqrt(1.0 / n_in)
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
