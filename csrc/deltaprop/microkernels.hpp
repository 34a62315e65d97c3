// Small-batch kernels for the two products of a training step whose short side is the batch:
//   forward   Z[i,j] = b[j] + sum_p A[i,p] W[j,p]        (m x n_out, inner size n_in)
//   gradient  S[j,c] = sum_i D[i,j] A[i,c]               (n_out x n_in, inner size m)
// For batches of up to ~100 rows a BLAS call spends much of its time packing and blocking
// for shapes it was not tuned for (OpenBLAS reaches 55-75% of the FMA peak on P2's products,
// see benchmarks/README.md). These kernels keep an R x C block of dot products (forward) or
// a J x U block of output vectors (gradient) in registers and fuse each product's epilogue:
// the bias add in the forward product; in the gradient, the sum of squares that the gradient
// norms need and the write-back G = beta G + scale S, which with G = W, beta = 1 and
// scale = -eta/m is the SGD update itself, so the gradient never goes through memory.
//
// One source, three instruction sets: the kernels are written once with GCC/Clang vector
// extensions over a lane count L and compiled into wrappers with target("avx512f...") (L =
// 64 bytes), target("avx2,fma") (32 bytes) and the baseline (16 bytes, SSE2 on x86-64).
// The wrapper is chosen at run time from the CPU (selected_isa), so a portable wheel still
// uses AVX-512 or AVX2 where present. Other compilers get the BLAS path only (Isa::off).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

namespace deltaprop::micro {

enum class Isa : int { off = 0, generic = 1, avx2 = 2, avx512 = 3 };

inline const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::off: return "off";
        case Isa::generic: return "generic";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
    }
    return "?";
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define DELTAPROP_MICRO_X86 1
#define DELTAPROP_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define DELTAPROP_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif
#if defined(__GNUC__)
#define DELTAPROP_MICRO_AVAILABLE 1
// The compiled kernels are opaque to interprocedural optimization: a clone specialized for a
// constant argument (sgd_step's beta = 1) may contract a different product into a fused
// multiply-add than the general function does, and then steps taken one by one would not
// replay an epoch bit for bit.
#if defined(__clang__)
#define DELTAPROP_KERNEL __attribute__((noinline))
#else
#define DELTAPROP_KERNEL __attribute__((noipa))
#endif
#define DELTAPROP_ALWAYS_INLINE __attribute__((always_inline)) inline
// The same for the lambdas that with_remainder calls: left out of line, one would be compiled
// without the kernel's target("...") and run its wide vectors in baseline instructions.
#define DELTAPROP_INLINE_LAMBDA __attribute__((always_inline))
// Loops over a block's compile-time size, unrolled whole so its accumulators stay in registers.
#define DELTAPROP_UNROLL _Pragma("GCC unroll 16")
// In the body of a loop over a ragged end (fewer iterations than a vector has lanes): the
// empty asm hides the index's progress, so GCC leaves the loop scalar instead of
// vectorizing it behind run-time alias checks and a remainder loop of its own. That code
// cost more than the few iterations themselves (P4's batch-1 step: 214 -> 190 ns without
// it) and, in the forward kernel, took registers from the main loop, which then spilled an
// accumulator and reloaded row pointers from the stack every iteration: with it,
// 784-100-10's forward product at batch 10 ran at 161 instead of 137 GFLOP/s (float32).
#define DELTAPROP_SCALAR_LOOP(index) __asm__("" : "+r"(index))
#else
#define DELTAPROP_INLINE_LAMBDA  // with_selected_isa's lambdas, called as they are
#endif

// The widest instruction set this CPU (and its OS, which must save the wide registers)
// supports; libgcc's __builtin_cpu_supports checks both.
inline Isa best_supported_isa() {
#if defined(DELTAPROP_MICRO_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::generic;
#elif defined(DELTAPROP_MICRO_AVAILABLE)
    return Isa::generic;
#else
    return Isa::off;
#endif
}

// The kernels in use (Isa::off: every product goes to the BLAS), and the largest batch they
// take. Measured against OpenBLAS (benchmarks/README.md, native train_epoch step): faster at
// every batch up to 128 rows (784-100-10: 1.2x at 64 and 128 rows; 784-1024-1024-10: 1.1x
// at 64, even at 128), while at 256 rows on 1024-wide layers the BLAS's blocking pays for
// itself (21.3 against 24.9 ms per step). Both adjustable so the
// tests can run every comparison through each instruction set.
// Atomic: training runs without the GIL, so another thread may change them (tests do).
inline std::atomic<Isa> selected_isa{best_supported_isa()};
inline std::atomic<std::size_t> max_rows{128};

inline void select_isa(Isa isa) {
    if (static_cast<int>(isa) > static_cast<int>(best_supported_isa()))
        throw std::invalid_argument(std::string("this CPU does not support the ") +
                                    isa_name(isa) + " kernels; the widest it supports is " +
                                    isa_name(best_supported_isa()));
    selected_isa = isa;
}

// For the bindings: select the kernels by name ("off", "generic", "avx2", "avx512", or
// "auto" for the widest this CPU supports); returns the name of the previous selection.
inline std::string select_isa_by_name(const std::string& name) {
    const std::string previous = isa_name(selected_isa.load());
    if (name == "auto") {
        selected_isa = best_supported_isa();
        return previous;
    }
    for (Isa isa : {Isa::off, Isa::generic, Isa::avx2, Isa::avx512})
        if (name == isa_name(isa)) {
            select_isa(isa);
            return previous;
        }
    throw std::invalid_argument("unknown kernel set '" + name +
                                "'; expected auto, off, generic, avx2 or avx512");
}

// Whether a batch of `rows` rows goes through these kernels.
inline bool takes(std::size_t rows) { return selected_isa != Isa::off && rows <= max_rows; }

// Rows to bring into cache while a kernel computes: the next mini-batch's rows of X, which
// an epoch reads from memory once each. Loaded on demand by the next step's first product
// they cost 784-30-10's step (native, 10000 rows) a ninth of its time in float64 (23.6
// against 21.0 us) and float32 (14.1 against 12.2); P2's 5%. The gradient kernel issues a
// few lines per register block (a burst of all of them at once stalls on the line-fill
// buffers), so they arrive over the whole product.
class RowPrefetch {
  public:
    RowPrefetch() = default;
    // `count` rows of `row_bytes` bytes: row i at base + rows[i] * row_bytes, or, with rows
    // == nullptr, the consecutive rows from base on.
    RowPrefetch(const void* base, std::size_t row_bytes, const std::int64_t* rows,
                std::size_t count)
        : base_(static_cast<const char*>(base)), row_bytes_(row_bytes), rows_(rows),
          count_(count) {
        if (rows_ == nullptr) {  // one range
            row_bytes_ *= count_;
            count_ = 1;
        }
        if (row_bytes_ == 0) count_ = 0;
        start_row();
    }
    // At most this many lines are left to issue.
    std::size_t lines_left() const {
        return next_row_ >= count_ ? 0 : (count_ - next_row_) * (row_bytes_ / line + 2);
    }
    // Prefetches (into L2 and the caches above it) the next `lines` cache lines.
    void issue(std::size_t lines) {
        for (; lines > 0 && next_row_ < count_; --lines) {
#if defined(__GNUC__)
            __builtin_prefetch(reinterpret_cast<const void*>(cursor_), 0, 2);
#endif
            cursor_ += line;
            if (cursor_ >= end_) {
                ++next_row_;
                start_row();
            }
        }
    }

  private:
    static constexpr std::uintptr_t line = 64;
    void start_row() {
        if (next_row_ >= count_) return;
        const std::size_t row = rows_ != nullptr ? static_cast<std::size_t>(rows_[next_row_])
                                                 : next_row_;
        const std::uintptr_t begin = reinterpret_cast<std::uintptr_t>(base_ + row * row_bytes_);
        cursor_ = begin / line * line;
        end_ = begin + row_bytes_;
    }
    const char* base_ = nullptr;
    std::size_t row_bytes_ = 0;
    const std::int64_t* rows_ = nullptr;
    std::size_t count_ = 0, next_row_ = 0;
    std::uintptr_t cursor_ = 0, end_ = 0;
};

