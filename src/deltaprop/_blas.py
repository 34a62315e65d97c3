"""Which BLAS the C++ core multiplies its large matrices with.

The core links no BLAS of its own; each binding hands it ``sgemm``/``dgemm``. By default
those are SciPy's (its bundled OpenBLAS, through ``scipy.linalg.cython_blas``). Where Intel's
MKL is installed (``pip install "deltaprop[mkl]"``, x86-64) its GEMM is used instead: on this
project's development machine it ran the 784-1024-1024-10 step's products 1.27x faster than
SciPy's OpenBLAS 0.3.30, at the speed PyTorch's CPU build gets from it
(``benchmarks/README.md``). Only the large-batch path and ``predict`` call the BLAS; batches
of up to 128 rows use deltaprop's own kernels whichever is chosen.

Chosen at import by the environment variable ``DELTAPROP_BLAS`` (``auto``, the default: MKL
if installed, else SciPy; ``scipy``; ``mkl``), and at run time by :func:`set_blas`. The
thread count is the BLAS's own: ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` or threadpoolctl.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import threading
import warnings

from . import _engine, _kernels

__all__ = ["get_blas", "set_blas", "BLAS_CHOICES"]

BLAS_CHOICES = ("auto", "scipy", "mkl")

_MODULES = (_engine, _kernels)
_lock = threading.Lock()
_in_use = "scipy"  # what the bindings registered at import
# Loaded libraries stay loaded (the core holds pointers into them) and are loaded once.
_libraries: dict[str, ctypes.CDLL] = {}


def _mkl_runtime_path() -> str | None:
    """The path of MKL's single dynamic library (mkl_rt) in the 'mkl' distribution, if any."""
    try:
        files = importlib.metadata.distribution("mkl").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        name = file.name.lower()
        if name.startswith(("libmkl_rt.so", "libmkl_rt.dylib", "mkl_rt")) and not name.endswith(
            (".lib", ".a")
        ):
            return str(file.locate())
    return None


def _mkl_gemm_addresses() -> tuple[int, int]:
    if "mkl" not in _libraries:
        path = _mkl_runtime_path()
        if path is None:
            raise ImportError(
                "the 'mkl' BLAS was asked for, but Intel's MKL is not installed in this "
                "environment (no 'mkl' distribution with an mkl_rt library); install it with "
                "pip install \"deltaprop[mkl]\", or choose 'scipy'"
            )
        _libraries["mkl"] = ctypes.CDLL(path)
    library = _libraries["mkl"]
    for s_name, d_name in (("sgemm_", "dgemm_"), ("sgemm", "dgemm"), ("SGEMM", "DGEMM")):
        try:
            s_routine, d_routine = getattr(library, s_name), getattr(library, d_name)
        except AttributeError:
            continue
        return (ctypes.cast(s_routine, ctypes.c_void_p).value,
                ctypes.cast(d_routine, ctypes.c_void_p).value)
    raise ImportError(f"MKL's library {library._name} exports no sgemm_/dgemm_")


def get_blas() -> str:
    """The BLAS the core multiplies with now: ``'scipy'`` or ``'mkl'``."""
    return _in_use


def set_blas(name: str = "auto") -> str:
    """Multiply the large products with ``name``'s GEMM: ``'scipy'`` (SciPy's OpenBLAS),
    ``'mkl'`` (Intel's MKL, from ``pip install "deltaprop[mkl]"``) or ``'auto'`` (MKL where
    installed, else SciPy). Returns the name of the previous one. Takes effect for every
    network, from the next product on.

    Raises ValueError for another name and ImportError when MKL is asked for by name and is
    not installed (``'auto'`` then falls back to SciPy, with a warning if MKL is installed
    but cannot be loaded).
    """
    global _in_use
    if not isinstance(name, str) or name not in BLAS_CHOICES:
        raise ValueError(
            f"unknown BLAS {name!r}; expected one of {', '.join(map(repr, BLAS_CHOICES))}"
        )
    with _lock:
        previous = _in_use
        if name == "auto":
            name = "scipy"
            if _mkl_runtime_path() is not None:
                try:
                    addresses = _mkl_gemm_addresses()
                    name = "mkl"
                except (OSError, ImportError) as error:  # installed, not loadable: keep SciPy's
                    warnings.warn(f"deltaprop: MKL is installed but could not be loaded "
                                  f"({error}); using SciPy's BLAS", RuntimeWarning, stacklevel=2)
        elif name == "mkl":
            addresses = _mkl_gemm_addresses()
        for module in _MODULES:
            if name == "mkl":
                module._set_gemm(*addresses)
            else:
                module._use_scipy_gemm()
        _in_use = name
    return previous


def _choose_at_import() -> None:
    choice = os.environ.get("DELTAPROP_BLAS", "auto").strip().lower() or "auto"
    if choice not in BLAS_CHOICES:
        raise ValueError(
            f"the environment variable DELTAPROP_BLAS is {os.environ['DELTAPROP_BLAS']!r}; "
            f"expected one of {', '.join(BLAS_CHOICES)} (or unset, which means auto)"
        )
    set_blas(choice)
