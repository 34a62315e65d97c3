"""Fixtures shared by the test modules."""

import pytest

from deltaprop import _engine, _kernels

MODULES = (_engine, _kernels)

# The ways the core multiplies matrices (csrc/deltaprop/blas.hpp, microkernels.hpp):
#   blas    every product in the BLAS;
#   loops   every product in the plain-loop kernel used for tiny products;
#   avx512, avx2, generic
#           the small-batch kernels (batches of up to 128 rows: the forward and weight-gradient
#           products, with the SGD step fused into the latter) in each instruction set, every
#           other product in the BLAS.
# Each entry: (small-product limit, small-batch kernel set).
PRODUCT_PATHS = {
    "blas": (0, "off"),
    "loops": (2**62, "off"),
    "avx512": (0, "avx512"),
    "avx2": (0, "avx2"),
    "generic": (0, "generic"),
}
KERNEL_SETS = ["generic", "avx2", "avx512"]


def supported(kernel_set):
    best = _engine._best_small_batch_kernels()
    if kernel_set == "off":
        return True
    if best == "off":  # a build without the kernels (a compiler without vector extensions)
        return False
    return KERNEL_SETS.index(kernel_set) <= KERNEL_SETS.index(best)


@pytest.fixture(params=sorted(PRODUCT_PATHS))
def product_path(request):
    """Runs the test once through each way of multiplying (skipping instruction sets this CPU
    lacks)."""
    limit, kernel_set = PRODUCT_PATHS[request.param]
    if not supported(kernel_set):
        pytest.skip(f"this CPU has no {kernel_set} (best: {_engine._best_small_batch_kernels()})")
    previous_limits = [module._set_small_product_limit(limit) for module in MODULES]
    previous_sets = [module._set_small_batch_kernels(kernel_set) for module in MODULES]
    yield request.param
    for module, limit, kernel_set in zip(MODULES, previous_limits, previous_sets):
        module._set_small_product_limit(limit)
        module._set_small_batch_kernels(kernel_set)
