// One fully connected layer over a batch, rows are samples, W is (n_out, n_in):
// forward, delta recursion (BP2), bias gradient (BP3), weight gradient (BP4).
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "activations.hpp"
#include "blas.hpp"
#include "microkernels.hpp"
#include "view.hpp"

namespace deltaprop {

// Z = A_prev W^T + b ; A = f(Z).   Z[i,j] = b[j] + sum_k A_prev[i,k] W[j,k]
// Returns whether the small-batch kernel formed Z (else the BLAS did).
template <class T>
bool dense_forward(Activation f, const MatrixView<const T>& A_prev,
                   const MatrixView<const T>& W, const VectorView<const T>& b,
                   const MatrixView<T>& Z, const MatrixView<T>& A) {
    const std::size_t m = A_prev.rows, n_in = A_prev.cols, n_out = W.rows;
    require_shape(W, n_out, n_in, "W");
    require_size(b, n_out, "b");
    require_shape(Z, m, n_out, "Z");
    require_shape(A, m, n_out, "A");
    const bool small_batch = micro::takes(m);
    if (small_batch) {  // bias added in the kernel's epilogue
        micro::forward_product<T>(m, n_out, n_in, A_prev.data, n_in, W.data, n_in, b.data, Z.data,
                                  n_out);
    } else {
        for (std::size_t i = 0; i < m; ++i) std::copy(b.data, b.data + n_out, Z.row(i));
        blas::gemm<T>(false, true, m, n_out, n_in, T(1), A_prev.data, n_in, W.data, n_in, T(1),
                      Z.data, n_out);
    }
    activate<T>(f, MatrixView<const T>(Z.data, m, n_out), A);
    return small_batch;
}

// BP2: D = (D_next W_next) (.) f'(Z).   D[i,k] = f'(Z[i,k]) sum_j D_next[i,j] W_next[j,k]
template <class T>
void dense_delta(Activation f, const MatrixView<const T>& D_next, const MatrixView<const T>& W_next,
                 const MatrixView<const T>& Z, const MatrixView<const T>& A, const MatrixView<T>& D) {
    const std::size_t m = D_next.rows, n_next = D_next.cols, n = W_next.cols;
    require_shape(W_next, n_next, n, "W_next");
    require_shape(Z, m, n, "Z");
    require_shape(A, m, n, "A");
    require_shape(D, m, n, "D");
    blas::gemm<T>(false, false, m, n, n_next, T(1), D_next.data, n_next, W_next.data, n, T(0),
                  D.data, n);
    multiply_by_derivative<T>(f, Z, A, D);
}

// BP4, summed over the batch and scaled: G = scale * D^T A_prev + beta * G.
//   G[j,k] = beta G[j,k] + scale sum_i D[i,j] A_prev[i,k]   (the outer products delta a^T)
// With scale = 1/m, beta = 0 it is the gradient of the mean cost; with scale = -eta/m,
// beta = shrink and G = W it is the SGD update applied in place.
// Returns sum_jk (D^T A_prev)[j,k]^2 (unscaled) when the small-batch kernel formed the
// product, which sums the squares as it goes; the BLAS does not, and then nothing. That
// kernel also issues `prefetch`'s lines as it goes.
template <class T>
std::optional<double> dense_weight_gradient(const MatrixView<const T>& D,
                                            const MatrixView<const T>& A_prev, T scale, T beta,
                                            const MatrixView<T>& G,
                                            micro::RowPrefetch* prefetch = nullptr) {
    const std::size_t m = D.rows, n_out = D.cols, n_in = A_prev.cols;
    require_shape(A_prev, m, n_in, "A_prev");
    require_shape(G, n_out, n_in, "grad_W");
    if (micro::takes(m))
        return micro::gradient_product<T>(m, n_out, n_in, D.data, n_out, A_prev.data, n_in, scale,
                                          beta, G.data, n_in, prefetch);
    blas::gemm<T>(true, false, n_out, n_in, m, scale, D.data, n_out, A_prev.data, n_in, beta,
                  G.data, n_in);
    return std::nullopt;
}

// dense_forward for a layer whose W is held as a transposed panel: its first np rows as P
// (n_in x np, P[p,j] = W[j,p]; see micro::panel_columns), the rest as rows np.. of W.
// Through the small-batch kernels, which is what makes Z (for train_epoch's NaN check).
template <class T>
void dense_forward_panel(Activation f, const MatrixView<const T>& A_prev, const T* P,
                         std::size_t np, const MatrixView<const T>& W,
                         const VectorView<const T>& b, const MatrixView<T>& Z,
                         const MatrixView<T>& A) {
    const std::size_t m = A_prev.rows, n_in = A_prev.cols, n_out = W.rows;
    require_shape(W, n_out, n_in, "W");
    require_size(b, n_out, "b");
    require_shape(Z, m, n_out, "Z");
    require_shape(A, m, n_out, "A");
    micro::panel_forward_product<T>(m, np, n_in, A_prev.data, n_in, P, np, b.data, Z.data, n_out);
    if (np < n_out)
        micro::forward_product<T>(m, n_out - np, n_in, A_prev.data, n_in, W.row(np), n_in,
                                  b.data + np, Z.data + np, n_out);
    activate<T>(f, MatrixView<const T>(Z.data, m, n_out), A);
}

// dense_weight_gradient's SGD step, W <- beta W + scale D^T A_prev, for W held as a panel
// (see dense_forward_panel): P <- beta P + scale A_prev^T D[:, :np], the same sums as W's
// rows would get, in the same order (micro::gradient_product with D and A_prev in each
// other's place), so the same values. Returns sum_jk (D^T A_prev)[j,k]^2 (unscaled).
// (D's rows of n_out values mostly start mid-line; copied to aligned rows first they gave
// 784-100-10's epoch at batch 32 no faster.)
template <class T>
double dense_weight_step_panel(const MatrixView<const T>& D, const MatrixView<const T>& A_prev,
                               T scale, T beta, T* P, std::size_t np, const MatrixView<T>& W,
                               micro::RowPrefetch* prefetch) {
    const std::size_t m = D.rows, n_out = D.cols, n_in = A_prev.cols;
    require_shape(A_prev, m, n_in, "A_prev");
    require_shape(W, n_out, n_in, "W");
    double squares = micro::gradient_product<T>(m, n_in, np, A_prev.data, n_in, D.data, n_out,
                                                scale, beta, P, np, prefetch);
    if (np < n_out)
        squares += micro::gradient_product<T>(m, n_out - np, n_in, D.data + np, n_out,
                                              A_prev.data, n_in, scale, beta, W.row(np), n_in);
    return squares;
}

// BP3, summed over the batch and scaled: g = scale * sum_i D[i, :].
template <class T>
void dense_bias_gradient(const MatrixView<const T>& D, T scale, const VectorView<T>& g) {
    const std::size_t m = D.rows, n_out = D.cols;
    require_size(g, n_out, "grad_b");
    micro::with_selected_isa([&]() DELTAPROP_INLINE_LAMBDA {
        T* const sums = g.data;
        std::fill(sums, sums + n_out, T(0));
        for (std::size_t i = 0; i < m; ++i) {
            const T* d = D.row(i);
            // D and g never overlap: no run-time alias check per row of 100 values (one cost
            // as much as the row's additions).
#pragma omp simd
            for (std::size_t j = 0; j < n_out; ++j) sums[j] += d[j];
        }
        for (std::size_t j = 0; j < n_out; ++j) sums[j] *= scale;
    });
}

// sum_i x_i^2 in double, with independent partial sums so the loop vectorizes. For float,
// the squares are summed in float within blocks of 256 (no per-element conversion: 1.8x
// faster on 78,500 weights) and the blocks in double, so the result stays accurate.
template <class T>
double sum_of_squares(const T* x, std::size_t n) {
    double total = 0;
    std::size_t i = 0;
    if constexpr (std::is_same_v<T, float>) {
        constexpr std::size_t lanes = 16, block = 256;
        for (; i + block <= n; i += block) {
            float partial[lanes] = {};
            for (std::size_t j = i; j < i + block; j += lanes)
                for (std::size_t k = 0; k < lanes; ++k) partial[k] += x[j + k] * x[j + k];
            for (float p : partial) total += double(p);
        }
    } else {
        constexpr std::size_t lanes = 8;
        double partial[lanes] = {};
        for (; i + lanes <= n; i += lanes)
            for (std::size_t k = 0; k < lanes; ++k) partial[k] += double(x[i + k]) * double(x[i + k]);
        for (double p : partial) total += p;
    }
    for (; i < n; ++i) total += double(x[i]) * double(x[i]);
    return total;
}

// Plain SGD, p <- p - eta g over n values, in one pass that also returns sum_i g_i^2 (in
// double; float's squares summed in float within blocks of 256, as sum_of_squares does).
// For the BLAS path's step, where the gradient is in memory and the History wants its norm:
// the squares come free with the update's reads of g. On P3's 1.86M parameters (float32)
// 0.55-0.63 ms against 0.85-1.0 for sum_of_squares and the optimizer's loop, in cache; in
// P3's epoch, where the GEMMs have pushed W and g out, 0.91-0.94x the time (native, MKL,
// alternating). Vectorized for the kernels' instruction set; sgd_step's BLAS path updates
// through this too, so that its values match an epoch's bit for bit.
template <class T>
double sgd_update_and_squares(T* p, const T* g, std::size_t n, T eta) {
    double result = 0;
    micro::with_selected_isa([&]() DELTAPROP_INLINE_LAMBDA {
        // Locals, not the captured references: the stores to p could otherwise alias them
        // and have every value reloaded (2.4 ms against 1.1 for the two passes).
        T* const params = p;
        const T* const grads = g;
        const T rate = eta;
        constexpr std::size_t block = std::is_same_v<T, float> ? 256 : 64;
        double total = 0;
        std::size_t i = 0;
        for (; i + block <= n; i += block) {
            T partial = 0;
            // p and g never overlap (separate buffers); no alias check per block.
#pragma omp simd reduction(+ : partial)
            for (std::size_t j = i; j < i + block; ++j) {
                partial += grads[j] * grads[j];
                params[j] -= rate * grads[j];
            }
            total += double(partial);
        }
        for (; i < n; ++i) {
            total += double(grads[i]) * double(grads[i]);
            params[i] -= rate * grads[i];
        }
        result = total;
    });
    return result;
}

}  // namespace deltaprop
