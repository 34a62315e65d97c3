"""Fixtures shared by the test modules."""

import pytest

from deltaprop import _engine, _kernels

# The two ways the core multiplies matrices: the BLAS, or the plain-loop kernel that it uses
# for small products (csrc/deltaprop/blas.hpp). A limit of 0 sends every product to the
# BLAS; a huge one sends every product to the loops.
PRODUCT_LIMITS = {"blas": 0, "loops": 2**62}


@pytest.fixture(params=sorted(PRODUCT_LIMITS))
def product_path(request):
    """Runs the test once with every product in the BLAS and once in the loop kernel."""
    limit = PRODUCT_LIMITS[request.param]
    previous = [module._set_small_product_limit(limit) for module in (_engine, _kernels)]
    yield request.param
    for module, value in zip((_engine, _kernels), previous):
        module._set_small_product_limit(value)