#if defined(DELTAPROP_MICRO_AVAILABLE)
// Vectors wider than the baseline ISA are only passed between always-inline helpers that end
// up inside the target("...") functions, so GCC's note about their calling convention
// (-Wpsabi) does not apply. (Not popped: GCC reports it where the templates are instantiated,
// at the end of the including file.)
#pragma GCC diagnostic ignored "-Wpsabi"
namespace detail {

template <class T, int Bytes>
struct VectorOf {
    typedef T type __attribute__((vector_size(Bytes)));
};
template <class T, int Bytes>
using Vector = typename VectorOf<T, Bytes>::type;

// Unaligned loads and stores: memcpy compiles to one vmovups/vmovupd.
template <class V, class T>
DELTAPROP_ALWAYS_INLINE V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class V, class T>
DELTAPROP_ALWAYS_INLINE void store(T* p, const V& v) {
    std::memcpy(p, &v, sizeof v);
}

// The sum of a vector's lanes, halving it each time.
template <class T, int Bytes>
DELTAPROP_ALWAYS_INLINE T lane_sum(const Vector<T, Bytes>& v) {
    if constexpr (Bytes == 2 * sizeof(T)) {
        return v[0] + v[1];
    } else {
        Vector<T, Bytes / 2> low, high;
        std::memcpy(&low, &v, sizeof low);
        std::memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof low, sizeof high);
        return lane_sum<T, Bytes / 2>(low + high);
    }
}

// Lane sums of many vectors at once, for the forward block's R x C accumulators. One at a time
// (lane_sum) each takes log2(L) shuffles and adds, 4 + 4 for 16 floats; here pairs of vectors
// are folded together, so the shuffles and adds are shared: fold(x, y) puts the first half of
// every segment of x and of y (in turns) into one vector and the second halves into another,
// and adds the two. After log2(L) levels, L vectors have become one that holds their L sums
// (30 shuffles and 15 adds for 16 vectors of floats instead of 64 and 64). The epilogue of
// 784-100-10's forward block was ~12% of the product in float32 (the fixed cost per block,
// measured at several inner sizes).
// __builtin_shufflevector: clang, GCC 12 and later; older GCC has __builtin_shuffle.
// DELTAPROP_NO_SHUFFLEVECTOR forces the latter (to compile-test it with a newer GCC).
#if defined(__has_builtin) && !defined(DELTAPROP_NO_SHUFFLEVECTOR)
#if __has_builtin(__builtin_shufflevector)
#define DELTAPROP_DETAIL_SHUFFLEVECTOR 1
#endif
#endif

// Lane o of fold's low (High = false) or high half: segments of the result are Segment / 2
// lanes, taken in turns from x (source indices 0..L-1) and y (L..2L-1).
template <int L, int Segment, bool High>
constexpr int fold_index(int o) {
    const int half = Segment / 2, q = o / half, t = o % half;
    return (q % 2 == 1 ? L : 0) + (q / 2) * Segment + (High ? half : 0) + t;
}

#if defined(DELTAPROP_DETAIL_SHUFFLEVECTOR)
template <int Segment, class V, std::size_t... O>
DELTAPROP_ALWAYS_INLINE V fold(const V& x, const V& y, std::index_sequence<O...>) {
    constexpr int L = sizeof...(O);
    const V low = __builtin_shufflevector(x, y, fold_index<L, Segment, false>(O)...);
    const V high = __builtin_shufflevector(x, y, fold_index<L, Segment, true>(O)...);
    return low + high;
}
#else
template <int Segment, class V, std::size_t... O>
DELTAPROP_ALWAYS_INLINE V fold(const V& x, const V& y, std::index_sequence<O...>) {
    constexpr int L = sizeof...(O);
    // Lane indices as wide as the lanes, as __builtin_shuffle requires; constant masks.
    using Index = Vector<typename std::conditional<sizeof(x[0]) == 8, std::int64_t,
                                                   std::int32_t>::type, sizeof(V)>;
    constexpr Index low_lanes{fold_index<L, Segment, false>(O)...};
    constexpr Index high_lanes{fold_index<L, Segment, true>(O)...};
    return __builtin_shuffle(x, y, low_lanes) + __builtin_shuffle(x, y, high_lanes);
}
#endif
#undef DELTAPROP_DETAIL_SHUFFLEVECTOR

// Folds v[0], ..., v[Count - 1] (Count a power of two, at most L) into one vector whose
// segments of L / Count lanes are partial sums of one vector each (Segment = 2 L / Count is
// the segment size its operands come in). Each level interleaves its operands' segments, so
// with Count = L lane j holds the whole sum of v[j with its log2(L) bits reversed].
template <class T, int Bytes, int Count, int Segment>
DELTAPROP_ALWAYS_INLINE Vector<T, Bytes> fold_tree(const Vector<T, Bytes>* v) {
    constexpr int L = Bytes / sizeof(T);
    if constexpr (Count == 1) {
        return v[0];
    } else {
        const Vector<T, Bytes> x = fold_tree<T, Bytes, Count / 2, Segment * 2>(v);
        const Vector<T, Bytes> y = fold_tree<T, Bytes, Count / 2, Segment * 2>(v + Count / 2);
        return fold<Segment>(x, y, std::make_index_sequence<L>{});
    }
}

constexpr int reverse_bits(int value, int bits) {
    int reversed = 0;
    for (int b = 0; b < bits; ++b) reversed |= ((value >> b) & 1) << (bits - 1 - b);
    return reversed;
}

// sums[i] = the sum of v[i]'s lanes, i < N; v is read in groups of L, the last one padded
// with zero vectors (the compiler drops the folds of two zero vectors) unless it holds a
// single vector, which lane_sum sums alone (fewer shuffles than folding it with zeros; the
// same additions in the same order, as every fold adds lane t to lane t + S/2).
template <class T, int Bytes, int N>
DELTAPROP_ALWAYS_INLINE void lane_sums(const Vector<T, Bytes> (&v)[N], T (&sums)[N]) {
    using V = Vector<T, Bytes>;
    constexpr int L = Bytes / sizeof(T);
    constexpr int bits = L == 2 ? 1 : L == 4 ? 2 : L == 8 ? 3 : 4;
    static_assert((1 << bits) == L, "lane count must be 2, 4, 8 or 16");
    DELTAPROP_UNROLL
    for (int group = 0; group < N; group += L) {
        if (N - group == 1) {
            sums[group] = lane_sum<T, Bytes>(v[group]);
            break;
        }
        V padded[L];
        DELTAPROP_UNROLL
        for (int i = 0; i < L; ++i) padded[i] = group + i < N ? v[group + i] : V{};
        const V folded = fold_tree<T, Bytes, L, 2>(padded);
        DELTAPROP_UNROLL
        for (int j = 0; j < L; ++j) {
            const int i = group + reverse_bits(j, bits);
            if (i < N) sums[i] = folded[j];
        }
    }
}

// Calls body(std::integral_constant-like tag) for a runtime count 1 <= count < Max, so each
// remainder block has its own compile-time size.
template <int Count>
struct Size {
    static constexpr int value = Count;
};
template <int Max, class Body>
DELTAPROP_ALWAYS_INLINE void with_remainder(std::size_t count, Body&& body) {
    if constexpr (Max > 1) {
        if (count == static_cast<std::size_t>(Max - 1)) {
            body(Size<Max - 1>{});
            return;
        }
        with_remainder<Max - 1>(count, body);
    }
}

// The end of a forward block: the lane sums of its R x C accumulators, the ragged end of p
// (from p to k) with all R x C sums in flight at once (one sum's terms after another was a
// chain of dependent multiply-adds per sum: 784-100-10's 100 x 10 product spent most of its
// time there, 100 = 6 x 16 + 4), and Z = bias + sums.
template <class T, int Bytes, int R, int C>
DELTAPROP_ALWAYS_INLINE void forward_block_end(const Vector<T, Bytes> (&acc)[R][C], std::size_t p,
                                               std::size_t k, const T* a, std::size_t lda,
                                               const T* w, std::size_t ldw, const T* bias, T* z,
                                               std::size_t ldz) {
    Vector<T, Bytes> flat[R * C];
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r)
        DELTAPROP_UNROLL
        for (int c = 0; c < C; ++c) flat[r * C + c] = acc[r][c];
    T sums[R * C];
    lane_sums<T, Bytes, R * C>(flat, sums);
    for (std::size_t q = p; q < k; ++q) {
        DELTAPROP_SCALAR_LOOP(q);
        DELTAPROP_UNROLL
        for (int r = 0; r < R; ++r)
            DELTAPROP_UNROLL
            for (int c = 0; c < C; ++c) sums[r * C + c] += a[r * lda + q] * w[c * ldw + q];
    }
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r)
        DELTAPROP_UNROLL
        for (int c = 0; c < C; ++c) z[r * ldz + c] = bias[c] + sums[r * C + c];
}

