"""deltaprop: backpropagation for fully connected networks, with its hot path in C++.

Rows are samples; a layer's W has shape (n_out, n_in); costs are averaged over the batch.
"""

from ._blas import get_blas, set_blas
from ._blas import _choose_at_import as _choose_blas
from ._names import ACTIVATIONS, LOSSES
from ._results import History, Trace
from .layer import Layer
from .network import Network
from . import datasets, initializers, optimizers, reference, schedules

__version__ = "0.1.0"

_choose_blas()  # DELTAPROP_BLAS, by default MKL where installed (see deltaprop._blas)

__all__ = [
    "ACTIVATIONS", "LOSSES", "History", "Layer", "Network", "Trace",
    "datasets", "get_blas", "initializers", "optimizers", "reference", "schedules", "set_blas",
    "__version__",
]
