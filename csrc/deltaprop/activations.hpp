// Activations, each forward rule next to its derivative. Codes match deltaprop/_names.py.
// Every derivative is written in terms of z and/or a = f(z), whichever is cheaper and stable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "microkernels.hpp"
#include "view.hpp"
#include "vmath.hpp"

namespace deltaprop {

enum class Activation : int {
    identity = 0, sigmoid = 1, tanh = 2, relu = 3, leaky_relu = 4, softmax = 5, elu = 6, softplus = 7
};

inline constexpr double leaky_relu_slope = 0.01;  // PyTorch's default

inline Activation activation_from_code(int code) {
    if (code < 0 || code > 7)
        throw std::invalid_argument("unknown activation code " + std::to_string(code) +
                                    "; expected 0..7");
    return static_cast<Activation>(code);
}

// sigmoid(z) = 1 / (1 + e^-z), through e^-|z| so nothing overflows for any |z|.
template <class T>
inline T sigmoid(T z) {
    T e = std::exp(-std::abs(z));
    return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// A = f(Z), elementwise, or row-wise for softmax: a_j = e^(z_j - max z) / sum_k e^(z_k - max z).
template <class T>
void activate(Activation f, const MatrixView<const T>& Z, const MatrixView<T>& A) {
    const std::size_t n = Z.size();
    const T* z = Z.data;
    T* a = A.data;
    switch (f) {
        case Activation::identity:
            if (a != z) std::copy(z, z + n, a);
            break;
        case Activation::sigmoid:  // vectorized, see vmath.hpp
            vmath::map_array<vmath::Function::sigmoid>(z, a, n);
            break;
        case Activation::tanh:
            vmath::map_array<vmath::Function::tanh>(z, a, n);
            break;
        case Activation::relu:
            for (std::size_t i = 0; i < n; ++i) a[i] = z[i] > T(0) ? z[i] : T(0);
            break;
        case Activation::leaky_relu:
            for (std::size_t i = 0; i < n; ++i)
                a[i] = z[i] > T(0) ? z[i] : T(leaky_relu_slope) * z[i];
            break;
        case Activation::elu:  // alpha = 1
            for (std::size_t i = 0; i < n; ++i) a[i] = z[i] > T(0) ? z[i] : std::expm1(z[i]);
            break;
        case Activation::softplus:  // ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|)
            for (std::size_t i = 0; i < n; ++i)
                a[i] = std::max(z[i], T(0)) + std::log1p(std::exp(-std::abs(z[i])));
            break;
        case Activation::softmax:
            // z - max z for every row first, then e^x over the whole matrix in one vectorized
            // pass (rows of 10 outputs are too short to fill vectors one at a time; libm's
            // scalar exp was 430 ns of a 10 x 10 softmax), then each row divided by its sum.
            for (std::size_t r = 0; r < Z.rows; ++r) {
                const T* zr = Z.row(r);
                T* ar = A.row(r);
                const T top = *std::max_element(zr, zr + Z.cols);
                for (std::size_t j = 0; j < Z.cols; ++j) ar[j] = zr[j] - top;
            }
            vmath::map_array<vmath::Function::exp_nonpositive>(a, a, n);
            for (std::size_t r = 0; r < Z.rows; ++r) {
                T* ar = A.row(r);
                T total = 0;
                for (std::size_t j = 0; j < Z.cols; ++j) total += ar[j];
                for (std::size_t j = 0; j < Z.cols; ++j) ar[j] /= total;
            }
            break;
    }
}

// D *= f'(Z), elementwise; the derivative of every activation with a diagonal Jacobian.
// sigmoid' = a (1 - a), tanh' = 1 - a^2, relu' = [z > 0], leaky_relu' = [z > 0] + slope [z <= 0],
// elu' = [z > 0] + (a + 1) [z <= 0], softplus' = sigmoid(z).
template <class T>
void multiply_by_derivative(Activation f, const MatrixView<const T>& Z,
                            const MatrixView<const T>& A, const MatrixView<T>& D) {
    if (f == Activation::softmax)
        throw std::invalid_argument(
            "softmax has no elementwise derivative: it is valid only on the output layer");
    const std::size_t n = D.size();
    const T* z = Z.data;
    const T* a = A.data;
    T* d = D.data;
    micro::with_selected_isa([&]() DELTAPROP_INLINE_LAMBDA {
        switch (f) {
            case Activation::sigmoid:
                for (std::size_t i = 0; i < n; ++i) d[i] *= a[i] * (T(1) - a[i]);
                break;
            case Activation::tanh:
                for (std::size_t i = 0; i < n; ++i) d[i] *= T(1) - a[i] * a[i];
                break;
            case Activation::relu:
                for (std::size_t i = 0; i < n; ++i) d[i] = z[i] > T(0) ? d[i] : T(0);
                break;
            case Activation::leaky_relu:
                for (std::size_t i = 0; i < n; ++i)
                    d[i] = z[i] > T(0) ? d[i] : T(leaky_relu_slope) * d[i];
                break;
            case Activation::elu:
                for (std::size_t i = 0; i < n; ++i)
                    d[i] = z[i] > T(0) ? d[i] : d[i] * (a[i] + T(1));
                break;
            case Activation::softplus:
                for (std::size_t i = 0; i < n; ++i) d[i] *= sigmoid(z[i]);
                break;
            case Activation::identity:
            case Activation::softmax:  // refused above
                break;
        }
    });
}

}  // namespace deltaprop
