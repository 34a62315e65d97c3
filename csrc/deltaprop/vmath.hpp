// sigmoid and tanh over arrays, vectorized: e^x and e^x - 1 written as plain arithmetic
// (range reduction, a polynomial, the exponent set through the bits) so that each loop
// compiles to vector instructions, dispatched to AVX-512, AVX2 or the baseline like the
// small-batch kernels (microkernels.hpp). libm's scalar exp/tanh were 38% of P4's step
// (17 tanh calls of ~12 ns) and ~2.5 us of P2's.
//
// Accuracy: within 3 ulp (float64 within 4e-16 relative of tanh and of 1 / (1 + e^-z),
// float32 within 2e-7; tests/test_kernels.py checks it on a grid and at the extremes), far
// inside the tolerances the core is held to against the reference. Results below the
// smallest normal number (sigmoid(z) for z below about -708.396 in float64, -87.337 in
// float32) are 0. Non-finite or huge inputs may leave the invalid/overflow status flags set
// (both branches of each select are computed); nothing in deltaprop reads them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "microkernels.hpp"

namespace deltaprop::vmath {

#if defined(DELTAPROP_MICRO_AVAILABLE)
#define DELTAPROP_VMATH_INLINE DELTAPROP_ALWAYS_INLINE
#else
#define DELTAPROP_VMATH_INLINE inline
#endif

template <class T>
struct ExpConstants;

template <>
struct ExpConstants<double> {
    using Bits = std::uint64_t;
    static constexpr int mantissa_bits = 52;
    static constexpr double log2e = 1.4426950408889634;
    static constexpr double ln2_high = 0.693147180369123816490;  // exact in 32 bits
    static constexpr double ln2_low = 1.90821492927058770002e-10;
    static constexpr double round_magic = 6755399441055744.0;  // 1.5 * 2^52
    // Just below ln(smallest normal) = -708.39641853: e^x below it is 0, above it exact.
    static constexpr double lowest = -708.39642;
};

template <>
struct ExpConstants<float> {
    using Bits = std::uint32_t;
    static constexpr int mantissa_bits = 23;
    static constexpr float log2e = 1.44269504f;
    static constexpr float ln2_high = 0.693359375f;
    static constexpr float ln2_low = -2.12194440e-4f;
    static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
    // Just below ln(smallest normal) = -87.33654475: e^x below it is 0, above it exact.
    static constexpr float lowest = -87.33655f;
};

template <class To, class From>
DELTAPROP_VMATH_INLINE To bits_as(From value) {
    static_assert(sizeof(To) == sizeof(From), "same size");
    To result;
    std::memcpy(&result, &value, sizeof result);
    return result;
}

// p(x) = c[0] x^(N-1) + ... + c[N-1]. The low-degree terms, which carry the result's
// rounding, by Horner's rule; for float64 the high-degree rest q (x^4 q(x)) by Estrin's
// scheme: neighbouring coefficients paired as c_i + c_(i+1) x, the pairs with x^2, then x^4...
// That cuts the chain of dependent multiply-adds of float64's degree-13 and -14 series from
// 13-14 to about 8, which a batch-1 step waits through twice per tanh layer (P4). (Estrin
// over the whole series moved sigmoid past 3 ulp, 3.28 at z = -2.74.)
template <std::size_t Count, class T>
DELTAPROP_VMATH_INLINE T estrin_levels(const T (&terms)[Count], T power) {
    if constexpr (Count == 1) {
        return terms[0];
    } else {
        T next[(Count + 1) / 2];
#pragma GCC unroll 16
        for (std::size_t j = 0; j < Count / 2; ++j) next[j] = terms[2 * j] + terms[2 * j + 1] * power;
        if constexpr (Count % 2 == 1) next[Count / 2] = terms[Count - 1];
        return estrin_levels(next, power * power);
    }
}
template <class T, std::size_t N>
DELTAPROP_VMATH_INLINE T polynomial(T x, const T (&c)[N]) {
    constexpr std::size_t horner_terms = 4;
    T p;
    std::size_t i = 1;
    if constexpr (std::is_same_v<T, double> && N > horner_terms + 2) {
        constexpr std::size_t high = N - horner_terms;
        T ascending[high];  // ascending[k] multiplies x^k in q
#pragma GCC unroll 16
        for (std::size_t k = 0; k < high; ++k) ascending[k] = c[high - 1 - k];
        p = estrin_levels(ascending, x);
        i = high;
    } else {
        p = c[0];
    }
#pragma GCC unroll 16
    for (; i < N; ++i) p = p * x + c[i];
    return p;
}

// 1/k! for k = 17 down to 0.
inline constexpr double inverse_factorials[] = {
    1.0 / 355687428096000.0, 1.0 / 20922789888000.0, 1.0 / 1307674368000.0,
    1.0 / 87178291200.0, 1.0 / 6227020800.0, 1.0 / 479001600.0,
    1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
    1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};

// The Taylor coefficients 1/k!, k = Highest down to Lowest, in T.
template <class T, int Highest, int Lowest>
struct Taylor {
    static constexpr std::size_t count = Highest - Lowest + 1;
    T c[count];
    constexpr Taylor() : c() {
        for (std::size_t i = 0; i < count; ++i) c[i] = T(inverse_factorials[17 - Highest + i]);
    }
};

// e^r for |r| <= ln(2)/2 by its Taylor series, whose first left-out term is below half an
// ulp there: through r^13 for double (r^14/14! < 5e-18), r^7 for float (r^8/8! < 6e-9).
template <class T>
DELTAPROP_VMATH_INLINE T exp_reduced(T r) {
    static constexpr Taylor<T, std::is_same_v<T, double> ? 13 : 7, 0> series{};
    return polynomial(r, series.c);
}

// e^x for x <= 0 (-inf gives 0, NaN gives NaN): x = n ln2 + r, e^x = 2^n e^r.
template <class T>
DELTAPROP_VMATH_INLINE T exp_nonpositive(T x) {
    using C = ExpConstants<T>;
    using Bits = typename C::Bits;
    // Clamped first so that no lane computes with an exponent out of range (nor raises
    // floating-point flags) for a value that is then replaced by 0.
    const T clamped = x < C::lowest ? C::lowest : x;
    // n = round(x / ln2) by the 1.5 * 2^p trick; its low bits hold n in two's complement.
    const T shifted = clamped * C::log2e + C::round_magic;
    const T n = shifted - C::round_magic;
    const T r = (clamped - n * C::ln2_high) - n * C::ln2_low;
    const Bits scale = bits_as<Bits>(T(1)) + (bits_as<Bits>(shifted) << C::mantissa_bits);
    const T result = exp_reduced(r) * bits_as<T>(scale);
    return x < C::lowest ? T(0) : result;
}

// e^x - 1 for x <= 0 without the cancellation of e^x - 1 near 0: there (|x| < 3/4) a series,
// x (1 + x/2! + x^2/3! + ...), to x^16/17! for double (the first term left out, x^17/18!, is
// below 2e-18 relative) and x^9/10! for float (below 2e-9). Beyond 3/4, e^x - 1 itself: e^x
// is below 0.48 there, so its rounding error is at most about half an ulp of the difference.
// (With the cut at 1/2, e^x = 0.61 carried two ulps of the difference into it, and tanh
// reached 3.02 ulp at z = 0.2548.)
template <class T>
DELTAPROP_VMATH_INLINE T expm1_nonpositive(T x) {
    constexpr T series_limit = T(-0.75);
    const T small = x > series_limit ? x : series_limit;  // the series only sees |x| <= 3/4
    static constexpr Taylor<T, std::is_same_v<T, double> ? 17 : 10, 2> series{};
    const T p = polynomial(small, series.c);
    const T near_zero = small + small * (small * p);
    const T far = exp_nonpositive(x) - T(1);
    return x > series_limit ? near_zero : far;
}

// sigmoid(z) = 1 / (1 + e^-z), through e^-|z| so nothing overflows.
template <class T>
DELTAPROP_VMATH_INLINE T sigmoid(T z) {
    const T e = exp_nonpositive(z > T(0) ? -z : z);
    const T inverse = T(1) / (T(1) + e);
    return z >= T(0) ? inverse : e * inverse;
}

// tanh(z) = sign(z) (1 - e^-2|z|) / (1 + e^-2|z|) = sign(z) (-t) / (2 + t), t = e^-2|z| - 1.
template <class T>
DELTAPROP_VMATH_INLINE T tanh(T z) {
    // |z| capped where tanh rounds to 1 (tanh(20) = 1 - 8e-18, tanh(10) = 1 - 4e-9 in float),
    // so -2|z| never overflows; NaN passes through the comparison unchanged.
    constexpr T saturated = std::is_same_v<T, double> ? T(20) : T(10);
    const T absolute = z > T(0) ? z : -z;
    const T magnitude = absolute > saturated ? saturated : absolute;
    const T t = expm1_nonpositive(T(-2) * magnitude);
    const T result = -t / (T(2) + t);
    // copysign by hand (std::copysign is not inlined everywhere); NaN stays NaN
    return z < T(0) ? -result : (z > T(0) ? result : z);
}

// exp_nonpositive: e^z for z <= 0 (softmax and the cross-entropy pass z - max z).
enum class Function { sigmoid, tanh, exp_nonpositive };

namespace detail {

template <Function F, class T>
DELTAPROP_VMATH_INLINE void map_loop(const T* z, T* a, std::size_t n) {
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (F == Function::sigmoid)
            a[i] = sigmoid(z[i]);
        else if constexpr (F == Function::tanh)
            a[i] = tanh(z[i]);
        else
            a[i] = exp_nonpositive(z[i]);
    }
}

#if defined(DELTAPROP_MICRO_X86)
template <Function F, class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void map_avx512(const T* z, T* a, std::size_t n) {
    map_loop<F>(z, a, n);
}
template <Function F, class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 void map_avx2(const T* z, T* a, std::size_t n) {
    map_loop<F>(z, a, n);
}
#endif

// x * 0 is (+-)0 for every finite x and NaN for NaN and +-Inf, so the sum of those products
// is 0 exactly when all of x is finite; it cannot overflow and needs no branch. Summed in
// four vector accumulators: with one (an `omp simd` reduction) each vector waited for the
// last one's add, 1.1 us of 784-30-10's float64 step.
template <class T, int Bytes>
DELTAPROP_VMATH_INLINE bool finite_loop(const T* x, std::size_t n) {
    T tail = 0;
    std::size_t i = 0;
#if defined(DELTAPROP_MICRO_AVAILABLE)
    using V = micro::detail::Vector<T, Bytes>;
    constexpr std::size_t L = Bytes / sizeof(T);
    V probe[4] = {};
    for (; i + 4 * L <= n; i += 4 * L)
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) probe[u] += micro::detail::load<V>(x + i + u * L) * T(0);
    for (; i + L <= n; i += L) probe[0] += micro::detail::load<V>(x + i) * T(0);
    tail = micro::detail::lane_sum<T, Bytes>((probe[0] + probe[1]) + (probe[2] + probe[3]));
#endif
    for (; i < n; ++i) tail += x[i] * T(0);
    return tail == T(0);
}

