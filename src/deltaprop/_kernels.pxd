# Declarations of the C++ core (csrc/deltaprop) used by the Cython kernels: the per-layer
# functions of dense.hpp, the output error of losses.hpp, the BLAS seam of blas.hpp and the
# small-batch kernels' selection in microkernels.hpp.
# Each is called with explicit float/double instantiations, all nogil, C++ exceptions
# (std::invalid_argument -> ValueError) translated by `except +`.
from libcpp.string cimport string


cdef extern from "deltaprop/view.hpp" namespace "deltaprop" nogil:
    cdef cppclass MatrixView[T]:
        MatrixView()
        MatrixView(T*, size_t, size_t)
    cdef cppclass VectorView[T]:
        VectorView()
        VectorView(T*, size_t)

cdef extern from "deltaprop/activations.hpp" namespace "deltaprop" nogil:
    cdef enum class Activation(int):
        pass
    Activation activation_from_code(int) except +

cdef extern from "deltaprop/losses.hpp" namespace "deltaprop" nogil:
    cdef enum class Loss(int):
        pass
    Loss loss_from_code(int) except +
    void output_error_f "deltaprop::output_error<float>"(
        Activation, Loss, MatrixView[float], MatrixView[float], MatrixView[float],
        MatrixView[float]) except +
    void output_error_d "deltaprop::output_error<double>"(
        Activation, Loss, MatrixView[double], MatrixView[double], MatrixView[double],
        MatrixView[double]) except +
    double loss_sum_f "deltaprop::loss_sum<float>"(
        Loss, MatrixView[float], MatrixView[float], MatrixView[float]) except +
    double loss_sum_d "deltaprop::loss_sum<double>"(
        Loss, MatrixView[double], MatrixView[double], MatrixView[double]) except +

cdef extern from "deltaprop/dense.hpp" namespace "deltaprop" nogil:
    void dense_forward_f "deltaprop::dense_forward<float>"(
        Activation, MatrixView[float], MatrixView[float], VectorView[float],
        MatrixView[float], MatrixView[float]) except +
    void dense_forward_d "deltaprop::dense_forward<double>"(
        Activation, MatrixView[double], MatrixView[double], VectorView[double],
        MatrixView[double], MatrixView[double]) except +
    void dense_delta_f "deltaprop::dense_delta<float>"(
        Activation, MatrixView[float], MatrixView[float], MatrixView[float],
        MatrixView[float], MatrixView[float]) except +
    void dense_delta_d "deltaprop::dense_delta<double>"(
        Activation, MatrixView[double], MatrixView[double], MatrixView[double],
        MatrixView[double], MatrixView[double]) except +
    # (returns the gradient's sum of squares when known, as std::optional: unused here)
    void dense_weight_gradient_f "deltaprop::dense_weight_gradient<float>"(
        MatrixView[float], MatrixView[float], float, float, MatrixView[float]) except +
    void dense_weight_gradient_d "deltaprop::dense_weight_gradient<double>"(
        MatrixView[double], MatrixView[double], double, double, MatrixView[double]) except +
    void dense_bias_gradient_f "deltaprop::dense_bias_gradient<float>"(
        MatrixView[float], float, VectorView[float]) except +
    void dense_bias_gradient_d "deltaprop::dense_bias_gradient<double>"(
        MatrixView[double], double, VectorView[double]) except +

cdef extern from "deltaprop/blas.hpp" namespace "deltaprop::blas" nogil:
    ctypedef void (*sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*, float*,
                              int*, float*, float*, int*) noexcept nogil
    ctypedef void (*dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*, double*,
                              int*, double*, double*, int*) noexcept nogil
    void set_gemm(sgemm_fn, dgemm_fn) except +
    size_t small_product_limit


cdef extern from "deltaprop/microkernels.hpp" namespace "deltaprop::micro" nogil:
    string select_isa_by_name(const string&) except +