// Forward, one R x C block: Z[r,c] = bias[c] + sum_p A[r,p] W[c,p], with R x C vector
// accumulators along p and the ragged end of p done in scalars.
template <class T, int Bytes, int R, int C>
DELTAPROP_ALWAYS_INLINE void forward_block(std::size_t k, const T* a, std::size_t lda,
                                           const T* w, std::size_t ldw, const T* bias, T* z,
                                           std::size_t ldz) {
    using V = Vector<T, Bytes>;
    constexpr std::size_t L = Bytes / sizeof(T);
    V acc[R][C];
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r)
        DELTAPROP_UNROLL
        for (int c = 0; c < C; ++c) acc[r][c] = V{};
    std::size_t p = 0;
    for (; p + L <= k; p += L) {
        V wv[C];
        DELTAPROP_UNROLL
        for (int c = 0; c < C; ++c) wv[c] = load<V>(w + c * ldw + p);
        DELTAPROP_UNROLL
        for (int r = 0; r < R; ++r) {
            const V av = load<V>(a + r * lda + p);
            DELTAPROP_UNROLL
            for (int c = 0; c < C; ++c) acc[r][c] += av * wv[c];
        }
    }
    forward_block_end<T, Bytes, R, C>(acc, p, k, a, lda, w, ldw, bias, z, ldz);
}

#if defined(DELTAPROP_MICRO_X86)
// Rows that start off lanes past a 64-byte boundary, read as whole aligned vectors with
// AVX-512 masked loads and stores (masked-off lanes are neither read nor written, so the
// bytes before a row's start and past its end are never touched).
//
// Why: NumPy aligns arrays to 16 bytes, and a 64-byte load from a row that starts mid-line
// straddles two cache lines (784-100-10's products ran 1.2-1.6x slower on such rows of X
// and W), so train_epoch copied each batch to an aligned buffer, which cost 784-100-10's
// epoch at batch 32 4.2% (26.76 against 25.67 ms, the engine over NumPy's X and over an
// aligned copy, alternating). When W's rows start at the same offset as X's
// (Network::train_epoch keeps the first layer's W so for the epoch) and a row is whole
// vectors (k = K L), a row spans K + 1 aligned vectors: the one at row - off holds its first
// L - off values in lanes off.., the one at row + k - off its last off values in lanes
// 0..off-1, and the K - 1 between them are whole. Read so, the products take 1-4% longer
// than on aligned rows (the forward one runs K + 1 steps, see forward_block_shifted). Z and
// the updated W come out bit for bit as from aligned rows; the gradient's sum of squares
// (for the gradient norms) is added up in another order, so it agrees only to rounding.
template <class T>
struct Masked512 {
    using V = Vector<T, 64>;
    static constexpr bool single = sizeof(T) == 4;
    DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 static V load(unsigned mask, const T* p) {
        if constexpr (single) return (V)_mm512_maskz_load_ps(static_cast<__mmask16>(mask), p);
        else return (V)_mm512_maskz_load_pd(static_cast<__mmask8>(mask), p);
    }
    // `into` with the lanes of `mask` loaded from p.
    DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 static V load(V into, unsigned mask,
                                                                  const T* p) {
        if constexpr (single)
            return (V)_mm512_mask_load_ps((__m512)into, static_cast<__mmask16>(mask), p);
        else
            return (V)_mm512_mask_load_pd((__m512d)into, static_cast<__mmask8>(mask), p);
    }
    DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 static void store(T* p, unsigned mask, V v) {
        if constexpr (single) _mm512_mask_store_ps(p, static_cast<__mmask16>(mask), (__m512)v);
        else _mm512_mask_store_pd(p, static_cast<__mmask8>(mask), (__m512d)v);
    }
};

// The lanes [off, L) of a vector (a row's first L - off values, at row - off) and the rest.
template <class T>
constexpr unsigned head_lanes(std::size_t off) {
    constexpr unsigned all = (1u << (64 / sizeof(T))) - 1;
    return (all << off) & all;
}
template <class T>
constexpr unsigned tail_lanes(std::size_t off) {
    return ~head_lanes<T>(off) & ((1u << (64 / sizeof(T))) - 1);
}

// One step of forward_block_shifted: the R x C multiply-adds of the vectors at p (masked to
// `mask` if Masked).
template <class T, int R, int C, bool Masked>
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 void forward_shifted_step(
    Vector<T, 64> (&acc)[R][C], std::size_t p, unsigned mask, const T* a0, std::size_t lda,
    const T* w0, std::size_t ldw) {
    using V = Vector<T, 64>;
    V wv[C];
    DELTAPROP_UNROLL
    for (int c = 0; c < C; ++c)
        wv[c] = Masked ? Masked512<T>::load(mask, w0 + c * ldw + p) : load<V>(w0 + c * ldw + p);
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r) {
        const V av =
            Masked ? Masked512<T>::load(mask, a0 + r * lda + p) : load<V>(a0 + r * lda + p);
        DELTAPROP_UNROLL
        for (int c = 0; c < C; ++c) acc[r][c] += av * wv[c];
    }
}

// forward_block over rows of A and W that start off lanes (0 < off < L) past a 64-byte
// boundary, k = K L: the first vector masked to the head lanes, K - 1 whole aligned ones, the
// last masked to the tail lanes. Lane i then sums the terms p = i - off (mod L) in the order
// forward_block's lane (i - off) mod L does (head, body, tail: p = j, L + j, ...): the same
// accumulators with their lanes rotated by off. lane_sums adds lane t to lane t + L/2, then
// t to t + L/4, ..., a tree that a rotation of the lanes only permutes (each level's sums
// are the same pairs, rotated), so Z comes out the same bit for bit wherever X lies.
template <class T, int R, int C>
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 void forward_block_shifted(
    std::size_t k, std::size_t off, const T* a, std::size_t lda, const T* w, std::size_t ldw,
    const T* bias, T* z, std::size_t ldz) {
    using V = Vector<T, 64>;
    constexpr std::size_t L = 64 / sizeof(T);
    const T* const a0 = a - off;  // 64-byte aligned, as are the rows after it and w0's
    const T* const w0 = w - off;
    V acc[R][C];
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r)
        DELTAPROP_UNROLL
        for (int c = 0; c < C; ++c) acc[r][c] = V{};
    forward_shifted_step<T, R, C, true>(acc, 0, head_lanes<T>(off), a0, lda, w0, ldw);
    for (std::size_t p = L; p < k; p += L)
        forward_shifted_step<T, R, C, false>(acc, p, 0, a0, lda, w0, ldw);
    forward_shifted_step<T, R, C, true>(acc, k, tail_lanes<T>(off), a0, lda, w0, ldw);
    forward_block_end<T, 64, R, C>(acc, k, k, a, lda, w, ldw, bias, z, ldz);
}
#endif

// The offset in lanes, 0 < off < L, at which both A's and B's rows start past a 64-byte
// boundary when the AVX-512 kernels can read them as aligned vectors (see Masked512): the
// same offset for both and for every row, and rows of k = K L values. 0 otherwise.
template <class T>
std::size_t shared_offset(const T* a, std::size_t lda, const T* b, std::size_t ldb,
                          std::size_t k) {
    constexpr std::size_t L = 64 / sizeof(T);
    const std::uintptr_t phase = reinterpret_cast<std::uintptr_t>(a) % 64;
    if (phase == 0 || phase != reinterpret_cast<std::uintptr_t>(b) % 64 ||
        phase % sizeof(T) != 0 || k == 0 || k % L != 0 || lda % L != 0 || ldb % L != 0)
        return 0;
    return phase / sizeof(T);
}

