// Native benchmark of deltaprop's C++ core, with no Python at all.
//
// Built from csrc/ alone (see CMakeLists.txt beside this file and benchmarks/README.md). The
// core links no BLAS; this program hands it an OpenBLAS's sgemm_/dgemm_ through the seam in
// csrc/deltaprop/blas.hpp, exactly as the Python bindings hand it SciPy's.
//
// For each configuration it times, per call (median of --repeats measurements, each of at
// least --min-time seconds):
//   - the Network calls: predict on one batch (forward), backprop, sgd_step, and train_epoch
//     over --rows rows (reported per step and as samples/s);
//   - the pieces of one training step, each over all layers, with the same kernels the core
//     uses: the three GEMM families (forward, delta, weight gradient), bias + activation,
//     BP1, f'(Z) product, bias gradient, the SGD update and the per-layer gradient norms
//     that train_epoch records; their sum against the measured step shows what the Network
//     class itself adds;
//   - the step's products back to back through the core's blas::gemm, and straight to the
//     BLAS ("GEMM peak": the BLAS's speed on exactly these shapes); train_epoch's GFLOP/s is
//     reported as a fraction of the latter;
//   - per configuration, one core's FMA peak (multiply-adds on registers only, with the
//     kernels' instruction set) just before it, and every product's GFLOP/s as a fraction.
// P3 also times P5's inference: predict on 10000 rows through the same network.
//
//   bench [--config P1-f64|P1-f32|P2-b10|P2-b32|P3|P4|all] [--threads N] [--repeats R]
//         [--rows N] [--min-time S]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "deltaprop/activations.hpp"
#include "deltaprop/blas.hpp"
#include "deltaprop/dense.hpp"
#include "deltaprop/losses.hpp"
#include "deltaprop/microkernels.hpp"
#include "deltaprop/network.hpp"

// The BLAS symbols: plain Fortran names for a system OpenBLAS; SciPy's bundled OpenBLAS
// prefixes them (configure with -DBENCH_BLAS_PREFIX=scipy_).
#ifndef BENCH_BLAS_PREFIX
#define BENCH_BLAS_PREFIX
#endif
#define BENCH_CAT2(a, b) a##b
#define BENCH_CAT(a, b) BENCH_CAT2(a, b)
#define BLAS_SYMBOL(name) BENCH_CAT(BENCH_BLAS_PREFIX, name)

extern "C" {
void BLAS_SYMBOL(sgemm_)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                         float*, float*, int*);
void BLAS_SYMBOL(dgemm_)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                         double*, double*, int*);
// Thread count and name: OpenBLAS's calls, or MKL's (libmkl_rt, whose sgemm_/dgemm_ are
// plain Fortran names), whichever the linked BLAS has; weak, so either links.
__attribute__((weak)) void BLAS_SYMBOL(openblas_set_num_threads)(int);
__attribute__((weak)) char* BLAS_SYMBOL(openblas_get_config)();
__attribute__((weak)) void MKL_Set_Num_Threads(int);
}

static const char* set_blas_threads(int threads) {
    if (&BLAS_SYMBOL(openblas_set_num_threads) != nullptr) {
        BLAS_SYMBOL(openblas_set_num_threads)(threads);
        return &BLAS_SYMBOL(openblas_get_config) != nullptr ? BLAS_SYMBOL(openblas_get_config)()
                                                            : "OpenBLAS";
    }
    if (&MKL_Set_Num_Threads != nullptr) {
        MKL_Set_Num_Threads(threads);
        return "MKL";
    }
    return "unknown (its thread count not set)";
}

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace dp = deltaprop;

// MXCSR flush-to-zero and denormals-are-zero, for the repeated in-place pieces.
inline unsigned int denormals_off() {
#if defined(__SSE__)
    const unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u);
    return old;
#else
    return 0;
#endif
}
inline void restore_csr(unsigned int old) {
#if defined(__SSE__)
    _mm_setcsr(old);
#else
    (void)old;
#endif
}

volatile double zero_rate_source = 0.0;

// Row-major C = alpha op(A) op(B) + beta C straight through the BLAS (no deltaprop code in
// between): column-major C^T = op(B)^T op(A)^T, as blas.hpp does it.
template <class T>
void raw_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
              std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
    int M = int(n), N = int(m), K = int(k), LDA = int(ldb), LDB = int(lda), LDC = int(ldc);
    if constexpr (sizeof(T) == sizeof(float))
        BLAS_SYMBOL(sgemm_)(&ctb, &cta, &M, &N, &K, &alpha, const_cast<T*>(b), &LDA,
                            const_cast<T*>(a), &LDB, &beta, c, &LDC);
    else
        BLAS_SYMBOL(dgemm_)(&ctb, &cta, &M, &N, &K, &alpha, const_cast<T*>(b), &LDA,
                            const_cast<T*>(a), &LDB, &beta, c, &LDC);
}
using Clock = std::chrono::steady_clock;

