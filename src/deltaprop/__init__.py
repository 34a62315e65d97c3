"""deltaprop: backpropagation for fully connected networks, with its hot path in C++.

Rows are samples; a layer's W has shape (n_out, n_in); costs are averaged over the batch.
"""

from ._names import ACTIVATIONS, LOSSES
from ._results import History, Trace
from .layer import Layer
from .network import Network
from . import datasets, initializers, optimizers, reference, schedules

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "LOSSES", "History", "Layer", "Network", "Trace",
    "datasets", "initializers", "optimizers", "reference", "schedules", "__version__",
]