// Each forward block as a function of its own for its instruction set. Inlined into the loops
// over rows and columns, with their pointers and counters live around it, GCC kept some blocks'
// accumulators on the stack: a multiply-add through memory every iteration of the loop (4 x 5
// float32, the block of batches of 32 rows, ran 6% slower so; some remainder blocks reloaded
// row pointers from the stack too). A call per block costs a few cycles against its ~k/L
// iterations.
#if defined(DELTAPROP_MICRO_X86)
template <class T, int R, int C>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void forward_block_avx512(
    std::size_t k, const T* a, std::size_t lda, const T* w, std::size_t ldw, const T* bias, T* z,
    std::size_t ldz) {
    forward_block<T, 64, R, C>(k, a, lda, w, ldw, bias, z, ldz);
}
template <class T, int R, int C>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void forward_block_shifted_avx512(
    std::size_t k, std::size_t off, const T* a, std::size_t lda, const T* w, std::size_t ldw,
    const T* bias, T* z, std::size_t ldz) {
    forward_block_shifted<T, R, C>(k, off, a, lda, w, ldw, bias, z, ldz);
}
template <class T, int R, int C>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 void forward_block_avx2(
    std::size_t k, const T* a, std::size_t lda, const T* w, std::size_t ldw, const T* bias, T* z,
    std::size_t ldz) {
    forward_block<T, 32, R, C>(k, a, lda, w, ldw, bias, z, ldz);
}
#endif
template <class T, int R, int C>
DELTAPROP_KERNEL void forward_block_generic(std::size_t k, const T* a, std::size_t lda,
                                            const T* w, std::size_t ldw, const T* bias, T* z,
                                            std::size_t ldz) {
    forward_block<T, 16, R, C>(k, a, lda, w, ldw, bias, z, ldz);
}
// off: see shared_offset (AVX-512 only; 0 for the others).
template <class T, int Bytes, int R, int C>
DELTAPROP_ALWAYS_INLINE void forward_block_call(std::size_t k, std::size_t off, const T* a,
                                                std::size_t lda, const T* w, std::size_t ldw,
                                                const T* bias, T* z, std::size_t ldz) {
    static_assert(Bytes == 16 || Bytes == 32 || Bytes == 64, "vectors of 16, 32 or 64 bytes");
    if constexpr (Bytes == 16) {
        forward_block_generic<T, R, C>(k, a, lda, w, ldw, bias, z, ldz);
    } else {
#if defined(DELTAPROP_MICRO_X86)
        if constexpr (Bytes == 64) {
            if (off != 0)
                forward_block_shifted_avx512<T, R, C>(k, off, a, lda, w, ldw, bias, z, ldz);
            else
                forward_block_avx512<T, R, C>(k, a, lda, w, ldw, bias, z, ldz);
        } else
            forward_block_avx2<T, R, C>(k, a, lda, w, ldw, bias, z, ldz);
#endif
    }
}

// Forward over all rows for C output columns; the C rows of W (C * k values) stay in L1
// while every block of R rows of A passes over them.
template <class T, int Bytes, int R, int C>
DELTAPROP_ALWAYS_INLINE void forward_columns(std::size_t m, std::size_t k, std::size_t off,
                                             const T* a, std::size_t lda, const T* w,
                                             std::size_t ldw, const T* bias, T* z,
                                             std::size_t ldz) {
    std::size_t i = 0;
    for (; i + R <= m; i += R)
        forward_block_call<T, Bytes, R, C>(k, off, a + i * lda, lda, w, ldw, bias, z + i * ldz,
                                           ldz);
    with_remainder<R>(m - i, [&](auto rows) DELTAPROP_INLINE_LAMBDA {
        forward_block_call<T, Bytes, decltype(rows)::value, C>(k, off, a + i * lda, lda, w, ldw,
                                                               bias, z + i * ldz, ldz);
    });
}

// Inner size below one vector (a 2-16-1 network's first layer): the blocks' vector
// accumulators would stay 0 and their horizontal sums be pure cost, so plain dot products.
template <class T>
DELTAPROP_ALWAYS_INLINE void forward_narrow(std::size_t m, std::size_t n, std::size_t k,
                                            const T* a, std::size_t lda, const T* w,
                                            std::size_t ldw, const T* bias, T* z,
                                            std::size_t ldz) {
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            T sum = 0;
            for (std::size_t p = 0; p < k; ++p) {
                DELTAPROP_SCALAR_LOOP(p);
                sum += a[i * lda + p] * w[j * ldw + p];
            }
            z[i * ldz + j] = bias[j] + sum;
        }
}

template <class T, int Bytes, int R, int C>
DELTAPROP_ALWAYS_INLINE void forward(std::size_t m, std::size_t n, std::size_t k, const T* a,
                                     std::size_t lda, const T* w, std::size_t ldw, const T* bias,
                                     T* z, std::size_t ldz) {
    if (k < Bytes / sizeof(T)) return forward_narrow(m, n, k, a, lda, w, ldw, bias, z, ldz);
    const std::size_t off = Bytes == 64 ? shared_offset(a, lda, w, ldw, k) : 0;
    std::size_t j = 0;
    for (; j + C <= n; j += C)
        forward_columns<T, Bytes, R, C>(m, k, off, a, lda, w + j * ldw, ldw, bias + j, z + j,
                                        ldz);
    with_remainder<C>(n - j, [&](auto columns) DELTAPROP_INLINE_LAMBDA {
        forward_columns<T, Bytes, R, decltype(columns)::value>(m, k, off, a, lda, w + j * ldw,
                                                               ldw, bias + j, z + j, ldz);
    });
}

// The gradient's write-back, beta G + scale S, for beta known when the kernel is compiled:
// beta = 0 ignores what G held (NaN included, as the BLAS does); beta = 1, the plain SGD
// step, is one fused multiply-add. (Tested at run time inside the block, the three cases
// kept GCC from fusing anything in the write-back, a third of the block's arithmetic.)
enum class Beta { zero, one, any };

template <Beta B, class V, class T>
DELTAPROP_ALWAYS_INLINE V updated(const V& old, const V& sum, T scale, T beta) {
    if constexpr (B == Beta::zero) return scale * sum;
    else if constexpr (B == Beta::one) return old + scale * sum;
    else return beta * old + scale * sum;
}

// Accumulators for the squares of S, per lane, shared by a row of blocks: with one the
// squares were a chain of dependent FMAs as long as the block's own work; one per output
// vector did not fit in the registers beside the block.
constexpr int squares_accumulators = 4;

// Gradient, one block of J rows x U vectors of columns: S[j,c] = sum_i D[i,j] A[i,c], then
// G[j,c] = beta G[j,c] + scale S[j,c], and S^2 added to `squares`.
template <Beta B, class T, int Bytes, int J, int U>
DELTAPROP_ALWAYS_INLINE void gradient_block(std::size_t m, const T* d, std::size_t ldd,
                                            const T* a, std::size_t lda, T scale, T beta, T* g,
                                            std::size_t ldg,
                                            Vector<T, Bytes> (&squares)[squares_accumulators],
                                            RowPrefetch* prefetch, std::size_t prefetch_lines) {
    using V = Vector<T, Bytes>;
    constexpr std::size_t L = Bytes / sizeof(T);
    if (prefetch_lines > 0) prefetch->issue(prefetch_lines);
    V acc[J][U];
    DELTAPROP_UNROLL
    for (int j = 0; j < J; ++j)
        DELTAPROP_UNROLL
        for (int u = 0; u < U; ++u) acc[j][u] = V{};
    for (std::size_t i = 0; i < m; ++i) {
        V av[U];
        DELTAPROP_UNROLL
        for (int u = 0; u < U; ++u) av[u] = load<V>(a + i * lda + u * L);
        DELTAPROP_UNROLL
        for (int j = 0; j < J; ++j) {
            const T dij = d[i * ldd + j];
            DELTAPROP_UNROLL
            for (int u = 0; u < U; ++u) acc[j][u] += dij * av[u];
        }
    }
    DELTAPROP_UNROLL
    for (int j = 0; j < J; ++j)
        DELTAPROP_UNROLL
        for (int u = 0; u < U; ++u) {
            squares[(j * U + u) % squares_accumulators] += acc[j][u] * acc[j][u];
            T* out = g + j * ldg + u * L;
            store(out, updated<B, V, T>(B == Beta::zero ? V{} : load<V>(out), acc[j][u], scale,
                                        beta));
        }
}

