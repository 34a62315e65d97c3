# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Stateless per-layer kernels of the C++ core over typed memoryviews, float32 and float64.

Every function writes into output arrays the caller allocated (C-contiguous, the same dtype
as the inputs; a mismatch is refused with TypeError/ValueError, never copied), runs without
the GIL, and does no math of its own: the math is in csrc/deltaprop.
Activation and loss codes are those of ``deltaprop._names``.
"""

from scipy.linalg.cython_blas cimport dgemm, sgemm


ctypedef fused floating:
    float
    double

def _use_scipy_gemm():
    """Multiply with SciPy's BLAS (the default)."""
    set_gemm(sgemm, dgemm)


# Share SciPy's BLAS with the core (the one GEMM seam, csrc/deltaprop/blas.hpp).
_use_scipy_gemm()


def _set_gemm(size_t sgemm_address, size_t dgemm_address):
    """Hand the core another BLAS's sgemm_/dgemm_ (Fortran interface, 32-bit integers), as
    addresses; deltaprop.set_blas calls it. The library must stay loaded."""
    set_gemm(<sgemm_fn>sgemm_address, <dgemm_fn>dgemm_address)


def _set_small_product_limit(size_t limit):
    """Products of at most ``limit`` multiply-adds use the plain-loop kernel, larger ones the
    BLAS (for tests and benchmarks); returns the previous limit."""
    global small_product_limit
    previous = small_product_limit
    small_product_limit = limit
    return previous


def _set_small_batch_kernels(str name):
    """Select the small-batch kernels ('auto', 'off', 'generic', 'avx2', 'avx512'; 'off'
    sends every product to the BLAS), for tests and benchmarks; returns the previous name."""
    return select_isa_by_name(name.encode()).decode()


cdef inline MatrixView[float] matrix_f(const float[:, ::1] a) noexcept nogil:
    return MatrixView[float](<float*>&a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL,
                             a.shape[0], a.shape[1])


cdef inline MatrixView[double] matrix_d(const double[:, ::1] a) noexcept nogil:
    return MatrixView[double](<double*>&a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL,
                              a.shape[0], a.shape[1])


cdef inline VectorView[float] vector_f(const float[::1] a) noexcept nogil:
    return VectorView[float](<float*>&a[0] if a.shape[0] > 0 else NULL, a.shape[0])


cdef inline VectorView[double] vector_d(const double[::1] a) noexcept nogil:
    return VectorView[double](<double*>&a[0] if a.shape[0] > 0 else NULL, a.shape[0])


def forward(int activation, const floating[:, ::1] A_prev, const floating[:, ::1] W,
            const floating[::1] b, floating[:, ::1] Z, floating[:, ::1] A):
    """Z = A_prev @ W.T + b, A = f(Z).

    A_prev : (m, n_in); W : (n_out, n_in); b : (n_out,); Z, A : (m, n_out), written.
    """
    cdef Activation f = activation_from_code(activation)
    with nogil:
        if floating is float:
            dense_forward_f(f, matrix_f(A_prev), matrix_f(W), vector_f(b), matrix_f(Z), matrix_f(A))
        else:
            dense_forward_d(f, matrix_d(A_prev), matrix_d(W), vector_d(b), matrix_d(Z), matrix_d(A))


def output_error(int activation, int loss, const floating[:, ::1] Z, const floating[:, ::1] A,
                 const floating[:, ::1] Y, floating[:, ::1] D):
    """BP1: D = dC/dA (.) f'(Z) (fused A - Y for sigmoid/BCE and softmax/CCE).

    Z, A, Y : (m, n_out); D : (m, n_out), written.
    """
    cdef Activation f = activation_from_code(activation)
    cdef Loss c = loss_from_code(loss)
    with nogil:
        if floating is float:
            output_error_f(f, c, matrix_f(Z), matrix_f(A), matrix_f(Y), matrix_f(D))
        else:
            output_error_d(f, c, matrix_d(Z), matrix_d(A), matrix_d(Y), matrix_d(D))


def loss_sum(int loss, const floating[:, ::1] Z, const floating[:, ::1] A,
             const floating[:, ::1] Y):
    """Sum over the rows of the per-sample cost C(A, Y) (divide by m for the mean).

    Z, A, Y : (m, n_out).
    """
    cdef Loss c = loss_from_code(loss)
    cdef double total
    with nogil:
        if floating is float:
            total = loss_sum_f(c, matrix_f(Z), matrix_f(A), matrix_f(Y))
        else:
            total = loss_sum_d(c, matrix_d(Z), matrix_d(A), matrix_d(Y))
    return total


def delta(int activation, const floating[:, ::1] D_next, const floating[:, ::1] W_next,
          const floating[:, ::1] Z, const floating[:, ::1] A, floating[:, ::1] D):
    """BP2: D = (D_next @ W_next) (.) f'(Z), f being this layer's activation.

    D_next : (m, n_next); W_next : (n_next, n); Z, A : (m, n); D : (m, n), written.
    """
    cdef Activation f = activation_from_code(activation)
    with nogil:
        if floating is float:
            dense_delta_f(f, matrix_f(D_next), matrix_f(W_next), matrix_f(Z), matrix_f(A), matrix_f(D))
        else:
            dense_delta_d(f, matrix_d(D_next), matrix_d(W_next), matrix_d(Z), matrix_d(A), matrix_d(D))


def weight_gradient(const floating[:, ::1] D, const floating[:, ::1] A_prev, double scale,
                    double beta, floating[:, ::1] G):
    """BP4: G = scale * D.T @ A_prev + beta * G (sum of the outer products delta a^T).

    D : (m, n_out); A_prev : (m, n_in); G : (n_out, n_in), updated.
    """
    with nogil:
        if floating is float:
            dense_weight_gradient_f(matrix_f(D), matrix_f(A_prev), <float>scale, <float>beta, matrix_f(G))
        else:
            dense_weight_gradient_d(matrix_d(D), matrix_d(A_prev), scale, beta, matrix_d(G))


def bias_gradient(const floating[:, ::1] D, double scale, floating[::1] g):
    """BP3: g = scale * D.sum(axis=0).

    D : (m, n_out); g : (n_out,), written.
    """
    with nogil:
        if floating is float:
            dense_bias_gradient_f(matrix_f(D), <float>scale, vector_f(g))
        else:
            dense_bias_gradient_d(matrix_d(D), scale, vector_d(g))
