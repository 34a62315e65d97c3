"""The BLAS the core multiplies with (deltaprop.set_blas / DELTAPROP_BLAS): SciPy's always,
Intel's MKL where the 'mkl' distribution is installed (pip install "deltaprop[mkl]"). Training
and predict on the BLAS path agree with the reference whichever is in use."""

import os
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import _blas, _engine, _kernels, reference

from helpers import DTYPES, assert_same, assert_same_list, build_pair, make_inputs, make_targets

MKL_INSTALLED = _blas._mkl_runtime_path() is not None
BACKENDS = ["scipy", pytest.param("mkl", marks=pytest.mark.skipif(
    not MKL_INSTALLED, reason="Intel's MKL is not installed (pip install 'deltaprop[mkl]')"))]


@pytest.fixture
def blas_path():
    """Every product through the BLAS: small-batch kernels off, no plain-loop products."""
    modules = (_engine, _kernels)
    limits = [module._set_small_product_limit(0) for module in modules]
    kernel_sets = [module._set_small_batch_kernels("off") for module in modules]
    previous_blas = dp.get_blas()
    yield
    dp.set_blas(previous_blas)
    for module, limit, kernel_set in zip(modules, limits, kernel_sets):
        module._set_small_product_limit(limit)
        module._set_small_batch_kernels(kernel_set)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("blas", BACKENDS)
def test_training_and_predict_match_reference(blas, dtype, blas_path):
    dp.set_blas(blas)
    assert dp.get_blas() == blas
    sizes = [37, 19, 11, 4]
    net, ref = build_pair(sizes, "tanh", "softmax", "categorical_crossentropy", dtype)
    rng = np.random.default_rng(7)
    X = make_inputs(rng, 300, sizes[0], dtype)
    Y = make_targets(rng, "categorical_crossentropy", 300, sizes[-1], dtype)
    assert_same(net.predict(X), ref.predict(X), dtype)
    grad_b, grad_w = net.backprop(X[:64], Y[:64])
    ref_b, ref_w = ref.backprop(X[:64], Y[:64])
    assert_same_list(grad_w, ref_w, dtype)
    assert_same_list(grad_b, ref_b, dtype)
    kwargs = dict(epochs=2, batch_size=64, learning_rate=0.3, shuffle=True, seed=2)
    history = net.fit(X, Y, **kwargs)
    ref_history = ref.fit(X, Y, **kwargs)
    assert_same_list(net.weights, ref.weights, dtype)
    assert_same_list(net.biases, ref.biases, dtype)
    assert_same(np.asarray(history.loss, dtype), np.asarray(ref_history.loss, dtype))
    assert_same(net.predict(X), ref.predict(X), dtype)


@pytest.mark.parametrize("blas", BACKENDS)
def test_layer_kernels_use_the_chosen_blas(blas, blas_path):
    """The Cython kernels (dp.Layer) multiply through the same choice."""
    dp.set_blas(blas)
    layer = dp.Layer(23, 9, "sigmoid", dtype=np.float64, seed=0)
    A_prev = np.random.default_rng(0).uniform(-1, 1, (50, 23))
    Z, A = layer.forward(A_prev)
    assert_same(Z, A_prev @ layer.weights.T + layer.biases, np.float64)


def test_set_blas_returns_the_previous_choice(blas_path):
    first = dp.get_blas()
    assert first in ("scipy", "mkl")
    assert dp.set_blas("scipy") == first
    assert dp.get_blas() == "scipy"
    assert dp.set_blas("auto") == "scipy"
    assert dp.get_blas() == ("mkl" if MKL_INSTALLED else "scipy")


@pytest.mark.parametrize("name", ["openblas", "MKL", "", None, 3])
def test_set_blas_refuses_other_names(name, blas_path):
    before = dp.get_blas()
    with pytest.raises(ValueError, match=r"unknown BLAS .*expected one of 'auto', 'scipy', 'mkl'"):
        dp.set_blas(name)
    assert dp.get_blas() == before


@pytest.mark.skipif(MKL_INSTALLED, reason="MKL is installed here")
def test_mkl_without_mkl_says_how_to_install_it(blas_path):
    before = dp.get_blas()
    with pytest.raises(ImportError, match=r"(?s)MKL is not installed.*deltaprop\[mkl\]"):
        dp.set_blas("mkl")
    assert dp.get_blas() == before


def imported_blas(value):
    """get_blas() in a fresh interpreter with DELTAPROP_BLAS=value: (returncode, output)."""
    env = dict(os.environ, DELTAPROP_BLAS=value)
    result = subprocess.run(
        [sys.executable, "-c", "import deltaprop; print(deltaprop.get_blas())"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def test_environment_variable_chooses_at_import():
    assert imported_blas("scipy") == (0, "scipy")
    assert imported_blas("") == (0, "mkl" if MKL_INSTALLED else "scipy")  # empty: auto
    code, output = imported_blas("auto")
    assert (code, output) == (0, "mkl" if MKL_INSTALLED else "scipy")
    code, output = imported_blas("numpy")
    assert code != 0 and "DELTAPROP_BLAS is 'numpy'" in output and "auto, scipy, mkl" in output
    code, output = imported_blas("mkl")
    if MKL_INSTALLED:
        assert (code, output) == (0, "mkl")
    else:
        assert code != 0 and "deltaprop[mkl]" in output


def test_mkl_that_cannot_be_loaded_is_an_import_error(tmp_path):
    broken = tmp_path / "libmkl_rt.so.2"
    broken.write_bytes(b"not a shared library")
    with pytest.raises(ImportError, match=r"MKL is installed but .*libmkl_rt\.so\.2 could not be loaded"):
        _blas._load_mkl(str(broken))


@pytest.mark.parametrize("name, is_runtime", [
    ("libmkl_rt.so.2", True), ("libmkl_rt.so", True), ("libmkl_rt.2.dylib", True),
    ("mkl_rt.2.dll", True), ("mkl_rt.lib", False), ("libmkl_rt.a", False),
    ("libmkl_core.so.2", False), ("libmkl_rt_extra.so", False),
])
def test_mkl_runtime_library_names(name, is_runtime):
    """The file of the 'mkl' distribution deltaprop loads, as each platform's wheel names it."""
    assert bool(_blas._MKL_RUNTIME.match(name)) is is_runtime