// The same for single columns past the last whole vector, over the block's J rows, whose
// sums run side by side (one row's sum after another was a chain of dependent multiply-adds
// as long as the batch per row and column: most of the 10 x 100 gradient of 784-100-10).
template <Beta B, class T, int J>
DELTAPROP_ALWAYS_INLINE double gradient_column(std::size_t m, const T* d, std::size_t ldd,
                                               const T* a, std::size_t lda, T scale, T beta, T* g,
                                               std::size_t ldg) {
    T sums[J] = {};
    for (std::size_t i = 0; i < m; ++i) {
        const T ai = a[i * lda];
        DELTAPROP_UNROLL
        for (int j = 0; j < J; ++j) sums[j] += d[i * ldd + j] * ai;
    }
    double squares = 0;
    DELTAPROP_UNROLL
    for (int j = 0; j < J; ++j) {
        squares += double(sums[j]) * double(sums[j]);
        g[j * ldg] = updated<B, T, T>(g[j * ldg], sums[j], scale, beta);
    }
    return squares;
}

#if defined(DELTAPROP_MICRO_X86)
// gradient_block for the one vector of columns that wraps around rows starting off lanes past
// a 64-byte boundary (see Masked512), over J rows of G: lanes off.. are columns 0..L-off-1
// (at row - off), lanes ..off-1 are the last off columns (at row + n_in - off). Each
// column's sum runs over i in the same order as in gradient_block, so G comes out the same
// bit for bit. Returns the lanes of the squares of its S.
template <Beta B, class T, int J>
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 Vector<T, 64> gradient_block_wrapped(
    std::size_t m, std::size_t n_in, std::size_t off, const T* d, std::size_t ldd, const T* a,
    std::size_t lda, T scale, T beta, T* g, std::size_t ldg) {
    using V = Vector<T, 64>;
    using M = Masked512<T>;
    const unsigned head = head_lanes<T>(off), tail = tail_lanes<T>(off);
    const T* const a0 = a - off;  // 64-byte aligned, as are the rows after it and g0's
    T* const g0 = g - off;
    V acc[J];
    DELTAPROP_UNROLL
    for (int j = 0; j < J; ++j) acc[j] = V{};
    for (std::size_t i = 0; i < m; ++i) {
        const V av = M::load(M::load(head, a0 + i * lda), tail, a0 + i * lda + n_in);
        DELTAPROP_UNROLL
        for (int j = 0; j < J; ++j) acc[j] += d[i * ldd + j] * av;
    }
    // Every row's old values are loaded before any is stored: with ldg = n_in, row j's tail
    // lies in the line of row j + 1's head, and a load of it just after the masked store
    // could not be forwarded from that store (it waited for the store to complete: 784-100-10's
    // gradient took 6% longer than from aligned rows, then 1-2%).
    V old[J];
    DELTAPROP_UNROLL
    for (int j = 0; j < J; ++j)
        old[j] = B == Beta::zero ? V{}
                                 : M::load(M::load(head, g0 + j * ldg), tail, g0 + j * ldg + n_in);
    V squares{};
    DELTAPROP_UNROLL
    for (int j = 0; j < J; ++j) {
        squares += acc[j] * acc[j];
        const V updated_row = updated<B, V, T>(old[j], acc[j], scale, beta);
        M::store(g0 + j * ldg, head, updated_row);
        M::store(g0 + j * ldg + n_in, tail, updated_row);
    }
    return squares;
}

// The wrapped vector of columns of every row of G; returns the sum of its squares. The
// caller does the aligned columns between, L - off to n_in - off, with the plain kernel
// (in a pass of its own: called from inside that kernel's loops, this call, which clobbers
// every vector register, made GCC keep the squares accumulators in memory throughout, and
// the aligned gradient ran 3-11% slower).
template <Beta B, class T, int J>
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 double gradient_wrapped(
    std::size_t m, std::size_t n_out, std::size_t n_in, std::size_t off, const T* d,
    std::size_t ldd, const T* a, std::size_t lda, T scale, T beta, T* g, std::size_t ldg) {
    Vector<T, 64> squares{};
    std::size_t j = 0;
    for (; j + J <= n_out; j += J)
        squares += gradient_block_wrapped<B, T, J>(m, n_in, off, d + j, ldd, a, lda, scale, beta,
                                                   g + j * ldg, ldg);
    for (; j < n_out; ++j)
        squares += gradient_block_wrapped<B, T, 1>(m, n_in, off, d + j, ldd, a, lda, scale, beta,
                                                   g + j * ldg, ldg);
    return double(lane_sum<T, 64>(squares));
}
#endif

// Gradient over all columns for J rows of G: G's rows are written front to back, streams
// the hardware prefetcher follows (going down the columns of G instead ran 1.4x slower on
// P2's 100 x 784 gradient), while A (m x n_in) is read again from cache for each block.
template <Beta B, class T, int Bytes, int J, int U>
DELTAPROP_ALWAYS_INLINE double gradient_rows(std::size_t m, std::size_t n_in, const T* d,
                                             std::size_t ldd, const T* a, std::size_t lda,
                                             T scale, T beta, T* g, std::size_t ldg,
                                             RowPrefetch* prefetch, std::size_t prefetch_lines) {
    using V = Vector<T, Bytes>;
    constexpr std::size_t L = Bytes / sizeof(T);
    if (n_in < L) {  // narrower than one vector (a 2-16-1 network's first layer): columns only
        double total = 0;
        for (std::size_t c = 0; c < n_in; ++c)
            total += gradient_column<B, T, J>(m, d, ldd, a + c, lda, scale, beta, g + c, ldg);
        return total;
    }
    V squares[squares_accumulators];
    DELTAPROP_UNROLL
    for (int s = 0; s < squares_accumulators; ++s) squares[s] = V{};
    std::size_t c = 0;
    for (; c + U * L <= n_in; c += U * L)
        gradient_block<B, T, Bytes, J, U>(m, d, ldd, a + c, lda, scale, beta, g + c, ldg, squares,
                                          prefetch, prefetch_lines);
    for (; c + L <= n_in; c += L)
        gradient_block<B, T, Bytes, J, 1>(m, d, ldd, a + c, lda, scale, beta, g + c, ldg, squares,
                                          prefetch, prefetch_lines);
    double total = 0;
    for (; c < n_in; ++c)
        total += gradient_column<B, T, J>(m, d, ldd, a + c, lda, scale, beta, g + c, ldg);
    V sum{};
    DELTAPROP_UNROLL
    for (int s = 0; s < squares_accumulators; ++s) sum += squares[s];
    return total + double(lane_sum<T, Bytes>(sum));
}

template <Beta B, class T, int Bytes, int J, int U>
DELTAPROP_ALWAYS_INLINE double gradient_for(std::size_t m, std::size_t n_out, std::size_t n_in,
                                            const T* d, std::size_t ldd, const T* a,
                                            std::size_t lda, T scale, T beta, T* g,
                                            std::size_t ldg, RowPrefetch* prefetch) {
    constexpr std::size_t L = Bytes / sizeof(T);
    // The prefetches, spread evenly over the register blocks.
    const std::size_t blocks = (n_out + J - 1) / J * (n_in / (U * L) + n_in % (U * L) / L);
    const std::size_t prefetch_lines =
        prefetch != nullptr && blocks > 0 ? (prefetch->lines_left() + blocks - 1) / blocks : 0;
    double squares = 0;
    std::size_t j = 0;
    for (; j + J <= n_out; j += J)
        squares += gradient_rows<B, T, Bytes, J, U>(m, n_in, d + j, ldd, a, lda, scale, beta,
                                                    g + j * ldg, ldg, prefetch, prefetch_lines);
    with_remainder<J>(n_out - j, [&](auto rows) DELTAPROP_INLINE_LAMBDA {
        squares += gradient_rows<B, T, Bytes, decltype(rows)::value, U>(
            m, n_in, d + j, ldd, a, lda, scale, beta, g + j * ldg, ldg, prefetch, prefetch_lines);
    });
    return squares;
}

