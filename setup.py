"""Builds the two extensions over the one C++ core in csrc/.

Portable flags by default; DELTAPROP_NATIVE=1 adds -march=native for a local build.
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from pybind11.setup_helpers import Pybind11Extension
from setuptools import Extension, setup

CSRC = "csrc"
HEADERS = sorted(str(p) for p in Path(CSRC, "deltaprop").glob("*.hpp"))

# -fopenmp-simd only honours `#pragma omp simd` (vectorized reductions); no OpenMP runtime.
# -fno-trapping-math: nothing here enables floating-point traps, and without it GCC will not
# turn the selects of vmath.hpp's e^x into blends for AVX2 and SSE2 (2.5x slower there);
# values are unchanged, only the sticky status flags may differ.
extra_compile_args = ["-O3", "-fopenmp-simd", "-fno-trapping-math"]
if os.environ.get("DELTAPROP_NATIVE") == "1":
    extra_compile_args.append("-march=native")

engine = Pybind11Extension(
    "deltaprop._engine",
    sorted(["src/deltaprop/_engine.cpp", "csrc/deltaprop/network.cpp"]),
    include_dirs=[CSRC],
    depends=HEADERS,
    cxx_std=17,
    extra_compile_args=extra_compile_args,
)

kernels = Extension(
    "deltaprop._kernels",
    ["src/deltaprop/_kernels.pyx"],
    include_dirs=[CSRC],
    depends=HEADERS,
    language="c++",
    extra_compile_args=["-std=c++17", *extra_compile_args],
)

setup(
    ext_modules=[engine, *cythonize([kernels], language_level=3)],
)
