"""Which BLAS the C++ core multiplies its large matrices with.

The core links no BLAS of its own; each binding hands it ``sgemm``/``dgemm``. By default
those are SciPy's (its bundled OpenBLAS, through ``scipy.linalg.cython_blas``). Where Intel's
MKL is installed (``pip install "deltaprop[mkl]"``, x86-64) its GEMM is used instead: on this
project's development machine it ran the 784-1024-1024-10 step's products 1.27x faster than
SciPy's OpenBLAS 0.3.30, at the speed PyTorch's CPU build gets from it
(``benchmarks/README.md``). The BLAS takes every large product: training on batches of
more than 128 rows, ``predict``, and on smaller batches BP2's ``D W`` (the forward and
weight-gradient products of those run in deltaprop's own kernels whichever is chosen).

Chosen at import by the environment variable ``DELTAPROP_BLAS`` (``auto``, the default: MKL
if installed, else SciPy; ``scipy``; ``mkl``), and at run time by :func:`set_blas`. The
thread count is the BLAS's own: ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` or threadpoolctl.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import re
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


# MKL's single dynamic library as the 'mkl' wheels name it: libmkl_rt.so.2 (Linux),
# libmkl_rt.2.dylib (macOS), mkl_rt.2.dll (Windows), with or without the version.
_MKL_RUNTIME = re.compile(r"^(lib)?mkl_rt(\.\d+)*\.(so(\.\d+)*|dylib|dll)$")
_MKL_INTERFACE_LP64 = 0  # mkl_service.h: 32-bit integers, what the core passes


def _mkl_runtime_path() -> str | None:
    """The path of MKL's single dynamic library (mkl_rt) in the 'mkl' distribution, if any."""
    try:
        files = importlib.metadata.distribution("mkl").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if _MKL_RUNTIME.match(file.name.lower()):
            return str(file.locate())
    return None


def _load_mkl(path: str) -> ctypes.CDLL:
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise ImportError(f"Intel's MKL is installed but {path} could not be loaded: {error}") from error
    # The core passes 32-bit integers; MKL_INTERFACE_LAYER=ILP64 in the environment would
    # make mkl_rt read them as 64-bit. Setting the layer first overrides the variable.
    set_layer = getattr(library, "MKL_Set_Interface_Layer", None)
    if set_layer is not None and set_layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
        raise ImportError(
            "MKL could not be switched to its LP64 interface (32-bit integers), which deltaprop "
            "calls it with; was MKL already loaded with MKL_INTERFACE_LAYER=ILP64?"
        )
    return library


def _mkl_gemm_addresses() -> tuple[int, int]:
    if "mkl" not in _libraries:
        path = _mkl_runtime_path()
        if path is None:
            raise ImportError(
                "the 'mkl' BLAS was asked for, but Intel's MKL is not installed in this "
                "environment (no 'mkl' distribution with an mkl_rt library); install it with "
                "pip install \"deltaprop[mkl]\", or choose 'scipy'"
            )
        _libraries["mkl"] = _load_mkl(path)
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
                except ImportError as error:  # installed, not loadable: keep SciPy's
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
