"""Plain result records shared by the native and reference networks (no native import)."""

from __future__ import annotations

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
    val_accuracy stay empty without validation data. learning_rate is each epoch's rate
    (after the schedule); grad_norms[e][l] is the mean over epoch e's steps of the
    Frobenius norm of layer l's raw weight gradient. best_epoch is the epoch whose
    parameters early stopping restored (None without early stopping); stopped_early is
    True when training ended before the last epoch.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    samples_per_second: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self):
        return len(self.loss)

    def plot(self):
        """Loss, accuracy (train and validation) and per-layer gradient norms (log scale)
        against the epoch, in one matplotlib Figure, which is returned."""
        try:
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError as exc:
            raise ImportError(
                "History.plot() needs matplotlib, which is not installed: "
                "pip install matplotlib"
            ) from exc
        epochs = list(range(1, self.epochs + 1))
        figure, (loss_axes, accuracy_axes, norm_axes) = plt.subplots(1, 3, figsize=(15, 4))
        for axes, train, validation, title in (
            (loss_axes, self.loss, self.val_loss, "loss"),
            (accuracy_axes, self.accuracy, self.val_accuracy, "accuracy"),
        ):
            for values, label in ((train, "train"), (validation, "validation")):
                if values and values[0] is not None:
                    axes.plot(epochs, values, marker=".", label=label)
            axes.set_title(title)
            if not axes.lines:  # e.g. no accuracy for a regression
                axes.text(0.5, 0.5, "not recorded", ha="center", transform=axes.transAxes)
        for layer, norms in enumerate(zip(*self.grad_norms)):
            norm_axes.plot(epochs, norms, marker=".", label=f"layer {layer + 1}")
        norm_axes.set(title="gradient norm ||grad W||", yscale="log")
        for axes in figure.axes:
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            if axes.lines:
                axes.legend()
        figure.tight_layout()
        return figure