struct Options {
    std::string config = "all";
    int threads = 1;
    int repeats = 7;
    long rows = -1;  // -1: the configuration's default
    double min_time = 0.02;
};

struct Config {
    std::string name;
    std::vector<std::size_t> sizes;
    dp::Activation hidden, output;
    dp::Loss loss;
    std::size_t batch;
    double eta;
    bool f64;
    std::size_t rows;
};

const char* act_name(dp::Activation a) { return dp::activation_name(a); }

std::vector<Config> all_configs() {
    using A = dp::Activation;
    using L = dp::Loss;
    return {
        {"P1-f64", {784, 30, 10}, A::sigmoid, A::sigmoid, L::quadratic, 10, 3.0, true, 10000},
        {"P1-f32", {784, 30, 10}, A::sigmoid, A::sigmoid, L::quadratic, 10, 3.0, false, 10000},
        {"P2-b10", {784, 100, 10}, A::sigmoid, A::softmax, L::categorical_crossentropy, 10, 0.5,
         false, 10000},
        {"P2-b32", {784, 100, 10}, A::sigmoid, A::softmax, L::categorical_crossentropy, 32, 0.5,
         false, 9984},
        {"P3", {784, 1024, 1024, 10}, A::relu, A::softmax, L::categorical_crossentropy, 256, 0.05,
         false, 5120},
        {"P4", {2, 16, 1}, A::tanh, A::tanh, L::quadratic, 1, 0.05, true, 2000},
    };
}

// ---- the core's FMA peak ----------------------------------------------------------------------
// Independent vector multiply-adds on registers only, compiled for the instruction set the
// small-batch kernels run (micro::selected_isa): the most one core does today. The kernels'
// GFLOP/s are read against it in the same run, since this machine's clock varies from day to
// day and on a busy day within minutes (register-only loops measured 210-240 GFLOP/s float32
// on earlier days, 108-171 on 2026-12-03). The kernels' operands stream from L1, as any real
// product's do; this loop loads nothing, so it is a bound, not a target.

// Hides a value from the optimizer (an empty asm that may change it): in a vector register
// where the constraint exists, else through memory.
#if defined(__x86_64__) || defined(__i386__)
#define BENCH_OPAQUE(value) __asm__("" : "+v"(value))
#elif defined(__aarch64__)
#define BENCH_OPAQUE(value) __asm__("" : "+w"(value))
#else
#define BENCH_OPAQUE(value) __asm__("" : : "r"(&(value)) : "memory")
#endif

template <class T, int Bytes, int Chains>
__attribute__((always_inline)) inline T fma_chains(long iterations) {
    typedef T V __attribute__((vector_size(Bytes)));
    V acc[Chains];
    V scale = V{} + T(0.999), add = V{} + T(1e-3);  // acc tends to 1: no overflow, no subnormal
    for (int c = 0; c < Chains; ++c) {
        acc[c] = V{} + T(c);
        BENCH_OPAQUE(acc[c]);  // distinct unknown starts: the chains are not merged
    }
    BENCH_OPAQUE(scale);  // not constants: acc * 1 + 0 is not folded away
    BENCH_OPAQUE(add);
    for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 32
        for (int c = 0; c < Chains; ++c) acc[c] = acc[c] * scale + add;
    }
    T sum = 0;
    for (int c = 0; c < Chains; ++c)
        for (std::size_t lane = 0; lane < Bytes / sizeof(T); ++lane) sum += acc[c][lane];
    return sum;
}
// Chains: at least latency (4) x FMA units (2) in flight, and all in registers beside the two
// operands (32 vector registers with AVX-512, 16 otherwise).
constexpr int chains_wide = 24, chains_narrow = 12;  // 32 and 16 vector registers
#if defined(DELTAPROP_MICRO_X86)
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX512 T fma_chains_avx512(long n) {
    return fma_chains<T, 64, chains_wide>(n);
}
template <class T>
DELTAPROP_KERNEL DELTAPROP_TARGET_AVX2 T fma_chains_avx2(long n) {
    return fma_chains<T, 32, chains_narrow>(n);
}
#endif
template <class T>
DELTAPROP_KERNEL T fma_chains_generic(long n) { return fma_chains<T, 16, chains_narrow>(n); }

