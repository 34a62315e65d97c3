"""Optimizers: the update rules of ``torch.optim``, applied by the native core per parameter.

Each step starts from g, the gradient of the mean data cost over the mini-batch, after
optional clipping by global norm and after the regularization terms of ``fit`` were added
to the weights' part (L2: g += l2/n * W, L1: g += l1/n * sign(W); biases are not
regularized). Decoupled weight decay, W <- W - eta * weight_decay * W, is applied to the
weights just before the update. With t the number of updates so far (1 at the first):

=========  ===================================================================================
sgd        p <- p - eta g
momentum   v <- mu v + g;                          p <- p - eta v
nesterov   v <- mu v + g;                          p <- p - eta (g + mu v)
adam       m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2
           p <- p - eta (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
adamw      adam, with weight_decay defaulting to 0.01 (torch.optim.AdamW)
rmsprop    s <- alpha s + (1 - alpha) g^2;         p <- p - eta g / (sqrt(s) + eps)
adagrad    s <- s + g^2;                           p <- p - eta g / (sqrt(s) + eps)
=========  ===================================================================================

The state (v, m, s, t) lives in the network, next to each parameter, and survives between
``fit`` calls while the optimizer stays the same (warm start); a different optimizer starts
from fresh state.
"""

from dataclasses import dataclass, fields

from ._validation import check_finite_scalar, resolve_named


@dataclass(frozen=True)
class Optimizer:
    name = "abstract"
    default_weight_decay = 0.0

    # getattr, not dataclasses.asdict (which deep-copies): fit builds and reads an optimizer
    # per call, and a short fit's Python layer is part of its time (P4: 2000 steps, ~0.4 ms).
    def __post_init__(self):
        for field in fields(self):
            check_finite_scalar(getattr(self, field.name), f"{type(self).__name__}.{field.name}")

    def hyperparameters(self):
        """The values the core reads: (momentum, beta1, beta2, eps, alpha)."""
        return tuple(float(getattr(self, key, 0.0)) for key in ("momentum", "beta1", "beta2", "eps", "alpha"))


@dataclass(frozen=True)
class SGD(Optimizer):
    name = "sgd"


@dataclass(frozen=True)
class Momentum(Optimizer):
    momentum: float = 0.9
    name = "momentum"

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {self.momentum}")


@dataclass(frozen=True)
class Nesterov(Momentum):
    name = "nesterov"


@dataclass(frozen=True)
class Adam(Optimizer):
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name = "adam"

    def __post_init__(self):
        super().__post_init__()
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"{key} must be in [0, 1); got {getattr(self, key)}")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0; got {self.eps}")


@dataclass(frozen=True)
class AdamW(Adam):
    name = "adamw"
    default_weight_decay = 0.01


@dataclass(frozen=True)
class RMSprop(Optimizer):
    alpha: float = 0.99
    eps: float = 1e-8
    name = "rmsprop"

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha must be in [0, 1); got {self.alpha}")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0; got {self.eps}")


@dataclass(frozen=True)
class Adagrad(Optimizer):
    eps: float = 1e-10
    name = "adagrad"

    def __post_init__(self):
        super().__post_init__()
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0; got {self.eps}")


OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, Adam, AdamW, RMSprop, Adagrad)}
# Codes of enum class OptimizerKind in csrc/deltaprop/optimizers.hpp.
OPTIMIZER_CODES = {name: code for code, name in enumerate(OPTIMIZERS)}


def get_optimizer(optimizer):
    """An Optimizer from a name ('adam') or an Optimizer instance (Adam(beta1=0.8))."""
    return resolve_named(optimizer, Optimizer, OPTIMIZERS, "optimizer")