// One sample (batch 1): the SGD step of a layer, W <- beta W + scale d a^T, and BP2's
// d_below = d W with W as it was before the step, in one pass over W (row j of W is read
// once, its old values summed into d_below, its new ones stored). d_below (n_in values, or
// nullptr for the first layer) is overwritten.
template <Beta B, class T, int Bytes>
DELTAPROP_ALWAYS_INLINE void row_step_for(std::size_t n_out, std::size_t n_in, const T* d,
                                          const T* a, T scale, T beta, T* w, std::size_t ldw,
                                          T* d_below) {
    using V = Vector<T, Bytes>;
    constexpr std::size_t L = Bytes / sizeof(T);
    if (d_below != nullptr) std::fill(d_below, d_below + n_in, T(0));
    for (std::size_t j = 0; j < n_out; ++j) {
        const T dj = d[j], step = scale * dj;
        T* row = w + j * ldw;
        std::size_t p = 0;
        for (; p + L <= n_in; p += L) {
            const V old = load<V>(row + p);
            if (d_below != nullptr) store(d_below + p, load<V>(d_below + p) + dj * old);
            store(row + p, updated<B, V, T>(old, load<V>(a + p), step, beta));
        }
        for (; p < n_in; ++p) {
            DELTAPROP_SCALAR_LOOP(p);
            if (d_below != nullptr) d_below[p] += dj * row[p];
            row[p] = updated<B, T, T>(row[p], a[p], step, beta);
        }
    }
}

template <class T, int Bytes>
DELTAPROP_ALWAYS_INLINE void row_step(std::size_t n_out, std::size_t n_in, const T* d, const T* a,
                                      T scale, T beta, T* w, std::size_t ldw, T* d_below) {
    if (beta == T(1))
        return row_step_for<Beta::one, T, Bytes>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
    row_step_for<Beta::any, T, Bytes>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
}

template <class T, int Bytes, int J, int U>
DELTAPROP_ALWAYS_INLINE double gradient(std::size_t m, std::size_t n_out, std::size_t n_in,
                                        const T* d, std::size_t ldd, const T* a, std::size_t lda,
                                        T scale, T beta, T* g, std::size_t ldg,
                                        RowPrefetch* prefetch) {
    if (beta == T(0))
        return gradient_for<Beta::zero, T, Bytes, J, U>(m, n_out, n_in, d, ldd, a, lda, scale,
                                                        beta, g, ldg, prefetch);
    if (beta == T(1))
        return gradient_for<Beta::one, T, Bytes, J, U>(m, n_out, n_in, d, ldd, a, lda, scale,
                                                       beta, g, ldg, prefetch);
    return gradient_for<Beta::any, T, Bytes, J, U>(m, n_out, n_in, d, ldd, a, lda, scale, beta,
                                                   g, ldg, prefetch);
}

// The compiled instances. Register blocks: 32 vector registers with AVX-512 hold 4 x 5, 5 x 4
// or 5 x 5 forward accumulators (+ a W vector per column + 1 of A) and 8 x 2 gradient ones
// (+ 4 squares, 2 of A and a broadcast of D; 8 x 2 ran P2-b32's step 8% faster than 4 x 2,
// the same at batch 10); the 16 of AVX2 and SSE2 hold 2 x 4 and 3 x 2.
#if defined(DELTAPROP_MICRO_X86)
// Block shapes, measured (benchmarks/README.md). Blocks of R rows leave a last block of
// m % R rows, whose fewer accumulators per load run slower (2 x 4: 46 against 58 GFLOP/s
// in float64). float32: of 4 and 5 rows the one whose last block is larger, 5 x 4 or else
// 4 x 5 (5 x 5, 31 of the 32 registers, ran slower): a batch of 10 as two blocks of 5 ran
// 784-100-10's forward product 10% faster than 4 + 4 + 2 (10.1 against 11.2 us), 32 and 128
// rows as 4 x 5 5% faster than 4 x 4. float64: 5 x 5 at every batch, 11% faster than 4 x 4
// on 784-30-10 at batch 10 (6.6 against 7.5 us), as fast at 32 and 128 rows.
inline bool rows_of_five(std::size_t m) {
    const std::size_t last_of_four = m % 4 == 0 ? 4 : m % 4;
    const std::size_t last_of_five = m % 5 == 0 ? 5 : m % 5;
    return last_of_five > last_of_four;
}