struct FmaLoop {
    std::function<double(long)> run;  // returns a value that depends on every chain
    double flops_per_iteration = 0;
};
// Flops per iteration of fma_chains: a multiply and an add per lane of every chain.
template <class T>
constexpr double fma_flops(int chains, int bytes) {
    return double(chains) * double(bytes / sizeof(T)) * 2;
}
template <class T>
FmaLoop fma_loop_for(dp::micro::Isa isa) {
    switch (isa) {
#if defined(DELTAPROP_MICRO_X86)
        case dp::micro::Isa::avx512:
            return {[](long n) { return double(fma_chains_avx512<T>(n)); },
                    fma_flops<T>(chains_wide, 64)};
        case dp::micro::Isa::avx2:
            return {[](long n) { return double(fma_chains_avx2<T>(n)); },
                    fma_flops<T>(chains_narrow, 32)};
#endif
        default:
            return {[](long n) { return double(fma_chains_generic<T>(n)); },
                    fma_flops<T>(chains_narrow, 16)};
    }
}

// ---- timing -----------------------------------------------------------------------------------

struct Stat {
    double median = 0, q1 = 0, q3 = 0, best = 0;
};

Stat stat_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        const double pos = q * double(v.size() - 1);
        const std::size_t lo = std::size_t(pos);
        const std::size_t hi = std::min(lo + 1, v.size() - 1);
        return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
    };
    return {at(0.5), at(0.25), at(0.75), v.front()};
}

// Seconds per call of fn: the loop count is chosen once so that one measurement lasts at least
// min_time, then `repeats` measurements.
Stat time_call(const std::function<void()>& fn, const Options& opt) {
    fn();  // warm up (workspaces, caches)
    auto measure = [&](long loops) {
        const auto start = Clock::now();
        for (long i = 0; i < loops; ++i) fn();
        return std::chrono::duration<double>(Clock::now() - start).count();
    };
    long loops = 1;
    while (measure(loops) < opt.min_time) loops *= 2;
    std::vector<double> samples;
    for (int r = 0; r < opt.repeats; ++r) samples.push_back(measure(loops) / double(loops));
    return stat_of(samples);
}

std::string fmt_time(double s) {
    char buf[32];
    if (s >= 1) std::snprintf(buf, sizeof buf, "%.3g s", s);
    else if (s >= 1e-3) std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
    else if (s >= 1e-6) std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
    else std::snprintf(buf, sizeof buf, "%.3g ns", s * 1e9);
    return buf;
}

// One core's FMA peak for T with the kernels' instruction set (fma_chains), in GFLOP/s.
template <class T>
double measure_fma_peak(const Options& opt) {
    const FmaLoop loop = fma_loop_for<T>(dp::micro::selected_isa.load());
    const long iterations = 100000;
    volatile double sink = 0;
    const Stat s = time_call([&] { sink = sink + loop.run(iterations); }, opt);
    return loop.flops_per_iteration * double(iterations) / s.median / 1e9;
}
// ---- one configuration -------------------------------------------------------------------------

template <class T>
struct Bench {
    const Config& cfg;
    const Options& opt;
    std::size_t L, B, rows;
    std::vector<dp::Activation> acts;
    std::mt19937_64 rng{20240611};

    Bench(const Config& c, const Options& o) : cfg(c), opt(o) {
        L = cfg.sizes.size() - 1;
        B = cfg.batch;
        rows = o.rows > 0 ? std::size_t(o.rows) : cfg.rows;
        rows = std::max(B, rows - rows % B);
        for (std::size_t l = 0; l + 1 < L; ++l) acts.push_back(cfg.hidden);
        acts.push_back(cfg.output);
    }

    void fill_uniform(dp::AlignedVector<T>& v, std::size_t n) {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        v.resize(n);
        for (auto& x : v) x = T(u(rng));
    }

    void fill_targets(dp::AlignedVector<T>& Y, std::size_t m) {
        const std::size_t n_out = cfg.sizes.back();
        Y.assign(m * n_out, T(0));
        std::uniform_int_distribution<std::size_t> pick(0, n_out - 1);
        std::uniform_real_distribution<double> u(-0.8, 0.8);
        for (std::size_t i = 0; i < m; ++i) {
            if (n_out == 1) Y[i] = T(u(rng));
            else Y[i * n_out + pick(rng)] = T(1);
        }
    }

