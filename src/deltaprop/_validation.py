"""Input checks and the one conversion of user arrays, shared by the native and reference APIs.

Every user array is converted once here, by one rule: it becomes a C-contiguous array of the
network's dtype (``np.ascontiguousarray(x, dtype=net.dtype)``). Booleans, integers and other
float widths are converted; complex, object and string arrays are refused with TypeError.
The native bindings then accept only exactly that layout, so no silent copy can happen there.
"""

import math
import numbers
import operator

import numpy as np

from ._names import (
    ACTIVATIONS,
    LOSSES,
    OUTPUT_ONLY_ACTIVATIONS,
    REQUIRED_OUTPUT,
)

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_dtype(dtype):
    """np.dtype for 'float32' / 'float64' (or the numpy types); ValueError otherwise."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"dtype must be 'float32' or 'float64'; got {dtype!r}, which is not a dtype"
        ) from exc
    if resolved not in SUPPORTED_DTYPES:
        raise ValueError(
            f"dtype must be 'float32' or 'float64'; got {resolved.name!r}. "
            "Pass dtype='float64' (default) or dtype='float32'."
        )
    return resolved


def check_activation(name, *, output_layer):
    """The activation name, checked against the table (softmax only on the output layer)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, one of {ACTIVATIONS}; got {name!r}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")
    if name in OUTPUT_ONLY_ACTIVATIONS and not output_layer:
        raise ValueError(
            f"activation {name!r} is only valid on the output layer (its Jacobian is not "
            "diagonal); use e.g. 'sigmoid', 'tanh' or 'relu' for hidden layers"
        )
    return name


def check_loss(name):
    if not isinstance(name, str):
        raise TypeError(f"loss must be a string, one of {LOSSES}; got {name!r}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
    return name


def check_loss_pairing(output_activation, loss):
    """Cross-entropies are defined for one kind of output only."""
    required = REQUIRED_OUTPUT.get(loss)
    if required is not None and output_activation != required:
        raise ValueError(
            f"loss {loss!r} needs a {required!r} output layer; the output layer is "
            f"{output_activation!r}. Use output={required!r} or loss='quadratic'."
        )


def check_positive_int(value, name):
    if type(value) is int and value > 0:  # the common case, without the ABC checks below
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    value = operator.index(value)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value}")
    return value


def check_finite_scalar(value, name, *, positive=False):
    if type(value) is not float and (
        isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
    ):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


def _as_numeric_array(data, name):
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of numbers: {exc}") from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float); got dtype {array.dtype}. "
            f"Convert it first, e.g. np.asarray({name}, dtype=float)."
        )
    return array


def check_finite_array(array, name, first_row=0):
    """ValueError naming the first NaN or Inf of array (its row counted from first_row)."""
    # A sum is finite exactly when every term is, unless it overflows: one pass over the data
    # with no temporary, where np.isfinite(array).all() first writes a boolean array as large
    # as the data (2.2x slower on a 10000 x 784 float64 X, 6 ms a fit call). Only a sum that
    # is not finite is looked at element by element, to tell overflow from NaN/Inf.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return
    if not np.isfinite(array).all():
        bad = [int(i) for i in np.argwhere(~np.isfinite(array))[0]]
        bad[0] += first_row
        raise ValueError(
            f"{name} contains NaN or Inf (first at index {tuple(bad)}); "
            "remove or impute those values first"
        )


def as_input(X, n_in, dtype, name="X", check_finite=True):
    """X as a C-contiguous (n_samples, n_in) array of dtype; a 1-D X is one sample.

    check_finite=False leaves the NaN/Inf check to the caller (fit's first epoch does it).
    """
    array = _as_numeric_array(X, name)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, {n_in}) (or 1-D for one sample); "
            f"got an array of shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass at least one sample")
    if array.shape[1] != n_in:
        raise ValueError(
            f"{name} has {array.shape[1]} features per sample but the network expects "
            f"{n_in}: pass shape (n_samples, {n_in}); got shape {array.shape}"
        )
    array = np.ascontiguousarray(array, dtype=dtype)
    if check_finite:
        check_finite_array(array, name)
    return array


def is_label_vector(Y):
    """True for 1-D integer (or integral float) labels."""
    array = np.asarray(Y)
    return array.ndim == 1 and array.dtype.kind in "biu"


