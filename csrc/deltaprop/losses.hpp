// Losses, each next to its output error (BP1). Codes match deltaprop/_names.py.
// Per-sample costs; callers average over the rows of the batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "activations.hpp"
#include "view.hpp"

namespace deltaprop {

enum class Loss : int { quadratic = 0, binary_crossentropy = 1, categorical_crossentropy = 2, huber = 3 };

inline Loss loss_from_code(int code) {
    if (code < 0 || code > 3)
        throw std::invalid_argument("unknown loss code " + std::to_string(code) + "; expected 0..3");
    return static_cast<Loss>(code);
}

inline const char* activation_name(Activation f) {
    static const char* names[] = {"identity", "sigmoid", "tanh", "relu",
                                  "leaky_relu", "softmax", "elu", "softplus"};
    return names[static_cast<int>(f)];
}

// Cross-entropies are defined for one kind of output only; each pair has the exact fused
// output error D_L = A_L - Y.
inline void require_valid_pairing(Activation output, Loss loss) {
    if (loss == Loss::binary_crossentropy && output != Activation::sigmoid)
        throw std::invalid_argument(std::string("binary_crossentropy needs a sigmoid output; got ") +
                                    activation_name(output));
    if (loss == Loss::categorical_crossentropy && output != Activation::softmax)
        throw std::invalid_argument(
            std::string("categorical_crossentropy needs a softmax output; got ") +
            activation_name(output));
}

// BP1: D = dC/dA (.) f'(Z).
//   sigmoid + binary_crossentropy, softmax + categorical_crossentropy: D = A - Y (fused, exact).
//   quadratic: dC/dA = G = A - Y; huber: G = clip(A - Y, -1, 1); times f'(Z), or for softmax
//   its Jacobian-vector product D = A (.) (G - sum_j G_j A_j).
template <class T>
void output_error(Activation f, Loss loss, const MatrixView<const T>& Z,
                  const MatrixView<const T>& A, const MatrixView<const T>& Y,
                  const MatrixView<T>& D) {
    require_valid_pairing(f, loss);
    const std::size_t n = D.size();
    for (std::size_t i = 0; i < n; ++i) D.data[i] = A.data[i] - Y.data[i];
    if (loss == Loss::binary_crossentropy || loss == Loss::categorical_crossentropy) return;
    if (loss == Loss::huber)
        for (std::size_t i = 0; i < n; ++i) D.data[i] = std::clamp(D.data[i], T(-1), T(1));
    if (f == Activation::softmax) {
        for (std::size_t r = 0; r < D.rows; ++r) {
            const T* a = A.row(r);
            T* d = D.row(r);
            T g_dot_a = 0;
            for (std::size_t j = 0; j < D.cols; ++j) g_dot_a += d[j] * a[j];
            for (std::size_t j = 0; j < D.cols; ++j) d[j] = a[j] * (d[j] - g_dot_a);
        }
        return;
    }
    multiply_by_derivative(f, Z, A, D);
}

// Categorical cross-entropy summed over the rows, from the logits, in double:
// sum_j y_j (logsumexp(z) - z_j), logsumexp(z) = max z + ln sum_j e^(z_j - max z). The
// e^(z_j - max z) of as many whole rows as fit in a block of doubles go through the vectorized
// exp together (rows of 10 are too short to fill vectors one by one; libm's scalar exp took
// 1.0 us of a 10 x 10 batch, 2.5 us of 32 x 10); a longer row goes a block at a time.
template <class T>
double crossentropy_sum(const MatrixView<const T>& Z, const MatrixView<const T>& Y) {
    constexpr std::size_t block = 256;
    double shifted[block];
    const std::size_t cols = Z.cols;
    double total = 0;
    auto add_row = [&](std::size_t r, double top, double sum_exp) {
        const T* z = Z.row(r);
        const T* y = Y.row(r);
        const double log_sum_exp = top + std::log(sum_exp);
        for (std::size_t j = 0; j < cols; ++j) total += double(y[j]) * (log_sum_exp - z[j]);
    };
    if (cols == 0) return 0;
    if (cols <= block) {
        const std::size_t rows_per_block = block / cols;
        double tops[block];
        for (std::size_t first = 0; first < Z.rows; first += rows_per_block) {
            const std::size_t count = std::min(rows_per_block, Z.rows - first);
            for (std::size_t q = 0; q < count; ++q) {
                const T* z = Z.row(first + q);
                tops[q] = *std::max_element(z, z + cols);
                for (std::size_t j = 0; j < cols; ++j) shifted[q * cols + j] = double(z[j]) - tops[q];
            }
            vmath::map_array<vmath::Function::exp_nonpositive>(shifted, shifted, count * cols);
            for (std::size_t q = 0; q < count; ++q) {
                double sum_exp = 0;
                for (std::size_t j = 0; j < cols; ++j) sum_exp += shifted[q * cols + j];
                add_row(first + q, tops[q], sum_exp);
            }
        }
        return total;
    }
    for (std::size_t r = 0; r < Z.rows; ++r) {
        const T* z = Z.row(r);
        const double top = *std::max_element(z, z + cols);
        double sum_exp = 0;
        for (std::size_t start = 0; start < cols; start += block) {
            const std::size_t width = std::min(block, cols - start);
            for (std::size_t j = 0; j < width; ++j) shifted[j] = double(z[start + j]) - top;
            vmath::map_array<vmath::Function::exp_nonpositive>(shifted, shifted, width);
            for (std::size_t j = 0; j < width; ++j) sum_exp += shifted[j];
        }
        add_row(r, top, sum_exp);
    }
    return total;
}

// Sum over all rows of the per-sample cost; computed from Z where a log is involved, so no
// ln 0 can occur:
//   quadratic:                C = 1/2 sum_j (a_j - y_j)^2
//   binary_crossentropy:      C = sum_j max(z_j, 0) - y_j z_j + ln(1 + e^-|z_j|)
//   categorical_crossentropy: C = sum_j y_j (logsumexp(z) - z_j)
//   huber (delta 1):          C = sum_j r^2 / 2 if |r| <= 1 else |r| - 1/2, r = a_j - y_j
template <class T>
double loss_sum(Loss loss, const MatrixView<const T>& Z, const MatrixView<const T>& A,
                const MatrixView<const T>& Y) {
    double total = 0;
    const std::size_t n = Z.size();
    switch (loss) {
        case Loss::quadratic:
            for (std::size_t i = 0; i < n; ++i) {
                double diff = double(A.data[i]) - double(Y.data[i]);
                total += 0.5 * diff * diff;
            }
            break;
        case Loss::huber:
            for (std::size_t i = 0; i < n; ++i) {
                double r = std::abs(double(A.data[i]) - double(Y.data[i]));
                total += r <= 1.0 ? 0.5 * r * r : r - 0.5;
            }
            break;
        case Loss::binary_crossentropy:
            for (std::size_t i = 0; i < n; ++i) {
                double z = Z.data[i], y = Y.data[i];
                total += std::max(z, 0.0) - y * z + std::log1p(std::exp(-std::abs(z)));
            }
            break;
        case Loss::categorical_crossentropy:
            total = crossentropy_sum(Z, Y);
            break;
    }
    return total;
}

// Rows whose predicted class matches the target's: argmax for several outputs, a > 0.5 for one.
template <class T>
std::size_t count_correct(const MatrixView<const T>& A, const MatrixView<const T>& Y) {
    std::size_t correct = 0;
    for (std::size_t r = 0; r < A.rows; ++r) {
        const T* a = A.row(r);
        const T* y = Y.row(r);
        if (A.cols == 1) {
            correct += (a[0] > T(0.5)) == (y[0] > T(0.5));
        } else {
            correct += std::max_element(a, a + A.cols) - a == std::max_element(y, y + A.cols) - y;
        }
    }
    return correct;
}

}  // namespace deltaprop