    // Nielsen's weights for sigmoid/tanh/softmax layers, He's for relu (as deltaprop's init=None).
    void init(dp::Network<T>& net) {
        std::normal_distribution<double> normal(0.0, 1.0);
        for (std::size_t l = 0; l < L; ++l) {
            auto W = net.weights(l);
            auto b = net.biases(l);
            const bool he = acts[l] == dp::Activation::relu;
            const double scale = he ? std::sqrt(2.0 / double(W.cols)) : 1.0 / std::sqrt(double(W.cols));
            for (std::size_t i = 0; i < W.size(); ++i) W.data[i] = T(normal(rng) * scale);
            for (std::size_t j = 0; j < b.size; ++j) b.data[j] = he ? T(0) : T(normal(rng));
        }
    }

    double flops_per_step(std::size_t m, bool train) const {
        double f = 0;
        for (std::size_t l = 0; l < L; ++l) {
            const double n_in = double(cfg.sizes[l]), n_out = double(cfg.sizes[l + 1]);
            f += 2 * double(m) * n_in * n_out;                    // forward
            if (train) {
                f += 2 * double(m) * n_in * n_out;                // weight gradient
                if (l > 0) f += 2 * double(m) * n_in * n_out;     // delta
            }
        }
        return f;
    }

    // One core's FMA peak for T, measured at the start of each configuration (the clock of
    // this shared machine moves within minutes), and `flops` in `seconds` as a fraction of it.
    double fma_peak = 0;
    double fma_share(double flops, double seconds) const {
        return flops / seconds / 1e9 / fma_peak;
    }

    void row(const char* what, const Stat& s, double per, double flops, const char* extra = "") {
        std::printf("  %-28s %10s %10s %10s", what, fmt_time(s.median).c_str(),
                    fmt_time(s.q3 - s.q1).c_str(), fmt_time(s.best).c_str());
        if (flops > 0) std::printf(" %9.2f", flops / s.median / 1e9);
        else std::printf(" %9s", "-");
        if (per > 0) std::printf(" %12.0f", per / s.median);
        else std::printf(" %12s", "-");
        std::printf("  %s\n", extra);
    }

