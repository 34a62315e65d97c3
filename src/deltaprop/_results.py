"""Plain result records shared by the native and reference networks (no native import)."""

from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)  # lists of arrays have no useful ==
class Trace:
    """Every intermediate of one forward and backward pass over a batch of m rows.

    zs : list of L arrays of shape (m, n_l)            weighted inputs Z_l
    activations : list of L + 1 arrays of shape (m, n_l)  A_0 = X, then A_l = f_l(Z_l)
    deltas : list of L arrays of shape (m, n_l)        per-sample deltas D_l (BP1, BP2), not / m
    grad_b : list of L arrays of shape (n_l,)          BP3, mean over rows
    grad_w : list of L arrays of shape (n_l, n_{l-1})  BP4, mean over rows
    loss : float                                       C, mean over rows of the per-sample cost
    """

    zs: list
    activations: list
    deltas: list
    grad_b: list
    grad_w: list
    loss: float


@dataclass
class History:
    """Per-epoch record of ``fit``: one entry per epoch in each list.

    accuracy holds None entries when the task is not classification; val_loss and
    val_accuracy stay empty without validation data.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    samples_per_second: list = field(default_factory=list)

    @property
    def epochs(self):
        return len(self.loss)