def as_labels(y, n_rows, n_out, name="y"):
    """1-D int64 labels in [0, n_out) (or {0, 1} when n_out == 1)."""
    array = _as_numeric_array(y, name)
    if array.ndim != 1:
        raise ValueError(f"{name} labels must be 1-D of shape ({n_rows},); got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise ValueError(
            f"{name} has {array.shape[0]} labels but X has {n_rows} rows; they must match"
        )
    if array.dtype.kind == "f":
        check_finite_array(array, name)
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name} labels must be whole numbers; got non-integral values")
    labels = array.astype(np.int64)
    n_classes = max(n_out, 2)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{name} labels must lie in [0, {n_classes}) for a network with {n_out} "
            f"output(s); got values from {labels.min()} to {labels.max()}"
        )
    return labels


def one_hot(labels, n_out, dtype):
    if n_out == 1:
        return labels.astype(dtype).reshape(-1, 1)
    targets = np.zeros((labels.shape[0], n_out), dtype=dtype)
    targets[np.arange(labels.shape[0]), labels] = 1
    return targets


def as_targets(Y, n_rows, n_out, dtype, name="Y", check_finite=True):
    """Y as a C-contiguous (n_rows, n_out) array of dtype (check_finite: as in as_input).

    Accepted: a (n_rows, n_out) target matrix; 1-D integer labels (one-hot encoded when
    n_out > 1); for n_out == 1, any 1-D vector is a column of targets.
    """
    array = _as_numeric_array(Y, name)
    if array.ndim == 1:
        if n_out == 1:
            array = array.reshape(-1, 1)
        elif array.dtype.kind in "biu":
            return one_hot(as_labels(array, n_rows, n_out, name), n_out, dtype)
        else:
            raise ValueError(
                f"{name} is 1-D with dtype {array.dtype} but the network has {n_out} outputs: "
                f"pass a target matrix of shape ({n_rows}, {n_out}) or integer class labels"
            )
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be of shape ({n_rows}, {n_out}) or 1-D integer labels; "
            f"got shape {array.shape}"
        )
    if array.shape != (n_rows, n_out):
        raise ValueError(
            f"{name} must have shape ({n_rows}, {n_out}) to match X's {n_rows} rows and "
            f"the network's {n_out} outputs; got shape {array.shape}"
        )
    array = np.ascontiguousarray(array, dtype=dtype)
    if check_finite:
        check_finite_array(array, name)
    return array


def as_parameter(value, shape, dtype, name):
    """A weight or bias array for assignment: exact shape, finite, converted to dtype."""
    array = _as_numeric_array(value, name)
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)}; got shape {array.shape}"
        )
    array = np.ascontiguousarray(array, dtype=dtype)
    check_finite_array(array, name)
    return array


def as_parameter_list(values, shapes, dtype, name):
    if isinstance(values, np.ndarray) or not hasattr(values, "__len__"):
        raise TypeError(
            f"{name} must be a list of {len(shapes)} arrays; got {type(values).__name__}"
        )
    if len(values) != len(shapes):
        raise ValueError(
            f"{name} must be a list of {len(shapes)} arrays (one per layer); got {len(values)}"
        )
    return [
        as_parameter(value, shape, dtype, f"{name}[{index}]")
        for index, (value, shape) in enumerate(zip(values, shapes))
    ]


def check_sizes(sizes):
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"sizes must be a list of layer widths like [784, 30, 10]; got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least an input and an output width, e.g. [784, 30, 10]; "
            f"got {list(sizes)!r}"
        )
    return [check_positive_int(size, f"sizes[{index}]") for index, size in enumerate(sizes)]


# The instance made for each name, kept: the classes are frozen dataclasses (values), and a
# fit call otherwise built two of them each time.
_INSTANCES_BY_NAME = {}


def resolve_named(value, base, table, what):
    """An instance of one of ``table``'s classes from its name or as given (e.g. optimizers)."""
    if isinstance(value, base) and type(value) is not base:
        return value
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"unknown {what} {value!r}; expected one of {tuple(table)}")
        instance = _INSTANCES_BY_NAME.get((what, value))
        if instance is None:
            instance = _INSTANCES_BY_NAME[(what, value)] = table[value]()
        return instance
    raise TypeError(
        f"{what} must be a name {tuple(table)} or a deltaprop.{what}s object; got {value!r}"
    )