    void run() {
        std::printf("\n%s: ", cfg.name.c_str());
        for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
            std::printf("%s%zu", i ? "-" : "", cfg.sizes[i]);
        std::printf(" %s/%s, %s, batch %zu, eta %g, %s, %zu rows (%zu steps)\n",
                    act_name(cfg.hidden), act_name(cfg.output),
                    cfg.loss == dp::Loss::quadratic ? "quadratic" : "categorical_crossentropy",
                    B, cfg.eta, cfg.f64 ? "float64" : "float32", rows, rows / B);
        fma_peak = measure_fma_peak<T>(opt);
        std::printf("  FMA peak of one core now (multiply-adds on registers only, %s instructions "
                    "as the small-batch kernels): %.1f GFLOP/s\n",
                    dp::micro::isa_name(dp::micro::selected_isa.load()), fma_peak);
        std::printf("  %-28s %10s %10s %10s %9s %12s\n", "what", "median", "IQR", "best", "GFLOP/s",
                    "samples/s");

        dp::Network<T> net(cfg.sizes, acts, cfg.loss);
        init(net);
        const std::size_t n_in = cfg.sizes.front(), n_out = cfg.sizes.back();
        dp::AlignedVector<T> X, Y, out(B * n_out);
        fill_uniform(X, rows * n_in);
        fill_targets(Y, rows);
        dp::MatrixView<const T> Xb(X.data(), B, n_in), Yb(Y.data(), B, n_out);
        dp::MatrixView<const T> Xall(X.data(), rows, n_in), Yall(Y.data(), rows, n_out);
        const double f_fwd = flops_per_step(B, false), f_step = flops_per_step(B, true);
        const T eta = T(cfg.eta);
        const std::vector<T> initial(net.parameters(), net.parameters() + net.n_parameters());
        auto restore = [&] { std::copy(initial.begin(), initial.end(), net.parameters()); };

        Stat s_pred = time_call([&] { net.predict(Xb, dp::MatrixView<T>(out.data(), B, n_out)); }, opt);
        row("Network::predict (1 batch)", s_pred, double(B), f_fwd);
        Stat s_bp = time_call([&] { net.backprop(Xb, Yb); }, opt);
        row("Network::backprop (1 batch)", s_bp, double(B), f_step);
        restore();
        Stat s_step = time_call([&] { net.sgd_step(Xb, Yb, eta); }, opt);
        row("Network::sgd_step (1 batch)", s_step, double(B), f_step);
        restore();
        Options epoch_opt = opt;
        epoch_opt.min_time = 0;  // one epoch per measurement
        Stat s_epoch = time_call([&] {
            restore();
            net.train_epoch(Xall, Yall, nullptr, B, eta, 0);
        }, epoch_opt);
        const double steps = double(rows / B);
        row("Network::train_epoch", s_epoch, double(rows), f_step * steps);
        Stat s_epoch_step{s_epoch.median / steps, s_epoch.q1 / steps, s_epoch.q3 / steps, s_epoch.best / steps};
        char of_peak[64];
        std::snprintf(of_peak, sizeof of_peak, "%.0f%% of the FMA peak",
                      100 * fma_share(f_step, s_epoch_step.median));
        row("  train_epoch per step", s_epoch_step, double(B), f_step, of_peak);

        // ---- the pieces of one step, each over all layers --------------------------------
        // 64-byte aligned, as the core's own workspaces are (aligned.hpp).
        std::vector<dp::AlignedVector<T>> Z(L), A(L), D(L), gW(L), gb(L);
        for (std::size_t l = 0; l < L; ++l) {
            const std::size_t n = cfg.sizes[l + 1];
            Z[l].assign(B * n, T(0.1));
            A[l].assign(B * n, T(0.5));
            D[l].assign(B * n, T(0.01));
            gW[l].assign(n * cfg.sizes[l], T(0));
            gb[l].assign(n, T(0));
        }
        auto Zv = [&](std::size_t l) { return dp::MatrixView<T>(Z[l].data(), B, cfg.sizes[l + 1]); };
        auto Av = [&](std::size_t l) { return dp::MatrixView<T>(A[l].data(), B, cfg.sizes[l + 1]); };
        auto Dv = [&](std::size_t l) { return dp::MatrixView<T>(D[l].data(), B, cfg.sizes[l + 1]); };
        auto input = [&](std::size_t l) -> const T* { return l == 0 ? X.data() : A[l - 1].data(); };
        // Realistic activations for f' (relu sparsity, sigmoid values).
        net.backprop(Xb, Yb);
        for (std::size_t l = 0; l < L; ++l) {
            std::copy(net.zs(l).data, net.zs(l).data + Z[l].size(), Z[l].begin());
            std::copy(net.activations(l).data, net.activations(l).data + A[l].size(), A[l].begin());
            std::copy(net.deltas(l).data, net.deltas(l).data + D[l].size(), D[l].begin());
        }

        const T zero_rate = T(zero_rate_source);
        std::size_t widest = 0;
        for (std::size_t l = 0; l < L; ++l) widest = std::max(widest, cfg.sizes[l + 1]);
        std::vector<T> scratch(B * widest);
        struct Piece { const char* name; std::function<void()> fn; double flops; bool gemm; };
        double f_fwd_gemm = 0, f_delta = 0, f_wgrad = 0;
        for (std::size_t l = 0; l < L; ++l) {
            const double k = double(cfg.sizes[l]) * double(cfg.sizes[l + 1]) * 2 * double(B);
            f_fwd_gemm += k;
            f_wgrad += k;
            if (l > 0) f_delta += k;
        }
        // Pieces both paths share.
        auto loss_and_output_error = [&] {
            const std::size_t l = L - 1;
            volatile double c = dp::loss_sum<T>(cfg.loss, Zv(l), Av(l), Yb);
            (void)c;
            dp::output_error<T>(acts[l], cfg.loss, Zv(l), Av(l), Yb, Dv(l));
        };
        auto delta_products = [&] {
            for (std::size_t l = L; l-- > 1;) {
                auto W = net.weights(l);
                dp::blas::gemm<T>(false, false, B, W.cols, W.rows, T(1), D[l].data(), W.rows,
                                  W.data, W.cols, T(0), D[l - 1].data(), W.cols);
            }
        };
        auto derivative_products = [&] {
            for (std::size_t l = L - 1; l-- > 0;)
                dp::multiply_by_derivative<T>(acts[l], Zv(l), Av(l), Dv(l));
        };
        auto bias_gradients = [&] {
            for (std::size_t l = 0; l < L; ++l)
                dp::dense_bias_gradient<T>(Dv(l), T(1) / T(B), dp::VectorView<T>(gb[l].data(), gb[l].size()));
        };
        // On batches the small-batch kernels take (microkernels.hpp), train_epoch's plain SGD
        // step is: the forward product with the bias in its epilogue, then the weight-gradient
        // product whose epilogue applies the update and sums the squares for the norms.
        // The first layer as a transposed panel where its epoch step keeps it so
        // (micro::panel_columns, Network::use_first_panel): its first np rows of W, transposed.
        const bool small_batch = dp::micro::takes(B);
        const std::size_t np = dp::micro::panel_columns<T>(cfg.sizes[1], B);
        dp::AlignedVector<T> panel(np * cfg.sizes[0]);
        if (np > 0) {
            auto W = net.weights(0);
            dp::micro::transpose_panel<T>(true, np, W.cols, W.data, W.cols, panel.data(), np);
        }
        auto small_forward = [&] {
            for (std::size_t l = 0; l < L; ++l) {
                auto W = net.weights(l);
                const std::size_t rows_as_panel = l == 0 ? np : 0;
                if (rows_as_panel > 0)
                    dp::micro::panel_forward_product<T>(B, np, W.cols, input(0), W.cols,
                                                        panel.data(), np, net.biases(0).data,
                                                        Z[0].data(), W.rows);
                if (rows_as_panel < W.rows)
                    dp::micro::forward_product<T>(B, W.rows - rows_as_panel, W.cols, input(l),
                                                  W.cols, W.row(rows_as_panel), W.cols,
                                                  net.biases(l).data + rows_as_panel,
                                                  Z[l].data() + rows_as_panel, W.rows);
            }
        };
        auto small_gradient_step = [&] {
            // W <- W - 0 * D^T A: the whole fused update with a zero rate keeps the weights.
            double total = 0;
            for (std::size_t l = 0; l < L; ++l) {
                auto W = net.weights(l);
                if (l == 0 && np > 0)
                    total += std::sqrt(dp::dense_weight_step_panel<T>(
                        dp::MatrixView<const T>(Dv(0)), Xb, -zero_rate, T(1), panel.data(), np,
                        W, nullptr));
                else
                    total += std::sqrt(dp::micro::gradient_product<T>(
                        B, W.rows, W.cols, D[l].data(), W.rows, input(l), W.cols, -zero_rate,
                        T(1), W.data, W.cols));
            }
            volatile double sink = total;
            (void)sink;
        };
        std::vector<Piece> small_pieces = {
            {"small-batch forward (+ b)", small_forward, f_fwd_gemm, true},
            {"activation", [&] {
                 for (std::size_t l = 0; l < L; ++l)
                     dp::activate<T>(acts[l], dp::MatrixView<const T>(Zv(l)), Av(l));
             }, 0, false},
            {"loss + BP1 output error", loss_and_output_error, 0, false},
            {"GEMM delta    D W", delta_products, f_delta, true},
            {"BP2 f'(Z) product", derivative_products, 0, false},
            {"BP3 bias gradient", bias_gradients, 0, false},
            {"small-batch grad_W + SGD + norm", small_gradient_step, f_wgrad, true},
        };
        std::vector<Piece> blas_pieces = {
            {"GEMM forward  A W^T", [&] {
                 for (std::size_t l = 0; l < L; ++l) {
                     auto W = net.weights(l);
                     dp::blas::gemm<T>(false, true, B, W.rows, W.cols, T(1), input(l), W.cols,
                                       W.data, W.cols, T(0), Z[l].data(), W.rows);
                 }
             }, f_fwd_gemm, true},
            {"bias rows + activation", [&] {
                 // dense_forward copies b into every row of Z before the GEMM (beta = 1); the
                 // copy goes to a scratch buffer here so that Z keeps the GEMM's values.
                 for (std::size_t l = 0; l < L; ++l) {
                     auto b = net.biases(l);
                     for (std::size_t i = 0; i < B; ++i)
                         std::copy(b.data, b.data + b.size, scratch.data() + i * b.size);
                     dp::activate<T>(acts[l], dp::MatrixView<const T>(Zv(l)), Av(l));
                 }
             }, 0, false},
            {"loss + BP1 output error", loss_and_output_error, 0, false},
            {"GEMM delta    D W", delta_products, f_delta, true},
            {"BP2 f'(Z) product", derivative_products, 0, false},
            {"GEMM grad_W   D^T A", [&] {
                 for (std::size_t l = 0; l < L; ++l) {
                     auto W = net.weights(l);
                     dp::blas::gemm<T>(true, false, W.rows, W.cols, B, T(1) / T(B), D[l].data(),
                                       W.rows, input(l), W.cols, T(0), gW[l].data(), W.cols);
                 }
             }, f_wgrad, true},
            {"BP3 bias gradient", bias_gradients, 0, false},
            {"SGD update + grad norms", [&] {
                 // train_epoch's plain-SGD update, p -= eta g, with the History's ||grad_W||_F
                 // per layer summed in the same pass (deltaprop::sgd_update_and_squares,
                 // dense.hpp). A zero rate leaves the weights as they are (the compiler
                 // cannot drop the work: p - 0 * g is not p for NaN/inf).
                 double total = 0;
                 for (std::size_t l = 0; l < L; ++l) {
                     auto W = net.weights(l);
                     const std::size_t layer_end =
                         l + 1 < L ? std::size_t(net.weights(l + 1).data - net.parameters())
                                   : net.n_parameters();
                     const std::size_t w_begin = std::size_t(W.data - net.parameters());
                     T* p = net.parameters() + w_begin;
                     const T* g = net.gradients() + w_begin;
                     total += std::sqrt(deltaprop::sgd_update_and_squares<T>(p, g, W.size(),
                                                                             zero_rate));
                     deltaprop::sgd_update_and_squares<T>(p + W.size(), g + W.size(),
                                                          layer_end - w_begin - W.size(),
                                                          zero_rate);
                 }
                 volatile double sink = total;
                 (void)sink;
             }, 0, false},
        };
        std::vector<Piece>& pieces = small_batch ? small_pieces : blas_pieces;
        // The pieces run over and over on the same buffers: BP2 multiplies D by f' in place
        // each time, which would soon leave subnormal numbers whose arithmetic is many times
        // slower. Flush them to zero while the pieces run (the training above is untouched).
        const unsigned int csr = denormals_off();
        std::printf("  pieces of one step through the %s (all layers each; subnormals flushed "
                    "to zero):\n", small_batch ? "small-batch kernels" : "BLAS");
        if (small_batch && np > 0)
            std::printf("  (the first layer's products on its transposed panel, %zu of its %zu "
                        "outputs, as train_epoch's plain SGD steps; the rest on W's rows)\n",
                        np, cfg.sizes[1]);
        if (B == 1)  // Network::backward_sgd's one-row path (micro::row_step) is not split up
            std::printf("  (batch 1: train_epoch takes its own fused step, one pass over each W "
                        "for the update and BP2; the pieces below are the general path's)\n");
        double sum = 0, gemm_sum = 0, gemm_flops = 0;
        std::vector<Stat> stats;
        for (auto& p : pieces) {
            stats.push_back(time_call(p.fn, opt));
            sum += stats.back().median;
            if (p.gemm) {
                gemm_sum += stats.back().median;
                gemm_flops += p.flops;
            }
        }
        for (std::size_t i = 0; i < pieces.size(); ++i) {
            char share[96];
            const int used = std::snprintf(share, sizeof share, "%5.1f%% of the pieces",
                                           100 * stats[i].median / sum);
            if (pieces[i].flops > 0)
                std::snprintf(share + used, sizeof share - used, ", %.0f%% of the FMA peak",
                              100 * fma_share(pieces[i].flops, stats[i].median));
            row((std::string("  ") + pieces[i].name).c_str(), stats[i], 0, pieces[i].flops, share);
        }
        Stat s_sum{sum, sum, sum, sum};
        char extra[128];
        std::snprintf(extra, sizeof extra, "train_epoch step / sum = %.2f", s_epoch_step.median / sum);
        row("  sum of the pieces", s_sum, double(B), f_step, extra);
        // The step's products back to back, through the core's blas::gemm (which may route
        // small products to its own kernels), and straight to the BLAS: the BLAS's peak on
        // exactly these shapes, of which train_epoch's GFLOP/s is reported as a fraction.
        Stat s_gemm = time_call([&] {
            for (auto& p : pieces)
                if (p.gemm) p.fn();
        }, opt);
        std::snprintf(extra, sizeof extra, "products are %.1f%% of the pieces; %.0f%% of the FMA peak",
                      100 * gemm_sum / sum, 100 * fma_share(gemm_flops, s_gemm.median));
        row(small_batch ? "products, small-batch kernels" : "products via blas::gemm", s_gemm,
            double(B), gemm_flops, extra);
        Stat s_blas = time_call([&] {
            for (std::size_t l = 0; l < L; ++l) {
                auto W = net.weights(l);
                raw_gemm<T>(false, true, B, W.rows, W.cols, T(1), input(l), W.cols, W.data,
                            W.cols, T(0), Z[l].data(), W.rows);
            }
            for (std::size_t l = L; l-- > 1;) {
                auto W = net.weights(l);
                raw_gemm<T>(false, false, B, W.cols, W.rows, T(1), D[l].data(), W.rows, W.data,
                            W.cols, T(0), D[l - 1].data(), W.cols);
            }
            for (std::size_t l = 0; l < L; ++l) {
                auto W = net.weights(l);
                raw_gemm<T>(true, false, W.rows, W.cols, B, T(1) / T(B), D[l].data(), W.rows,
                            input(l), W.cols, T(0), gW[l].data(), W.cols);
            }
        }, opt);
        std::snprintf(extra, sizeof extra, "train_epoch reaches %.1f%% of it; %.0f%% of the FMA peak",
                      100 * (f_step / s_epoch_step.median) / (gemm_flops / s_blas.median),
                      100 * fma_share(gemm_flops, s_blas.median));
        row("GEMM peak: BLAS alone", s_blas, double(B), gemm_flops, extra);
        restore_csr(csr);

        if (cfg.name == "P3") predict_rows(net, 10000);
    }