template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void forward_avx512(std::size_t m, std::size_t n, std::size_t k,
                                            const T* a, std::size_t lda, const T* w,
                                            std::size_t ldw, const T* bias, T* z,
                                            std::size_t ldz) {
    if constexpr (sizeof(T) == 8)
        forward<T, 64, 5, 5>(m, n, k, a, lda, w, ldw, bias, z, ldz);
    else if (rows_of_five(m))
        forward<T, 64, 5, 4>(m, n, k, a, lda, w, ldw, bias, z, ldz);
    else
        forward<T, 64, 4, 5>(m, n, k, a, lda, w, ldw, bias, z, ldz);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 void forward_avx2(std::size_t m, std::size_t n, std::size_t k, const T* a,
                                        std::size_t lda, const T* w, std::size_t ldw,
                                        const T* bias, T* z, std::size_t ldz) {
    forward<T, 32, 2, 4>(m, n, k, a, lda, w, ldw, bias, z, ldz);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 double gradient_avx512(std::size_t m, std::size_t n_out,
                                               std::size_t n_in, const T* d, std::size_t ldd,
                                               const T* a, std::size_t lda, T scale, T beta,
                                               T* g, std::size_t ldg, RowPrefetch* prefetch) {
    constexpr std::size_t L = 64 / sizeof(T), J = 8;
    // Dispatched here, not in gradient_for with its beta cases shared: there (a call before
    // the loops) the aligned gradient ran 5-8% slower (10 x 784 x 100 float32 11.49 against
    // 12.23 us, the two builds alternating in one binary).
    if (const std::size_t off = shared_offset<T>(a, lda, g, ldg, n_in); off > 0) {
        // The vector that wraps around each row, then the aligned columns between.
        double squares;
        if (beta == T(0))
            squares = gradient_wrapped<Beta::zero, T, J>(m, n_out, n_in, off, d, ldd, a, lda,
                                                         scale, beta, g, ldg);
        else if (beta == T(1))
            squares = gradient_wrapped<Beta::one, T, J>(m, n_out, n_in, off, d, ldd, a, lda,
                                                        scale, beta, g, ldg);
        else
            squares = gradient_wrapped<Beta::any, T, J>(m, n_out, n_in, off, d, ldd, a, lda,
                                                        scale, beta, g, ldg);
        if (n_in == L) return squares;
        return squares + gradient<T, 64, J, 2>(m, n_out, n_in - L, d, ldd, a + (L - off), lda,
                                               scale, beta, g + (L - off), ldg, prefetch);
    }
    return gradient<T, 64, 8, 2>(m, n_out, n_in, d, ldd, a, lda, scale, beta, g, ldg,
                                              prefetch);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 double gradient_avx2(std::size_t m, std::size_t n_out, std::size_t n_in,
                                           const T* d, std::size_t ldd, const T* a,
                                           std::size_t lda, T scale, T beta, T* g,
                                           std::size_t ldg, RowPrefetch* prefetch) {
    return gradient<T, 32, 3, 2>(m, n_out, n_in, d, ldd, a, lda, scale, beta, g, ldg,
                                              prefetch);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void row_step_avx512(std::size_t n_out, std::size_t n_in,
                                                              const T* d, const T* a, T scale,
                                                              T beta, T* w, std::size_t ldw,
                                                              T* d_below) {
    row_step<T, 64>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 void row_step_avx2(std::size_t n_out, std::size_t n_in,
                                                          const T* d, const T* a, T scale, T beta,
                                                          T* w, std::size_t ldw, T* d_below) {
    row_step<T, 32>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
}
#endif
template <class T>
DELTAPROP_KERNEL void row_step_generic(std::size_t n_out, std::size_t n_in, const T* d, const T* a,
                                       T scale, T beta, T* w, std::size_t ldw, T* d_below) {
    row_step<T, 16>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
}
template <class T>
DELTAPROP_KERNEL void forward_generic(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda,
                     const T* w, std::size_t ldw, const T* bias, T* z, std::size_t ldz) {
    forward<T, 16, 2, 4>(m, n, k, a, lda, w, ldw, bias, z, ldz);
}
template <class T>
DELTAPROP_KERNEL double gradient_generic(std::size_t m, std::size_t n_out, std::size_t n_in, const T* d,
                        std::size_t ldd, const T* a, std::size_t lda, T scale, T beta, T* g,
                        std::size_t ldg, RowPrefetch* prefetch) {
    return gradient<T, 16, 3, 2>(m, n_out, n_in, d, ldd, a, lda, scale, beta, g, ldg,
                                              prefetch);
}

#if defined(DELTAPROP_MICRO_X86)
// The first layer as a transposed panel (AVX-512): for plain SGD steps, the first
// np = n_out - n_out % L rows of W are kept transposed, P (k x np, P[p,j] = W[j,p]; see
// panel_columns), and the forward product runs as sums of outer products over whole vectors
// of outputs, each value of A broadcast times a vector of P:
//   Z[i, j:j+L] = b[j:j+L] + sum_p A[i,p] P[p, j:j+L]
// Against forward_block's dot products along p, whose R x C accumulators each end in a sum
// of lanes (shuffles, on a port the multiply-adds need), nothing is summed across lanes and
// no load straddles the end of a row of X: on 784-100-10 at batch 32 (float32) the 96 panel
// columns ran at ~177 GFLOP/s, the FMA peak, where forward_block reaches ~150 (the product
// with the 4 rows left: 0.87x the time). The weight gradient of the panel is W's transposed,
// P <- beta P + scale A^T D, which gradient_product forms with D and A in each other's
// place: the same sums in the same order as for W's rows, so the same values.

// The next of `parts` parts, as even as they come, of `left` items (the larger ones first).
constexpr std::size_t next_even_part(std::size_t left, std::size_t parts) {
    return left / parts + (left % parts != 0);
}

// One block of the forward: R rows of Z x V vectors of panel columns.
template <class T, int R, int V>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void panel_forward_block(std::size_t k, const T* a,
                                                                  std::size_t lda, const T* p,
                                                                  std::size_t ldp, const T* bias,
                                                                  T* z, std::size_t ldz) {
    using Vec = Vector<T, 64>;
    constexpr std::size_t L = 64 / sizeof(T);
    Vec acc[R][V];
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r)
        DELTAPROP_UNROLL
        for (int v = 0; v < V; ++v) acc[r][v] = Vec{};
    for (std::size_t q = 0; q < k; ++q) {
        Vec pv[V];
        DELTAPROP_UNROLL
        for (int v = 0; v < V; ++v) pv[v] = load<Vec>(p + q * ldp + v * L);
        DELTAPROP_UNROLL
        for (int r = 0; r < R; ++r) {
            const T ar = a[r * lda + q];
            DELTAPROP_UNROLL
            for (int v = 0; v < V; ++v) acc[r][v] += ar * pv[v];
        }
    }
    DELTAPROP_UNROLL
    for (int r = 0; r < R; ++r)
        DELTAPROP_UNROLL
        for (int v = 0; v < V; ++v) store(z + r * ldz + v * L, load<Vec>(bias + v * L) + acc[r][v]);
}

// Rows of Z in blocks of at most 8, as even as they come (a batch of 10 as 5 + 5: a last
// block of 2 rows x 3 vectors has too few accumulators to hide the multiply-adds' latency).
template <class T, int V>
DELTAPROP_ALWAYS_INLINE void panel_forward_columns(std::size_t m, std::size_t k, const T* a,
                                                   std::size_t lda, const T* p, std::size_t ldp,
                                                   const T* bias, T* z, std::size_t ldz) {
    constexpr std::size_t most_rows = 8;
    const std::size_t blocks = (m + most_rows - 1) / most_rows;
    for (std::size_t b = 0, i = 0; b < blocks; ++b) {
        const std::size_t rows = next_even_part(m - i, blocks - b);
        with_remainder<most_rows + 1>(rows, [&](auto r) DELTAPROP_INLINE_LAMBDA {
            panel_forward_block<T, decltype(r)::value, V>(k, a + i * lda, lda, p, ldp, bias,
                                                          z + i * ldz, ldz);
        });
        i += rows;
    }
}

// transpose_avx512's loads, stores and permutes, for floats and doubles.
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 __m512 transpose_load(const float* p) {
    return _mm512_loadu_ps(p);
}
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 __m512d transpose_load(const double* p) {
    return _mm512_loadu_pd(p);
}
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 void transpose_store(float* p, __m512 v) {
    _mm512_storeu_ps(p, v);
}
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 void transpose_store(double* p, __m512d v) {
    _mm512_storeu_pd(p, v);
}
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 __m512 transpose_permute(__m512 a, __m512i index,
                                                                          __m512 b) {
    return _mm512_permutex2var_ps(a, index, b);
}
DELTAPROP_ALWAYS_INLINE DELTAPROP_TARGET_AVX512 __m512d transpose_permute(__m512d a,
                                                                           __m512i index,
                                                                           __m512d b) {
    return _mm512_permutex2var_pd(a, index, b);
}

// to[j * ld_to + i] = from[i * ld_from + j] for i < n_i, j < n_j: in tiles of L x L, each
// transposed in registers by exchanging the off-diagonal blocks of halves, then quarters...
// (log2(L) rounds of two-source permutes); the ragged edges one value at a time. For moving
// W to the panel and back: 784-100's way there and back took 41 us, 67 as scalar tiles.
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void transpose_avx512(std::size_t n_i, std::size_t n_j,
                                                               const T* from,
                                                               std::size_t ld_from, T* to,
                                                               std::size_t ld_to) {
    constexpr int L = 64 / sizeof(T);
    using Reg = decltype(transpose_load(from));
    // Round s: rows i and i + s (i & s == 0) trade their s-wide off-diagonal blocks. Lane
    // indices of the two sources: 0..L-1 the first, L..2L-1 the second.
    __m512i first[6], second[6];
    int rounds = 0;
    for (int s = L / 2; s >= 1; s /= 2, ++rounds) {
        alignas(64) std::int64_t lo64[8], hi64[8];
        alignas(64) std::int32_t lo32[16], hi32[16];
        for (int j = 0; j < L; ++j) {
            const int lo = (j & s) ? L + j - s : j, hi = (j & s) ? L + j : j + s;
            if constexpr (sizeof(T) == 4) lo32[j] = lo, hi32[j] = hi;
            else lo64[j] = lo, hi64[j] = hi;
        }
        if constexpr (sizeof(T) == 4) {
            first[rounds] = _mm512_load_si512(lo32);
            second[rounds] = _mm512_load_si512(hi32);
        } else {
            first[rounds] = _mm512_load_si512(lo64);
            second[rounds] = _mm512_load_si512(hi64);
        }
    }
    const std::size_t whole_i = n_i - n_i % L, whole_j = n_j - n_j % L;
    for (std::size_t i0 = 0; i0 < whole_i; i0 += L)
        for (std::size_t j0 = 0; j0 < whole_j; j0 += L) {
            Reg rows[L];
            DELTAPROP_UNROLL
            for (int r = 0; r < L; ++r) rows[r] = transpose_load(from + (i0 + r) * ld_from + j0);
            int round = 0;
            DELTAPROP_UNROLL
            for (int s = L / 2; s >= 1; s /= 2, ++round)
                DELTAPROP_UNROLL
                for (int r = 0; r < L; ++r)
                    if ((r & s) == 0) {
                        const Reg a = rows[r], b = rows[r + s];
                        rows[r] = transpose_permute(a, first[round], b);
                        rows[r + s] = transpose_permute(a, second[round], b);
                    }
            DELTAPROP_UNROLL
            for (int r = 0; r < L; ++r) transpose_store(to + (j0 + r) * ld_to + i0, rows[r]);
        }
    for (std::size_t i = 0; i < n_i; ++i)
        for (std::size_t j = i < whole_i ? whole_j : 0; j < n_j; ++j)
            to[j * ld_to + i] = from[i * ld_from + j];
}

template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void panel_forward_avx512(
    std::size_t m, std::size_t np, std::size_t k, const T* a, std::size_t lda, const T* p,
    std::size_t ldp, const T* bias, T* z, std::size_t ldz) {
    constexpr std::size_t L = 64 / sizeof(T);
    constexpr std::size_t most_vectors = 3;  // 8 x 3 accumulators, 3 vectors of P, 1 broadcast
    const std::size_t vectors = np / L, groups = (vectors + most_vectors - 1) / most_vectors;
    for (std::size_t g = 0, v = 0; g < groups; ++g) {
        const std::size_t count = next_even_part(vectors - v, groups - g);
        with_remainder<most_vectors + 1>(count, [&](auto n) DELTAPROP_INLINE_LAMBDA {
            panel_forward_columns<T, decltype(n)::value>(m, k, a, lda, p + v * L, ldp,
                                                         bias + v * L, z + v * L, ldz);
        });
        v += count;
    }
}

#endif

}  // namespace detail
#endif  // DELTAPROP_MICRO_AVAILABLE

// Z (m x n, row stride ldz) = A (m x k) W^T + bias, W being n x k: the forward product.
template <class T>
void forward_product(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda,
                     const T* w, std::size_t ldw, const T* bias, T* z, std::size_t ldz) {
    switch (selected_isa.load(std::memory_order_relaxed)) {
#if defined(DELTAPROP_MICRO_X86)
        case Isa::avx512: return detail::forward_avx512<T>(m, n, k, a, lda, w, ldw, bias, z, ldz);
        case Isa::avx2: return detail::forward_avx2<T>(m, n, k, a, lda, w, ldw, bias, z, ldz);
#endif
        default: break;
    }
#if defined(DELTAPROP_MICRO_AVAILABLE)
    // generic; also "off" if another thread switched the kernels off after the caller chose them
    detail::forward_generic<T>(m, n, k, a, lda, w, ldw, bias, z, ldz);
#else
    throw std::logic_error("deltaprop: no small-batch kernels in this build");
#endif
}

// G (n_out x n_in) = beta G + scale D^T A, D being m x n_out and A m x n_in: the weight
// gradient summed over the batch (or, with G = W, beta = 1, scale = -eta/m, the SGD step).
// Returns sum_jc (D^T A)[j,c]^2, unscaled, for the gradient norm. Issues `prefetch`'s lines
// (if given) along the way.
template <class T>
double gradient_product(std::size_t m, std::size_t n_out, std::size_t n_in, const T* d,
                        std::size_t ldd, const T* a, std::size_t lda, T scale, T beta, T* g,
                        std::size_t ldg, RowPrefetch* prefetch = nullptr) {
    switch (selected_isa.load(std::memory_order_relaxed)) {
#if defined(DELTAPROP_MICRO_X86)
        case Isa::avx512:
            return detail::gradient_avx512<T>(m, n_out, n_in, d, ldd, a, lda, scale, beta, g, ldg,
                                              prefetch);
        case Isa::avx2:
            return detail::gradient_avx2<T>(m, n_out, n_in, d, ldd, a, lda, scale, beta, g, ldg,
                                            prefetch);
#endif
        default: break;
    }
#if defined(DELTAPROP_MICRO_AVAILABLE)
    // generic; also "off" if another thread switched the kernels off after the caller chose them
    return detail::gradient_generic<T>(m, n_out, n_in, d, ldd, a, lda, scale, beta, g, ldg,
                                       prefetch);
#else
    throw std::logic_error("deltaprop: no small-batch kernels in this build");
#endif
}

// Whether the kernels in use read rows of k values that start where `row` does, in place and
// as aligned vectors, from an operand whose rows start at the same offset past a 64-byte
// boundary (AVX-512, rows of whole vectors; see detail::Masked512).
template <class T>
bool reads_rows_at_offset(const T* row, std::size_t k) {
#if defined(DELTAPROP_MICRO_X86)
    return selected_isa.load(std::memory_order_relaxed) == Isa::avx512 &&
           detail::shared_offset<T>(row, k, row, k, k) != 0;
#else
    (void)row, (void)k;
    return false;
#endif
}

// The transposed panel of a layer's W (see detail::panel_forward_block): the number of its
// columns, np = n_out rounded down to whole vectors of the AVX-512 kernels, for a layer of
// n_out outputs stepped on batches of `rows` rows; 0 where the panel is not used: other
// kernels selected, a batch the kernels do not take or of one row (row_step's), fewer than 4
// vectors of outputs (784-30-10's 30 outputs would leave 14 of them, float32, to the dot
// products of the rows), or more than 16 (at batch 32, 784-1024's products ran 1.5x slower
// as a panel: each step of p reads P a row of 4 KiB further on).
template <class T>
std::size_t panel_columns(std::size_t n_out, std::size_t rows) {
#if defined(DELTAPROP_MICRO_X86)
    constexpr std::size_t L = 64 / sizeof(T);
    if (selected_isa.load(std::memory_order_relaxed) != Isa::avx512 || rows < 2 ||
        rows > max_rows || n_out < 4 * L || n_out >= 17 * L)
        return 0;
    return n_out - n_out % L;
#else
    (void)n_out, (void)rows;
    return 0;
#endif
}

// Z[:, :np] = A (m x k) P + bias[:np], P being the k x np panel (np from panel_columns).
template <class T>
void panel_forward_product(std::size_t m, std::size_t np, std::size_t k, const T* a,
                           std::size_t lda, const T* p, std::size_t ldp, const T* bias, T* z,
                           std::size_t ldz) {
#if defined(DELTAPROP_MICRO_X86)
    detail::panel_forward_avx512<T>(m, np, k, a, lda, p, ldp, bias, z, ldz);
#else
    (void)m, (void)np, (void)k, (void)a, (void)lda, (void)p, (void)ldp, (void)bias, (void)z,
        (void)ldz;
    throw std::logic_error("deltaprop: no panel kernels in this build");
#endif
}

// Transposes the first `rows` rows of W (row stride ldw, `cols` columns) into the panel P
// (cols x rows, row stride ldp), or, with to_panel false, back. AVX-512 only, as the panel.
template <class T>
void transpose_panel(bool to_panel, std::size_t rows, std::size_t cols, T* w, std::size_t ldw,
                     T* p, std::size_t ldp) {
#if defined(DELTAPROP_MICRO_X86)
    if (to_panel)
        detail::transpose_avx512<T>(rows, cols, w, ldw, p, ldp);
    else
        detail::transpose_avx512<T>(cols, rows, p, ldp, w, ldw);
#else
    (void)to_panel, (void)rows, (void)cols, (void)w, (void)ldw, (void)p, (void)ldp;
    throw std::logic_error("deltaprop: no panel kernels in this build");
#endif
}

#if defined(DELTAPROP_MICRO_AVAILABLE)
namespace detail {
template <class Body>
DELTAPROP_KERNEL void run_generic(Body& body) {
    body();
}
#if defined(DELTAPROP_MICRO_X86)
template <class Body>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 void run_avx512(Body& body) {
    body();
}
template <class Body>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 void run_avx2(Body& body) {
    body();
}
#endif
}  // namespace detail
#endif

// Runs body(), a lambda marked DELTAPROP_INLINE_LAMBDA, compiled for the instruction set
// selected for the kernels, so that the plain loops in it are vectorized with AVX-512 or
// AVX2 where the CPU has them instead of the build's baseline (SSE2 on x86-64). For the
// elementwise passes of a step: f'(Z) and the bias gradient took 0.56 and 0.45 us of
// 784-100-10's step at batch 32 in SSE2.
template <class Body>
void with_selected_isa(Body&& body) {
#if defined(DELTAPROP_MICRO_X86)
    switch (selected_isa.load(std::memory_order_relaxed)) {
        case Isa::avx512: return detail::run_avx512(body);
        case Isa::avx2: return detail::run_avx2(body);
        default: break;
    }
#endif
#if defined(DELTAPROP_MICRO_AVAILABLE)
    detail::run_generic(body);
#else
    body();
#endif
}

// One sample's SGD step of a layer and BP2 below it (see detail::row_step_for):
// W (n_out x n_in) <- beta W + scale d a^T, and d_below = d W_old unless nullptr.
template <class T>
void row_step(std::size_t n_out, std::size_t n_in, const T* d, const T* a, T scale, T beta, T* w,
              std::size_t ldw, T* d_below) {
    switch (selected_isa.load(std::memory_order_relaxed)) {
#if defined(DELTAPROP_MICRO_X86)
        case Isa::avx512:
            return detail::row_step_avx512<T>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
        case Isa::avx2:
            return detail::row_step_avx2<T>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
#endif
        default: break;
    }
#if defined(DELTAPROP_MICRO_AVAILABLE)
    detail::row_step_generic<T>(n_out, n_in, d, a, scale, beta, w, ldw, d_below);
#else
    throw std::logic_error("deltaprop: no small-batch kernels in this build");
#endif
}

}  // namespace deltaprop::micro
