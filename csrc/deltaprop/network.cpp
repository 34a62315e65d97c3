#include "network.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dense.hpp"
#include "dropout.hpp"
#include "microkernels.hpp"
#include "vmath.hpp"

namespace deltaprop {

template <class T>
Network<T>::Network(std::vector<std::size_t> sizes, std::vector<Activation> activations, Loss loss)
    : sizes_(std::move(sizes)), activations_(std::move(activations)), loss_(loss) {
    if (sizes_.size() < 2)
        throw std::invalid_argument("a network needs at least an input and an output size; got " +
                                    std::to_string(sizes_.size()) + " sizes");
    if (activations_.size() != sizes_.size() - 1)
        throw std::invalid_argument("need one activation per layer (" +
                                    std::to_string(sizes_.size() - 1) + "); got " +
                                    std::to_string(activations_.size()));
    for (std::size_t i = 0; i < sizes_.size(); ++i)
        if (sizes_[i] == 0)
            throw std::invalid_argument("layer sizes must be positive; sizes[" + std::to_string(i) +
                                        "] is 0");
    for (std::size_t l = 0; l + 1 < activations_.size(); ++l)
        if (activations_[l] == Activation::softmax)
            throw std::invalid_argument("softmax is valid only on the output layer; layer " +
                                        std::to_string(l) + " is hidden");
    require_valid_pairing(activations_.back(), loss_);

    std::size_t total = 0;
    for (std::size_t l = 0; l < n_layers(); ++l) {
        offsets_.push_back(total);
        total = aligned_count<T>(total + sizes_[l + 1] * sizes_[l] + sizes_[l + 1]);
    }
    parameters_.assign(total, T(0));
    gradients_.assign(total, T(0));
    zs_.resize(n_layers());
    activations_ws_.resize(n_layers());
    deltas_.resize(n_layers());
    masks_.resize(n_layers());
    dropped_.resize(n_layers());
    weight_gradient_squares_.assign(n_layers(), std::nullopt);
}

template <class T>
void Network<T>::layer_out_of_range(std::size_t layer) const {
    throw std::out_of_range("layer index " + std::to_string(layer) + " out of range (" +
                            std::to_string(n_layers()) + " layers)");
}

template <class T>
void Network<T>::reserve(std::size_t rows) {
    if (rows <= capacity_) return;
    for (std::size_t l = 0; l < n_layers(); ++l) {
        zs_[l].resize(rows * sizes_[l + 1]);
        activations_ws_[l].resize(rows * sizes_[l + 1]);
        deltas_[l].resize(rows * sizes_[l + 1]);
        if (l < config_.dropout.size() && config_.dropout[l] > 0) {
            masks_[l].resize(rows * sizes_[l + 1]);
            dropped_[l].resize(rows * sizes_[l + 1]);
        }
    }
    capacity_ = rows;
}

template <class T>
void Network<T>::check_batch(const MatrixView<const T>& X, const MatrixView<const T>* Y) const {
    if (X.rows == 0) throw std::invalid_argument("X has no rows");
    if (X.cols != sizes_.front())
        throw std::invalid_argument("X must have " + std::to_string(sizes_.front()) +
                                    " columns; got " + std::to_string(X.cols));
    if (Y != nullptr) require_shape(*Y, X.rows, sizes_.back(), "Y");
}

template <class T>
MatrixView<const T> Network<T>::layer_input(const MatrixView<const T>& X, std::size_t layer) {
    if (layer == 0) return X;
    if (dropout_active(layer - 1))
        return MatrixView<const T>(dropped_[layer - 1].data(), rows_, sizes_[layer]);
    return activations(layer - 1);
}

template <class T>
void Network<T>::forward(const MatrixView<const T>& X) {
    forward_train(X, 0);
}

template <class T>
void Network<T>::forward_train(const MatrixView<const T>& X, std::uint64_t step) {
    reserve(X.rows);
    rows_ = X.rows;
    for (std::size_t l = 0; l < n_layers(); ++l) {
        MatrixView<T> Z = zs(l), A = activations(l);
        if (l == 0 && first_panel_columns_ > 0) {
            dense_forward_panel<T>(activations_[0], X, first_panel_.data(), first_panel_columns_,
                                   weights(0), biases(0), Z, A);
            first_z_from_kernels_ = true;
        } else {
            const bool small_batch = dense_forward<T>(activations_[l], layer_input(X, l),
                                                      step_weights(l), biases(l), Z, A);
            if (l == 0) first_z_from_kernels_ = small_batch;
        }
        if (dropout_active(l)) {  // H_l = A_l (.) M_l; A_l itself stays for f'
            MatrixView<T> M(masks_[l].data(), rows_, sizes_[l + 1]);
            if (M.size() >= (std::size_t(1) << 32))  // the hash numbers elements in 32 bits
                throw std::invalid_argument("dropout needs batch_size * layer width < 2^32");
            dropout_mask<T>(config_.key, step, l, config_.dropout[l], M);
            T* h = dropped_[l].data();
            for (std::size_t i = 0; i < M.size(); ++i) h[i] = A.data[i] * M.data[i];
        }
    }
}

template <class T>
double Network<T>::forward_loss(const MatrixView<const T>& Y) {
    const std::size_t L = n_layers() - 1;
    return loss_sum<T>(loss_, zs(L), activations(L), Y);
}

template <class T>
void Network<T>::delta_below(std::size_t layer) {
    dense_delta<T>(activations_[layer - 1], deltas(layer), weights(layer), zs(layer - 1),
                   activations(layer - 1), deltas(layer - 1));
    if (dropout_active(layer - 1)) {
        MatrixView<T> D = deltas(layer - 1);
        const T* mask = masks_[layer - 1].data();
        for (std::size_t i = 0; i < D.size(); ++i) D.data[i] *= mask[i];
    }
}

template <class T>
void Network<T>::backward(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                          micro::RowPrefetch* next_batch) {
    const std::size_t L = n_layers() - 1;
    const T inverse_m = T(1) / T(rows_);
    // BP1: the output error.
    output_error<T>(activations_[L], loss_, zs(L), activations(L), Y, deltas(L));
    for (std::size_t l = L + 1; l-- > 0;) {
        if (l > 0) delta_below(l);
        // BP3 (biases) and BP4 (weights), for the mean cost over the batch.
        dense_bias_gradient<T>(deltas(l), inverse_m, grad_biases(l));
        const std::optional<double> squares = dense_weight_gradient<T>(
            deltas(l), layer_input(X, l), inverse_m, T(0), grad_weights(l),
            l == 0 ? next_batch : nullptr);
        weight_gradient_squares_[l] = squares;
        if (squares) *weight_gradient_squares_[l] *= double(inverse_m) * double(inverse_m);
    }
}

template <class T>
bool Network<T>::fused_sgd_applies(std::size_t rows) const {
    return micro::takes(rows) && config_.optimizer.kind == OptimizerKind::sgd &&
           config_.clip_norm == 0 && config_.l1 == 0 && config_.weight_decay == 0;
}

template <class T>
void Network<T>::place_first_weights(const T* x) {
    const MatrixView<T> w = weights(0);
    const std::size_t offset = reinterpret_cast<std::uintptr_t>(x) % buffer_alignment / sizeof(T);
    if (first_weights_buffer_.size() < w.size() + buffer_alignment / sizeof(T))
        first_weights_buffer_.resize(w.size() + buffer_alignment / sizeof(T));
    first_weights_ = first_weights_buffer_.data() + offset;
    std::copy(w.data, w.data + w.size(), first_weights_);
}

template <class T>
void Network<T>::return_first_weights() {
    if (first_weights_ == nullptr) return;
    const MatrixView<T> w = weights(0);
    std::copy(first_weights_, first_weights_ + w.size(), w.data);
    first_weights_ = nullptr;
}

template <class T>
void Network<T>::use_first_panel(std::size_t rows) {
    const std::size_t np = micro::panel_columns<T>(sizes_[1], rows);
    if (np == first_panel_columns_) return;
    return_first_panel();
    if (np == 0) return;
    return_first_weights();
    const MatrixView<T> w = weights(0);
    if (first_panel_.size() < w.cols * np) first_panel_.resize(w.cols * np);
    micro::transpose_panel<T>(true, np, w.cols, w.data, w.cols, first_panel_.data(), np);
    first_panel_columns_ = np;
}

template <class T>
void Network<T>::return_first_panel() {
    if (first_panel_columns_ == 0) return;
    const MatrixView<T> w = weights(0);
    micro::transpose_panel<T>(false, first_panel_columns_, w.cols, w.data, w.cols,
                              first_panel_.data(), first_panel_columns_);
    first_panel_columns_ = 0;
}

template <class T>
void Network<T>::backward_sgd(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                              T learning_rate, T shrink, std::vector<double>* grad_norms,
                              micro::RowPrefetch* next_batch) {
    const std::size_t L = n_layers() - 1;
    const T inverse_m = T(1) / T(rows_);
    output_error<T>(activations_[L], loss_, zs(L), activations(L), Y, deltas(L));
    if (rows_ == 1 && !(training_ && config_.has_dropout()))
        return backward_sgd_one_row(X, learning_rate, shrink, grad_norms);
    for (std::size_t l = L + 1; l-- > 0;) {
        if (l > 0) delta_below(l);  // first: it needs W_l before this step changes it
        VectorView<T> b = biases(l), grad_b = grad_biases(l);
        dense_bias_gradient<T>(deltas(l), inverse_m, grad_b);
        for (std::size_t j = 0; j < b.size; ++j) b.data[j] -= learning_rate * grad_b.data[j];
        // W <- shrink W - (eta / m) D^T A_prev, straight from the small-batch kernel's
        // registers (the callers check micro::takes, so the squares come with it).
        const std::optional<double> squares =
            l == 0 && first_panel_columns_ > 0
                ? dense_weight_step_panel<T>(deltas(0), X, -learning_rate * inverse_m, shrink,
                                             first_panel_.data(), first_panel_columns_,
                                             weights(0), next_batch)
                : dense_weight_gradient<T>(deltas(l), layer_input(X, l),
                                           -learning_rate * inverse_m, shrink, step_weights(l),
                                           l == 0 ? next_batch : nullptr);
        // (Empty only if another thread switched the kernels off since the caller checked.)
        if (grad_norms != nullptr && squares)
            (*grad_norms)[l] += std::sqrt(*squares) * double(inverse_m);
        weight_gradient_squares_[l] = std::nullopt;  // gradients() was not written
    }
}

// Batch 1 (online SGD): each layer's step and the delta below it in one pass over W
// (micro::row_step), the rank-1 gradient's norm as ||d|| ||a||, and no BLAS call or
// workspace round trip per product. On 2-16-1 the generic kernels' blocking and calls made
// most of a step that is a chain of small dependent operations.
template <class T>
void Network<T>::backward_sgd_one_row(const MatrixView<const T>& X, T learning_rate, T shrink,
                                      std::vector<double>* grad_norms) {
    for (std::size_t l = n_layers(); l-- > 0;) {
        const T* d = deltas(l).data;
        const MatrixView<const T> input = layer_input(X, l);
        MatrixView<T> w = step_weights(l);
        T* d_below = l > 0 ? deltas(l - 1).data : nullptr;
        micro::row_step<T>(w.rows, w.cols, d, input.data, -learning_rate, shrink, w.data, w.cols,
                           d_below);
        if (l > 0)
            multiply_by_derivative<T>(activations_[l - 1], zs(l - 1), activations(l - 1),
                                      deltas(l - 1));
        VectorView<T> b = biases(l);
        for (std::size_t j = 0; j < b.size; ++j) b.data[j] -= learning_rate * d[j];
        if (grad_norms != nullptr)
            (*grad_norms)[l] += std::sqrt(sum_of_squares(d, w.rows) *
                                          sum_of_squares(input.data, w.cols));
        weight_gradient_squares_[l] = std::nullopt;  // gradients() was not written
    }
}

template <class T>
void Network<T>::apply_update(T learning_rate, EpochResult& result) {
    if (config_.optimizer.kind == OptimizerKind::sgd && config_.clip_norm == 0 &&
        config_.l2 == 0 && config_.l1 == 0 && config_.weight_decay == 0) {
        // Plain SGD: each layer's norm and update in one pass (see sgd_update_and_squares);
        // the result is what optimizer_.update gives, p - eta g, element by element.
        for (std::size_t l = 0; l < n_layers(); ++l) {
            MatrixView<T> g = grad_weights(l);
            const std::size_t begin = offsets_[l], end = l + 1 < n_layers()
                                                             ? offsets_[l + 1]
                                                             : parameters_.size();
            const double squares = sgd_update_and_squares<T>(
                parameters_.data() + begin, gradients_.data() + begin, g.size(), learning_rate);
            sgd_update_and_squares<T>(parameters_.data() + begin + g.size(),
                                      gradients_.data() + begin + g.size(),
                                      end - begin - g.size(), learning_rate);  // b (and padding)
            const std::optional<double>& known = weight_gradient_squares_[l];
            result.grad_norms[l] += std::sqrt(known ? *known : squares);
        }
        optimizer_.count_step();
        return;
    }
    for (std::size_t l = 0; l < n_layers(); ++l) {
        MatrixView<T> g = grad_weights(l);
        const std::optional<double>& known = weight_gradient_squares_[l];
        result.grad_norms[l] += std::sqrt(known ? *known : sum_of_squares(g.data, g.size()));
    }
    if (config_.clip_norm > 0) {  // torch.nn.utils.clip_grad_norm_ over every gradient
        const double squares = sum_of_squares(gradients_.data(), gradients_.size());
        const double coefficient = config_.clip_norm / (std::sqrt(squares) + 1e-6);
        if (coefficient < 1)
            for (T& value : gradients_) value *= T(coefficient);
    }
    const T l2 = T(config_.l2 / double(config_.n_train));
    const T l1 = T(config_.l1 / double(config_.n_train));
    const T decay = learning_rate * T(config_.weight_decay);
    for (std::size_t l = 0; l < n_layers(); ++l) {  // weights only; biases are not regularized
        MatrixView<T> w = weights(l), g = grad_weights(l);
        if (config_.l2 > 0)  // Nielsen's (lambda / n) w
            for (std::size_t i = 0; i < w.size(); ++i) g.data[i] += l2 * w.data[i];
        if (config_.l1 > 0)  // (lambda / n) sgn(w)
            for (std::size_t i = 0; i < w.size(); ++i)
                g.data[i] += l1 * T((w.data[i] > T(0)) - (w.data[i] < T(0)));
        if (config_.weight_decay > 0)  // decoupled: w <- w - eta * weight_decay * w
            for (std::size_t i = 0; i < w.size(); ++i) w.data[i] -= decay * w.data[i];
    }
    optimizer_.update(parameters_.data(), gradients_.data(), parameters_.size(), learning_rate);
}

// Inference only, so no Z is kept: each layer's A = f(Z) overwrites its Z in one of two
// buffers that alternate between layers, and the output layer writes straight into `out`.
// Against the training workspaces (Z and A per layer, then a copy of A_L) this took P5's
// predict (10000 x 784 through 784-1024-1024-10, float32) from 1.06x to 0.99x of the time
// of its three GEMMs alone. Chunks of up to 2048 rows, each buffer at most 8 MiB (at least
// 64 rows): OpenBLAS ran P5's GEMMs 4% faster in chunks of 2048 rows than of 1024 (231.6
// against 241.6 ms), no faster in larger ones.
template <class T>
void Network<T>::predict(const MatrixView<const T>& X, const MatrixView<T>& out) {
    check_batch(X, nullptr);
    require_shape(out, X.rows, sizes_.back(), "out");
    const std::size_t L = n_layers() - 1;
    std::size_t widest_hidden = 1;
    for (std::size_t l = 0; l < L; ++l) widest_hidden = std::max(widest_hidden, sizes_[l + 1]);
    constexpr std::size_t predict_chunk_rows = 2048, predict_chunk_bytes = std::size_t(8) << 20;
    const std::size_t chunk = std::min(
        X.rows, std::clamp<std::size_t>(predict_chunk_bytes / (widest_hidden * sizeof(T)), 64,
                                        predict_chunk_rows));
    if (L > 0)
        for (AlignedVector<T>& buffer : inference_)
            if (buffer.size() < chunk * widest_hidden) buffer.resize(chunk * widest_hidden);
    for (std::size_t start = 0; start < X.rows; start += chunk) {
        const std::size_t m = std::min(chunk, X.rows - start);
        MatrixView<const T> input(X.row(start), m, X.cols);
        for (std::size_t l = 0; l <= L; ++l) {
            const MatrixView<T> A(l == L ? out.row(start) : inference_[l % 2].data(), m,
                                  sizes_[l + 1]);
            dense_forward<T>(activations_[l], input, weights(l), biases(l), A, A);  // Z = A
            input = A;
        }
    }
}

template <class T>
double Network<T>::loss(const MatrixView<const T>& X, const MatrixView<const T>& Y) {
    check_batch(X, &Y);
    const std::size_t chunk = std::max<std::size_t>(capacity_, 1024);
    double total = 0;
    for (std::size_t start = 0; start < X.rows; start += chunk) {
        const std::size_t m = std::min(chunk, X.rows - start);
        forward(MatrixView<const T>(X.row(start), m, X.cols));
        total += forward_loss(MatrixView<const T>(Y.row(start), m, Y.cols));
    }
    return total / double(X.rows);
}

template <class T>
double Network<T>::backprop(const MatrixView<const T>& X, const MatrixView<const T>& Y) {
    check_batch(X, &Y);
    forward(X);
    const double cost = forward_loss(Y) / double(X.rows);
    backward(X, Y);
    return cost;
}

template <class T>
double Network<T>::sgd_step(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                            T learning_rate) {
    check_batch(X, &Y);
    if (!micro::takes(X.rows)) {
        const double cost = backprop(X, Y);
        // Through the same pass as train_epoch's plain-SGD update, for the same values.
        sgd_update_and_squares<T>(parameters_.data(), gradients_.data(), parameters_.size(),
                                  learning_rate);
        return cost;
    }
    // The same fused step as train_epoch's, so that steps taken one by one replay an epoch.
    // Where an epoch's step runs on the first layer's panel (see use_first_panel), so does
    // this one's forward product, on a copy of W that is then dropped: the panel's sums
    // differ from those of W's rows in rounding. Not the gradient: the panel's is W's
    // transposed, the same sums in the same order (see dense_weight_step_panel), so W's rows
    // are updated where they are, and the copy back, 20 us of 784-100-10's step at batch 32,
    // is saved.
    use_first_panel(X.rows);
    {
        struct PanelDrop {
            Network& network;
            ~PanelDrop() { network.first_panel_columns_ = 0; }  // W's rows are unchanged
        } panel_drop{*this};
        forward(X);
    }
    const double cost = forward_loss(Y) / double(X.rows);
    backward_sgd(X, Y, learning_rate, T(1), nullptr);
    return cost;
}

template <class T>
void Network<T>::configure_training(const TrainingConfig& config, bool reset_optimizer) {
    if (config.dropout.size() != n_layers() - 1)
        throw std::invalid_argument("need one dropout rate per hidden layer (" +
                                    std::to_string(n_layers() - 1) + "); got " +
                                    std::to_string(config.dropout.size()));
    for (std::size_t l = 0; l < config.dropout.size(); ++l) {
        const double p = config.dropout[l];
        if (!(p >= 0 && p < 1))
            throw std::invalid_argument("dropout rates must be in [0, 1); got " + std::to_string(p));
        // The mask hash numbers layers in 6 bits (see dropout.hpp).
        if (p > 0 && l >= 64)
            throw std::invalid_argument("dropout is supported on the first 64 hidden layers only");
    }
    if (config.n_train == 0) throw std::invalid_argument("n_train must be positive");
    if (!(config.clip_norm >= 0)) throw std::invalid_argument("clip_norm must be >= 0 (0: off)");
    config_ = config;
    if (reset_optimizer || !optimizer_ready_) {
        optimizer_ = Optimizer<T>(config.optimizer, parameters_.size());
        optimizer_ready_ = true;
    }
    // Dropout buffers for the rows already reserved.
    const std::size_t rows = capacity_;
    capacity_ = 0;
    reserve(rows);
}

namespace {

// The first NaN or Inf of a batch that holds one, as an index of the whole X (or Y):
// `order` maps the batch's rows, starting at `start` of the epoch, back to the rows of X.
template <class T>
[[noreturn]] void refuse_non_finite(const MatrixView<const T>& batch, const char* name,
                                    const std::int64_t* order, std::size_t start) {
    for (std::size_t i = 0; i < batch.rows; ++i)
        for (std::size_t c = 0; c < batch.cols; ++c)
            if (!std::isfinite(batch.row(i)[c])) {
                const std::size_t row =
                    order != nullptr ? static_cast<std::size_t>(order[start + i]) : start + i;
                throw std::invalid_argument(std::string(name) + " contains NaN or Inf (at index " +
                                            shape_str(row, c) +
                                            "); remove or impute those values first");
            }
    throw std::logic_error("refuse_non_finite: the batch is finite");
}

}  // namespace

template <class T>
EpochResult Network<T>::train_epoch(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                                    const std::int64_t* order, std::size_t batch_size,
                                    T learning_rate, std::uint64_t first_step,
                                    const std::function<bool()>& should_stop, bool check_finite) {
    check_batch(X, &Y);
    if (batch_size == 0) throw std::invalid_argument("batch_size must be positive; got 0");
    if (!optimizer_ready_) configure_training(TrainingConfig{{}, 0, 0, 0,
                                                             std::vector<double>(n_layers() - 1, 0.0),
                                                             0, 0, X.rows}, true);
    const std::size_t n = X.rows, n_in = X.cols, n_out = Y.cols;
    if (order != nullptr)
        for (std::size_t i = 0; i < n; ++i)
            if (order[i] < 0 || static_cast<std::size_t>(order[i]) >= n)
                throw std::out_of_range("order[" + std::to_string(i) + "] = " +
                                        std::to_string(order[i]) + " is not a row index of X (" +
                                        std::to_string(n) + " rows)");
    const std::size_t batch_rows = std::min(batch_size, n);
    reserve(batch_rows);
    // Each batch is copied into batch_x_ (64-byte aligned) when shuffled, and also when X
    // does not start on a 64-byte boundary (NumPy aligns to 16 bytes): the small-batch
    // kernels' loads would straddle cache lines, which cost 784-30-10's float32 epoch 9.5%
    // (12.8 against 11.7 ms, native); copied, 12.1. Rows narrower than a cache line are
    // not copied for alignment, and a batch of one row is that row wherever it is (P4's
    // 2-input rows: the copies were 4% of its epoch).
    const bool misaligned = reinterpret_cast<std::uintptr_t>(X.data) % buffer_alignment != 0 &&
                            n_in * sizeof(T) >= buffer_alignment;
    // Unless the AVX-512 kernels read X's rows in place as whole aligned vectors: when they
    // are consecutive, whole vectors long, and the first layer's W is kept at the same offset
    // past a 64-byte boundary for the epoch (place_first_weights), which the fused SGD step
    // allows (the other steps update parameters_ where they are). Against copying each batch
    // (native, X 16 bytes past a boundary, alternating): epochs of 784-30-10 8-9% faster
    // (float64 19.17 -> 17.46 ms, float32 10.47 -> 9.65), 784-100-10 3% (batch 32 24.37 ->
    // 23.52, batch 10 26.42 -> 25.67); see micro::detail::Masked512.
    // (Not for fewer rows than twice W's: moving W there and back would copy more than the
    // batches hold.)
    // Nor when the first layer's W is a transposed panel (see use_first_panel): the panel
    // kernels read X one value at a time, and the rows left of W straddle lines on fewer
    // than a vector's worth of outputs.
    const bool panel = fused_sgd_applies(batch_rows) &&
                       micro::panel_columns<T>(sizes_[1], batch_rows) > 0;
    const bool x_in_place = misaligned && !panel && order == nullptr && batch_size > 1 &&
                            n > 2 * sizes_[1] && fused_sgd_applies(batch_rows) &&
                            micro::reads_rows_at_offset(X.data, n_in);
    const bool copy_to_align = misaligned && !x_in_place && !panel;
    const bool copy_batches = (order != nullptr && batch_size > 1) || copy_to_align;
    if (copy_batches && batch_x_.size() < batch_rows * n_in) {
        batch_x_.resize(batch_rows * n_in);
        batch_y_.resize(batch_rows * n_out);
    }
    // What a refused batch puts back (a copy per checked epoch: fit checks only its first).
    AlignedVector<T> saved_parameters;
    Optimizer<T> saved_optimizer;
    if (check_finite) {
        saved_parameters = parameters_;
        saved_optimizer = optimizer_;
    }
    EpochResult result;
    result.grad_norms.assign(n_layers(), 0.0);
    double total_cost = 0;
    const std::size_t L = n_layers() - 1;
    std::size_t start = 0;
    training_ = true;
    if (x_in_place) place_first_weights(X.data);
    // The first layer's W goes back where Python's views see it however the epoch ends.
    struct FirstWeightsReturn {
        Network& network;
        ~FirstWeightsReturn() {
            network.return_first_panel();
            network.return_first_weights();
        }
    } first_weights_return{*this};
    for (; start < n; start += batch_size) {
        if (should_stop && should_stop()) {
            result.interrupted = true;
            break;
        }
        const std::size_t m = std::min(batch_size, n - start);
        const std::size_t first_row =
            order != nullptr && m == 1 ? static_cast<std::size_t>(order[start]) : start;
        MatrixView<const T> xb(X.row(first_row), m, n_in), yb(Y.row(first_row), m, n_out);
        if (copy_batches) {
            for (std::size_t i = 0; i < m; ++i) {
                const std::size_t row =
                    order != nullptr ? static_cast<std::size_t>(order[start + i]) : start + i;
                std::copy(X.row(row), X.row(row) + n_in, batch_x_.data() + i * n_in);
                std::copy(Y.row(row), Y.row(row) + n_out, batch_y_.data() + i * n_out);
            }
            xb = MatrixView<const T>(batch_x_.data(), m, n_in);
            yb = MatrixView<const T>(batch_y_.data(), m, n_out);
        }
        try {
            // The next batch's rows of X, brought in while this step computes.
            const std::size_t next_start = start + m;
            micro::RowPrefetch next_batch;
            if (next_start < n)
                next_batch = micro::RowPrefetch(order != nullptr ? X.data : X.row(next_start),
                                                n_in * sizeof(T),
                                                order != nullptr ? order + next_start : nullptr,
                                                std::min(batch_size, n - next_start));
            // Decided once per step: another thread may switch the kernels meanwhile.
            const bool fused = fused_sgd_applies(m);
            if (!fused) return_first_weights();  // apply_update works on parameters_
            // The panel where sgd_step would use it for this step (a last batch of one row
            // or a change of kernels by another thread puts W back in its place).
            if (fused)
                use_first_panel(m);
            else
                return_first_panel();
            forward_train(xb, first_step + result.steps);
            if (check_finite) {
                // After the forward pass, which changes no parameter: through the small-batch
                // kernels, a NaN or Inf in X's row i makes all of Z's row i NaN or Inf (x w
                // is NaN or +-Inf for every w, 0 included, and stays so in a sum), so a
                // finite first-layer Z (n_1 values a row) clears X (n_0 values a row); only
                // a Z that is not finite, which finite X can also give by overflow, has X
                // scanned. (Not through the BLAS: a reference BLAS skips zero operands.) That
                // scan was 1.2% of 784-100-10's checked epoch at batch 32.
                const MatrixView<T> z = zs(0);
                const bool x_finite =
                    (first_z_from_kernels_ && vmath::all_finite(z.data, z.size())) ||
                    vmath::all_finite(xb.data, xb.size());
                if (!x_finite || !vmath::all_finite(yb.data, yb.size())) {
                    return_first_panel();
                    return_first_weights();
                    // In place: Python holds views of parameters_.
                    std::copy(saved_parameters.begin(), saved_parameters.end(),
                              parameters_.begin());
                    optimizer_ = std::move(saved_optimizer);
                    refuse_non_finite(x_finite ? yb : xb, x_finite ? "Y" : "X", order, start);
                }
            }
            total_cost += forward_loss(yb);
            result.correct += count_correct<T>(activations(L), yb);
            if (fused) {
                // Nielsen's L2: w <- w - eta (g + (lambda/n) w) = (1 - eta lambda/n) w - eta g.
                const T shrink = T(1) - learning_rate * T(config_.l2 / double(config_.n_train));
                backward_sgd(xb, yb, learning_rate, shrink, &result.grad_norms, &next_batch);
                optimizer_.count_step();
            } else {
                backward(xb, yb, &next_batch);
                apply_update(learning_rate, result);
            }
        } catch (...) {
            training_ = false;
            throw;
        }
        ++result.steps;
    }
    training_ = false;
    const std::size_t seen = std::min(start, n);
    result.mean_loss = seen > 0 ? total_cost / double(seen) : 0.0;
    for (double& norm : result.grad_norms) norm /= double(std::max<std::size_t>(result.steps, 1));
    return result;
}

template class Network<float>;
template class Network<double>;

}  // namespace deltaprop