    // P5: inference on many rows through the same network; forward GEMM peak at that size.
    void predict_rows(dp::Network<T>& net, std::size_t m) {
        const std::size_t n_in = cfg.sizes.front(), n_out = cfg.sizes.back();
        dp::AlignedVector<T> X, out(m * n_out);
        fill_uniform(X, m * n_in);
        dp::MatrixView<const T> Xv(X.data(), m, n_in);
        const double f = flops_per_step(m, false);
        std::printf("\nP5: predict %zu x %zu through the P3 network, float32\n", m, n_in);
        std::printf("  %-28s %10s %10s %10s %9s %12s\n", "what", "median", "IQR", "best", "GFLOP/s",
                    "samples/s");
        Stat s = time_call([&] { net.predict(Xv, dp::MatrixView<T>(out.data(), m, n_out)); }, opt);
        row("Network::predict", s, double(m), f);
        for (std::size_t chunk : {std::size_t(1024), m}) {
            std::vector<std::vector<T>> Z(L);
            for (std::size_t l = 0; l < L; ++l) Z[l].resize(chunk * cfg.sizes[l + 1]);
            Stat g = time_call([&] {
                for (std::size_t start = 0; start < m; start += chunk) {
                    const std::size_t r = std::min(chunk, m - start);
                    for (std::size_t l = 0; l < L; ++l) {
                        auto W = net.weights(l);
                        const T* in = l == 0 ? X.data() + start * n_in : Z[l - 1].data();
                        raw_gemm<T>(false, true, r, W.rows, W.cols, T(1), in, W.cols, W.data,
                                    W.cols, T(0), Z[l].data(), W.rows);
                    }
                }
            }, opt);
            char name[64], extra[96];
            std::snprintf(name, sizeof name, "GEMM peak: BLAS, %zu-row chunks", chunk);
            std::snprintf(extra, sizeof extra, "predict reaches %.1f%% of it",
                          100 * (f / s.median) / (f / g.median));
            row(name, g, double(m), f, extra);
        }
    }
};

