"""The epoch loop around a model's native (or reference) epoch: settings, validation,
schedules, History, early stopping, callbacks and progress. Shared by ``Network.fit`` and
``reference.Network.fit``; the models do the math (``_train_epoch``)."""

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ._results import History
from ._validation import (
    as_input,
    as_targets,
    check_finite_array,
    check_finite_scalar,
    check_positive_int,
)
from .optimizers import get_optimizer
from .schedules import get_schedule


@dataclass(frozen=True)
class TrainingSettings:
    optimizer: object
    l2: float
    l1: float
    weight_decay: float
    dropout: tuple
    clip_norm: object
    key: int
    n_train: int


def _non_negative(value, name):
    value = check_finite_scalar(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def _dropout_rates(dropout, n_hidden):
    if type(dropout) in (int, float) and dropout == 0:  # the default, without np.ndim
        return (0.0,) * n_hidden
    rates = [dropout] * n_hidden if np.ndim(dropout) == 0 else list(dropout)
    if len(rates) != n_hidden:
        raise ValueError(
            f"dropout must be one rate or a list of {n_hidden} (one per hidden layer); "
            f"got {len(rates)} rates"
        )
    for index, rate in enumerate(rates):
        rate = check_finite_scalar(rate, f"dropout[{index}]")
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rates must be in [0, 1); got {rate} for hidden layer {index}")
        if rate > 0 and index >= 64:  # the mask hash numbers layers in 6 bits
            raise ValueError(f"dropout is supported on the first 64 hidden layers only; got a "
                             f"rate for hidden layer {index}")
    return tuple(float(rate) for rate in rates)


def _split(model, X, Y, validation_data, validation_fraction):
    """(X_train, Y_train, X_val, y_val); y_val keeps the user's form (labels or matrix).

    The training rows are not checked for NaN/Inf here: the first epoch does that (see
    fit); the validation rows are, before any step.
    """
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("pass validation_data or validation_fraction, not both")
    X = as_input(X, model.sizes[0], model.dtype, check_finite=False)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        X_val = as_input(validation_data[0], model.sizes[0], model.dtype, "X_val")
        y_val = validation_data[1]
        as_targets(y_val, X_val.shape[0], model.sizes[-1], model.dtype, "y_val")
        return X, Y, X_val, y_val
    if validation_fraction is None:
        return X, Y, None, None
    fraction = check_finite_scalar(validation_fraction, "validation_fraction")
    # Rounded first so that e.g. 0.07 * 100 = 7.000000000000001 gives 7 rows, not 8.
    n_val = math.ceil(round(fraction * X.shape[0], 9))
    if not 0 < fraction < 1 or n_val >= X.shape[0]:
        raise ValueError(
            f"validation_fraction must be in (0, 1) and leave training rows; got {fraction} "
            f"for {X.shape[0]} rows"
        )
    Y = np.asarray(Y)
    if Y.shape[:1] != X.shape[:1]:
        as_targets(Y, X.shape[0], model.sizes[-1], model.dtype)  # raises the shape error
    cut = X.shape[0] - n_val
    check_finite_array(X[cut:], "X", first_row=cut)
    targets_val = as_targets(Y[cut:], n_val, model.sizes[-1], model.dtype, check_finite=False)
    check_finite_array(targets_val, "Y", first_row=cut)
    return X[:cut], Y[:cut], X[cut:], Y[cut:]


def _metrics(history):
    return {
        "loss": history.loss[-1],
        "accuracy": history.accuracy[-1],
        "val_loss": history.val_loss[-1] if history.val_loss else None,
        "val_accuracy": history.val_accuracy[-1] if history.val_accuracy else None,
        "learning_rate": history.learning_rate[-1],
        "seconds": history.seconds[-1],
        "samples_per_second": history.samples_per_second[-1],
        "grad_norms": history.grad_norms[-1],
    }


class _Progress:
    """A tqdm bar over epochs when tqdm is installed, else one printed line per epoch."""

    def __init__(self, epochs, enabled):
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=epochs, unit="epoch", desc="fit")
        self.epochs = epochs

    def update(self, epoch, metrics):
        if not self.enabled:
            return
        shown = {key: value for key, value in metrics.items()
                 if key in ("loss", "accuracy", "val_loss", "val_accuracy") and value is not None}
        if self.bar is not None:
            self.bar.set_postfix({key: f"{value:.4f}" for key, value in shown.items()})
            self.bar.update(1)
        else:
            text = "  ".join(f"{key} {value:.4f}" for key, value in shown.items())
            print(f"epoch {epoch + 1}/{self.epochs}  {text}  "
                  f"{metrics['samples_per_second']:,.0f} samples/s", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def fit(model, X, Y, epochs=30, batch_size=10, learning_rate=3.0, *, optimizer="sgd",
        schedule="constant", l2=0.0, l1=0.0, weight_decay=None, dropout=0.0, clip_norm=None,
        validation_data=None, validation_fraction=None, early_stopping=False, patience=5,
        shuffle=True, seed=0, callbacks=(), verbose=False):
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    learning_rate = check_finite_scalar(learning_rate, "learning_rate", positive=True)
    optimizer = get_optimizer(optimizer)
    schedule = get_schedule(schedule)
    patience = check_positive_int(patience, "patience")
    if clip_norm is not None:
        clip_norm = check_finite_scalar(clip_norm, "clip_norm", positive=True)
    weight_decay = optimizer.default_weight_decay if weight_decay is None else weight_decay
    if callbacks is None:
        callbacks = []
    callbacks = [callbacks] if callable(callbacks) else list(callbacks)
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"callbacks must be callables callback(epoch, metrics); got {callback!r}")

    X, Y, X_val, y_val = _split(model, X, Y, validation_data, validation_fraction)
    if early_stopping and X_val is None:
        raise ValueError("early_stopping needs validation_data or validation_fraction")
    classification = model._is_classification(Y)
    val_classification = y_val is not None and model._is_classification(y_val)
    Y = as_targets(Y, X.shape[0], model.sizes[-1], model.dtype, check_finite=False)
    n_train = X.shape[0]

    dropout = _dropout_rates(dropout, len(model.sizes) - 2)
    # The generator serves only the dropout key and the shuffle order, so a call with
    # neither makes none (default_rng takes ~0.1 ms with cold caches: a quarter of the
    # Python time of a short fit such as P4's); an unusual seed is still checked by it.
    if shuffle or any(dropout) or not (seed is None or (type(seed) is int and seed >= 0)):
        rng = np.random.default_rng(seed)
        # Drawn first and always, so that the shuffle order does not depend on dropout.
        key = int(rng.integers(0, 2**63, dtype=np.int64))
    else:
        rng, key = None, 0  # no mask is drawn without dropout
    settings = TrainingSettings(
        optimizer=optimizer,
        l2=_non_negative(l2, "l2"),
        l1=_non_negative(l1, "l1"),
        weight_decay=_non_negative(weight_decay, "weight_decay"),
        dropout=dropout,
        clip_norm=clip_norm,
        key=key,
        n_train=n_train,
    )
    # The first epoch checks X and Y for NaN/Inf as it goes and, refusing a value, puts the
    # model back as it was when that epoch began: after _begin_training. When the optimizer
    # changes, _begin_training discards the old one's state, so such a call checks first.
    check_first = model._optimizer is not None and settings.optimizer != model._optimizer
    if check_first:
        check_finite_array(X, "X")
        check_finite_array(Y, "Y")
    model._begin_training(settings)

    history = History()
    best_loss, best_snapshot, waited = math.inf, None, 0
    steps_per_epoch = -(-n_train // batch_size)
    progress = _Progress(epochs, verbose)
    try:
        for epoch in range(epochs):
            eta = schedule.rate(learning_rate, epoch, epochs, n_train)
            order = rng.permutation(n_train) if shuffle else None
            started = time.perf_counter()
            # The first epoch sees every row, and checks X and Y for NaN/Inf as it goes (unless
            # checked above): a refused value leaves the model as it was before the epoch.
            mean_loss, correct, grad_norms = model._train_epoch(
                X, Y, order, batch_size, eta, epoch * steps_per_epoch,
                epoch == 0 and not check_first,
            )
            seconds = time.perf_counter() - started
            if not math.isfinite(mean_loss):
                warnings.warn(
                    f"training diverged: the loss of epoch {epoch} is {mean_loss}; lower the "
                    f"learning_rate (now {eta:g}) or clip gradients with clip_norm",
                    RuntimeWarning, stacklevel=3,
                )
            history.loss.append(float(mean_loss))
            history.accuracy.append(correct / n_train if classification else None)
            history.seconds.append(seconds)
            history.samples_per_second.append(n_train / seconds if seconds > 0 else math.inf)
            history.learning_rate.append(eta)
            history.grad_norms.append([float(norm) for norm in grad_norms])
            if X_val is not None:
                history.val_loss.append(model.loss(X_val, y_val))
                history.val_accuracy.append(model.evaluate(X_val, y_val) if val_classification else None)
            stop = False
            if early_stopping:
                if history.val_loss[-1] < best_loss:
                    best_loss, best_snapshot, waited = history.val_loss[-1], model._snapshot(), 0
                    history.best_epoch = epoch
                else:
                    waited += 1
                    stop = waited >= patience
            if verbose or callbacks:  # someone reads them
                metrics = _metrics(history)
                progress.update(epoch, metrics)
                for callback in callbacks:
                    stop = bool(callback(epoch, metrics)) or stop
            if stop:
                history.stopped_early = True
                break
    finally:
        progress.close()
    if best_snapshot is not None:
        model._restore(best_snapshot)
    return history
