// Inverted dropout masks from a counter-based hash (splitmix64), so that the native core and
// the NumPy reference draw bit-identical masks for (key, step, layer, element), in any order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "view.hpp"

namespace deltaprop {

inline std::uint64_t splitmix64_mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// u in [0, 1) for element `index` (row-major in the batch matrix) of hidden layer `layer`
// at training step `step`: x = key + phi * ((step * 64 + layer) * 2^32 + index) mod 2^64.
inline double dropout_uniform(std::uint64_t key, std::uint64_t step, std::uint64_t layer,
                              std::uint64_t index) {
    const std::uint64_t counter = ((step * 64 + layer) << 32) + index;
    const std::uint64_t z = splitmix64_mix(key + 0x9E3779B97F4A7C15ull * counter);
    return double(z >> 11) * 0x1.0p-53;
}

// M[i] = [u_i >= p] / (1 - p): kept units are scaled so the expected activation is unchanged.
template <class T>
void dropout_mask(std::uint64_t key, std::uint64_t step, std::uint64_t layer, double p,
                  const MatrixView<T>& M) {
    const T kept = T(1.0 / (1.0 - p));
    for (std::size_t i = 0; i < M.size(); ++i)
        M.data[i] = dropout_uniform(key, step, layer, i) >= p ? kept : T(0);
}

}  // namespace deltaprop