int parse(int argc, char** argv, Options& opt) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--config") opt.config = value();
        else if (a == "--threads") opt.threads = std::atoi(value().c_str());
        else if (a == "--repeats") opt.repeats = std::atoi(value().c_str());
        else if (a == "--rows") opt.rows = std::atol(value().c_str());
        else if (a == "--min-time") opt.min_time = std::atof(value().c_str());
        else if (a == "-h" || a == "--help") {
            std::printf("bench [--config P1-f64|P1-f32|P1|P2-b10|P2-b32|P2|P3|P4|all] [--threads N] "
                        "[--repeats R] [--rows N] [--min-time S]\n");
            std::exit(0);
        } else {
            std::fprintf(stderr, "unknown option %s (try --help)\n", a.c_str());
            return 2;
        }
    }
    if (opt.threads < 1 || opt.repeats < 1) {
        std::fprintf(stderr, "--threads and --repeats must be positive\n");
        return 2;
    }
    return 0;
}

int main(int argc, char** argv) {
    Options opt;
    if (int rc = parse(argc, argv, opt)) return rc;
    dp::blas::set_gemm(&BLAS_SYMBOL(sgemm_), &BLAS_SYMBOL(dgemm_));
    const char* blas = set_blas_threads(opt.threads);
    std::printf("deltaprop native benchmark; BLAS: %s; threads %d; median of %d measurements "
                "(each >= %g s; epochs: one per measurement)\n",
                blas, opt.threads, opt.repeats, opt.min_time);
    bool any = false;
    for (const Config& cfg : all_configs()) {
        const bool chosen = opt.config == "all" || opt.config == cfg.name ||
                            (opt.config.size() == 2 && cfg.name.rfind(opt.config, 0) == 0);
        if (!chosen) continue;
        any = true;
        if (cfg.f64) Bench<double>(cfg, opt).run();
        else Bench<float>(cfg, opt).run();
    }
    if (!any) {
        std::fprintf(stderr, "unknown --config %s\n", opt.config.c_str());
        return 2;
    }
    return 0;
}
