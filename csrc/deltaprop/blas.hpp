// The one place that calls GEMM. The core links no BLAS: each binding hands it SciPy's
// sgemm/dgemm (scipy.linalg.cython_blas, Fortran calling convention) once at import, so the
// wheel shares the OpenBLAS SciPy already loaded.
#pragma once

#include <atomic>
#include <climits>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace deltaprop::blas {

using sgemm_fn = void (*)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                          float*, float*, int*);
using dgemm_fn = void (*)(char*, char*, int*, int*, int*, double*, double*, int*, double*,
                          int*, double*, double*, int*);

// One pair per loaded module (each extension registers its own at import). Atomic: the
// Python side may switch the BLAS (deltaprop.set_blas) while another thread trains without
// the GIL; each product then calls one library or the other, both kept loaded.
inline std::atomic<sgemm_fn> registered_sgemm{nullptr};
inline std::atomic<dgemm_fn> registered_dgemm{nullptr};

inline void set_gemm(sgemm_fn sgemm, dgemm_fn dgemm) {
    if (sgemm == nullptr || dgemm == nullptr)
        throw std::invalid_argument("set_gemm: sgemm and dgemm must both be non-null");
    registered_sgemm.store(sgemm, std::memory_order_release);
    registered_dgemm.store(dgemm, std::memory_order_release);
}

inline int as_blas_int(std::size_t value, const char* what) {
    if (value > static_cast<std::size_t>(INT_MAX))
        throw std::invalid_argument(std::string("matrix dimension ") + what + " = " +
                                    std::to_string(value) + " exceeds the BLAS limit of " +
                                    std::to_string(INT_MAX));
    return static_cast<int>(value);
}

template <class T>
void fortran_gemm(char* ta, char* tb, int* m, int* n, int* k, T* alpha, T* a, int* lda, T* b,
                  int* ldb, T* beta, T* c, int* ldc) {
    if constexpr (sizeof(T) == sizeof(float)) {
        const sgemm_fn sgemm = registered_sgemm.load(std::memory_order_acquire);
        if (sgemm == nullptr) throw std::logic_error("deltaprop: no sgemm registered");
        sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
        const dgemm_fn dgemm = registered_dgemm.load(std::memory_order_acquire);
        if (dgemm == nullptr) throw std::logic_error("deltaprop: no dgemm registered");
        dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

// Products of at most this many multiply-adds (m * n * k) run in small_gemm below instead of
// the BLAS, whose per-call overhead dominates there (see benchmarks/README.md). Adjustable
// so that the tests can drive either path.
inline std::size_t small_product_limit = 256;

// Row-major C = alpha * op(A) op(B) + beta * C by plain loops, each ordered so that the
// innermost loop runs along contiguous rows:
//   C[i,j] = beta C[i,j] + alpha sum_p op(A)[i,p] op(B)[p,j]
template <class T>
void small_gemm(bool transpose_a, bool transpose_b, std::size_t m, std::size_t n, std::size_t k,
                T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
                std::size_t ldc) {
    for (std::size_t i = 0; i < m; ++i) {  // BLAS semantics: beta = 0 ignores what C held
        T* ci = c + i * ldc;
        for (std::size_t j = 0; j < n; ++j) ci[j] = beta == T(0) ? T(0) : beta * ci[j];
    }
    if (!transpose_b) {  // C[i,:] += alpha op(A)[i,p] B[p,:]
        for (std::size_t i = 0; i < m; ++i) {
            T* ci = c + i * ldc;
            for (std::size_t p = 0; p < k; ++p) {
                const T scaled = alpha * (transpose_a ? a[p * lda + i] : a[i * lda + p]);
                const T* bp = b + p * ldb;
                for (std::size_t j = 0; j < n; ++j) ci[j] += scaled * bp[j];
            }
        }
    } else {  // C[i,j] += alpha op(A)[i,:] . B[j,:]
        for (std::size_t i = 0; i < m; ++i) {
            T* ci = c + i * ldc;
            for (std::size_t j = 0; j < n; ++j) {
                const T* bj = b + j * ldb;
                T sum = 0;
                if (transpose_a) {
                    for (std::size_t p = 0; p < k; ++p) sum += a[p * lda + i] * bj[p];
                } else {
                    const T* ai = a + i * lda;
                    // A dot product: let the compiler split the sum into vector lanes.
#pragma omp simd reduction(+ : sum)
                    for (std::size_t p = 0; p < k; ++p) sum += ai[p] * bj[p];
                }
                ci[j] += alpha * sum;
            }
        }
    }
}

// Row-major C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C.
// A row-major matrix is its own transpose in column-major order, so the BLAS computes
// C^T = op(B)^T op(A)^T with the operands swapped.
template <class T>
void gemm(bool transpose_a, bool transpose_b, std::size_t m, std::size_t n, std::size_t k,
          T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
          std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (m * n * k <= small_product_limit) {
        small_gemm<T>(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int m_ = as_blas_int(m, "m"), n_ = as_blas_int(n, "n"), k_ = as_blas_int(k, "k");
    int lda_ = as_blas_int(lda > 0 ? lda : 1, "lda");
    int ldb_ = as_blas_int(ldb > 0 ? ldb : 1, "ldb");
    int ldc_ = as_blas_int(ldc, "ldc");
    char ta = transpose_a ? 'T' : 'N';
    char tb = transpose_b ? 'T' : 'N';
    fortran_gemm<T>(&tb, &ta, &n_, &m_, &k_, &alpha, const_cast<T*>(b), &ldb_, const_cast<T*>(a),
                    &lda_, &beta, c, &ldc_);
}

}  // namespace deltaprop::blas