#if defined(DELTAPROP_MICRO_X86)
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 bool finite_avx512(const T* x, std::size_t n) {
    return finite_loop<T, 64>(x, n);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 bool finite_avx2(const T* x, std::size_t n) {
    return finite_loop<T, 32>(x, n);
}
#endif

}  // namespace detail

// Both below use the widest instruction set selected for the small-batch kernels (the
// baseline when those are off).

// a[i] = F(z[i]), i < n; z == a (in place) is allowed.
template <Function F, class T>
void map_array(const T* z, T* a, std::size_t n) {
#if defined(DELTAPROP_MICRO_X86)
    const micro::Isa isa = micro::selected_isa.load(std::memory_order_relaxed);
    if (isa == micro::Isa::avx512) return detail::map_avx512<F>(z, a, n);
    if (isa == micro::Isa::avx2) return detail::map_avx2<F>(z, a, n);
#endif
    detail::map_loop<F>(z, a, n);
}

// Whether x[0..n) holds no NaN and no Inf.
template <class T>
bool all_finite(const T* x, std::size_t n) {
    // A row or two of a tiny layer (P4's batch 1: 2 and 1 values), inline and scalar: no call
    // to the dispatched kernel, and not finite_loop, whose vector set-up and lane sums made
    // P4's check 22 us an epoch against this loop's 7.
    if (n <= 8) {
        T probe = 0;
        for (std::size_t i = 0; i < n; ++i) probe += x[i] * T(0);
        return probe == T(0);
    }
#if defined(DELTAPROP_MICRO_X86)
    const micro::Isa isa = micro::selected_isa.load(std::memory_order_relaxed);
    if (isa == micro::Isa::avx512) return detail::finite_avx512(x, n);
    if (isa == micro::Isa::avx2) return detail::finite_avx2(x, n);
#endif
    return detail::finite_loop<T, 16>(x, n);
}

}  // namespace deltaprop::vmath
