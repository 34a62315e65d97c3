// The stack of dense layers: parameters in one flat buffer, workspaces sized once per batch
// size, backprop over a batch, the SGD step and the epoch loop. No Python in here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "activations.hpp"
#include "aligned.hpp"
#include "losses.hpp"
#include "optimizers.hpp"
#include "view.hpp"

namespace deltaprop {

namespace micro {
class RowPrefetch;  // microkernels.hpp
}

struct EpochResult {
    double mean_loss = 0;      // mean over the epoch's samples of the cost before each step
    std::size_t correct = 0;   // samples classified right before each step (see count_correct)
    std::size_t steps = 0;     // steps completed
    bool interrupted = false;  // should_stop ended the epoch early (after a whole step)
    std::vector<double> grad_norms;  // per layer, mean over the steps of ||grad_W||_F
};

// What fit sets once per call; see the order of operations in Network::train_step.
struct TrainingConfig {
    OptimizerConfig optimizer;
    double l2 = 0, l1 = 0, weight_decay = 0;
    std::vector<double> dropout;  // one rate per hidden layer
    double clip_norm = 0;         // 0: no clipping
    std::uint64_t key = 0;        // dropout hash key
    std::size_t n_train = 1;      // n of Nielsen's l2 / n

    bool has_dropout() const {
        for (double rate : dropout)
            if (rate > 0) return true;
        return false;
    }
};

template <class T>
class Network {
  public:
    // sizes: n_0 (inputs), n_1, ..., n_L; activations: one per layer (L of them).
    Network(std::vector<std::size_t> sizes, std::vector<Activation> activations, Loss loss);

    std::size_t n_layers() const { return activations_.size(); }
    const std::vector<std::size_t>& sizes() const { return sizes_; }
    Activation activation(std::size_t layer) const { return activations_.at(layer); }
    Loss loss_kind() const { return loss_; }

    // Parameters: for each layer W (n_out x n_in) then b (n_out); each layer's W starts on a
    // 64-byte boundary (zeros pad the gap), so the small-batch kernels load aligned rows.
    std::size_t n_parameters() const { return parameters_.size(); }
    T* parameters() { return parameters_.data(); }
    T* gradients() { return gradients_.data(); }
    MatrixView<T> weights(std::size_t layer) { return weight_view(parameters_, layer); }
    VectorView<T> biases(std::size_t layer) { return bias_view(parameters_, layer); }
    MatrixView<T> grad_weights(std::size_t layer) { return weight_view(gradients_, layer); }
    VectorView<T> grad_biases(std::size_t layer) { return bias_view(gradients_, layer); }

    // What the last backprop left in the workspaces, for its batch rows (layer is 0-based).
    MatrixView<T> zs(std::size_t layer) { return workspace_view(zs_, layer); }
    MatrixView<T> activations(std::size_t layer) { return workspace_view(activations_ws_, layer); }
    MatrixView<T> deltas(std::size_t layer) { return workspace_view(deltas_, layer); }

    void predict(const MatrixView<const T>& X, const MatrixView<T>& out);
    double loss(const MatrixView<const T>& X, const MatrixView<const T>& Y);  // mean cost
    // Fills gradients() with the gradient of the mean cost over X's rows; returns that cost.
    double backprop(const MatrixView<const T>& X, const MatrixView<const T>& Y);
    // One plain SGD step, W -= eta * grad_W, b -= eta * grad_b; returns the mean cost before it.
    // On batches the small-batch kernels take, gradients() is not written (see backward_sgd).
    double sgd_step(const MatrixView<const T>& X, const MatrixView<const T>& Y, T learning_rate);

    // Training settings for the following epochs; keeps the optimizer state unless
    // reset_optimizer is set (or the optimizer kind changed from a fresh network).
    void configure_training(const TrainingConfig& config, bool reset_optimizer);
    // Mini-batches of consecutive rows of `order` (nullptr: 0..n-1), the last one possibly
    // smaller; steps are numbered from first_step (for the dropout masks). should_stop is
    // asked between steps. Allocates only if batch_size exceeds every earlier batch.
    // check_finite: each batch is checked for NaN and Inf as its step begins, while it is
    // in cache anyway (a separate pass over X before the epoch cost fit 12% of P1's epoch;
    // X through its first layer's Z where it can, see train_epoch);
    // a bad value puts the parameters and the optimizer state back as they were when the
    // epoch began and throws std::invalid_argument naming X or Y and the value's index.
    // During an epoch that reads X in place (see place_first_weights) or keeps the first
    // layer's W as a transposed panel (see use_first_panel), that W (or its first rows) lives
    // in a copy: weights(0) shows it as it was when the epoch began, and a write to it from
    // another thread meanwhile is overwritten when the epoch ends.
    EpochResult train_epoch(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                            const std::int64_t* order, std::size_t batch_size, T learning_rate,
                            std::uint64_t first_step,
                            const std::function<bool()>& should_stop = nullptr,
                            bool check_finite = false);

    // Grow the workspaces to hold `rows` samples; never shrinks.
    void reserve(std::size_t rows);

  private:
    // The views, inline: a 2-16-1 step asks for about forty of them (14% of its time when
    // they were out-of-line calls).
    MatrixView<T> weight_view(AlignedVector<T>& buffer, std::size_t layer) {
        check_layer(layer);
        return {buffer.data() + offsets_[layer], sizes_[layer + 1], sizes_[layer]};
    }
    VectorView<T> bias_view(AlignedVector<T>& buffer, std::size_t layer) {
        check_layer(layer);
        return {buffer.data() + offsets_[layer] + sizes_[layer + 1] * sizes_[layer],
                sizes_[layer + 1]};
    }
    // The W a training step reads and updates: weights(layer), except the first layer's during
    // an epoch that keeps it at X's offset (see place_first_weights).
    MatrixView<T> step_weights(std::size_t layer) {
        if (layer == 0 && first_weights_ != nullptr)
            return {first_weights_, sizes_[1], sizes_[0]};
        return weights(layer);
    }
    MatrixView<T> workspace_view(std::vector<AlignedVector<T>>& buffers, std::size_t layer) {
        check_layer(layer);
        return {buffers[layer].data(), rows_, sizes_[layer + 1]};
    }
    void check_layer(std::size_t layer) const {
        if (layer >= n_layers()) layer_out_of_range(layer);
    }
    [[noreturn]] void layer_out_of_range(std::size_t layer) const;
    void check_batch(const MatrixView<const T>& X, const MatrixView<const T>* Y) const;
    void forward(const MatrixView<const T>& X);
    // Forward with inverted dropout on hidden layers (training only) at training step `step`.
    void forward_train(const MatrixView<const T>& X, std::uint64_t step);
    // The input of layer `layer`: X, or the previous layer's (dropped-out) activations.
    MatrixView<const T> layer_input(const MatrixView<const T>& X, std::size_t layer);
    // BP2: the delta of layer `layer - 1` from that of `layer` (times its dropout mask).
    void delta_below(std::size_t layer);
    // BP1..BP4 over the current batch into gradients(). next_batch: the rows to prefetch
    // for the next step, during the first layer's weight-gradient product (its last).
    void backward(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                  micro::RowPrefetch* next_batch = nullptr);
    // The same, but each layer's plain SGD step, W <- shrink W - eta grad_W and
    // b <- b - eta grad_b, is applied as its gradient is formed, in the small-batch kernel's
    // epilogue: the weight gradient never goes through memory (gradients() is not written).
    // Adds each layer's ||grad_W|| to grad_norms if given. For train_epoch when
    // fused_sgd_applies(), and for sgd_step on small batches.
    void backward_sgd(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                      T learning_rate, T shrink, std::vector<double>* grad_norms,
                      micro::RowPrefetch* next_batch = nullptr);
    // backward_sgd on one row without dropout: each layer's step and BP2 in one pass over W.
    void backward_sgd_one_row(const MatrixView<const T>& X, T learning_rate, T shrink,
                              std::vector<double>* grad_norms);
    // Whether a step on `rows` rows goes through backward_sgd.
    bool fused_sgd_applies(std::size_t rows) const;
    // For an epoch over an X whose rows start past a 64-byte boundary: a copy of the first
    // layer's W whose rows start at the same offset as X's (which the AVX-512 kernels then
    // read in place as aligned vectors, see micro::reads_rows_at_offset), used by the steps
    // in its place until return_first_weights copies it back.
    void place_first_weights(const T* x);
    void return_first_weights();
    // For steps of plain SGD on `rows` rows where micro::panel_columns gives np > 0: the first
    // layer's first np rows of W kept transposed (first_panel_, n_in x np) for the panel
    // kernels, which the steps use until return_first_panel puts them back (sgd_step uses
    // it for its forward product only, see there). Also gives back the copy of
    // place_first_weights, if there is one.
    void use_first_panel(std::size_t rows);
    void return_first_panel();
    // Clipping, regularization, decay and the optimizer's update, after backward.
    void apply_update(T learning_rate, EpochResult& result);
    double forward_loss(const MatrixView<const T>& Y);
    bool dropout_active(std::size_t layer) const {
        return training_ && layer < config_.dropout.size() && config_.dropout[layer] > 0;
    }

    std::vector<std::size_t> sizes_;
    std::vector<Activation> activations_;
    Loss loss_;
    std::vector<std::size_t> offsets_;  // start of each layer's W in the flat buffers
    AlignedVector<T> parameters_;
    AlignedVector<T> gradients_;
    // sum of squares of each layer's grad_W from the last backward, when its kernel gave it.
    std::vector<std::optional<double>> weight_gradient_squares_;

    std::size_t capacity_ = 0;  // rows the workspaces hold
    std::size_t rows_ = 0;      // rows of the current batch
    std::vector<AlignedVector<T>> zs_, activations_ws_, deltas_;
    std::vector<AlignedVector<T>> masks_, dropped_;  // dropout masks M_l and H_l = A_l * M_l
    AlignedVector<T> inference_[2];  // predict's activations, alternating between layers
    AlignedVector<T> batch_x_, batch_y_;  // a mini-batch's rows, copied (see train_epoch)
    AlignedVector<T> first_weights_buffer_;  // holds first_weights_ (see place_first_weights)
    T* first_weights_ = nullptr;
    AlignedVector<T> first_panel_;         // see use_first_panel
    std::size_t first_panel_columns_ = 0;  // np of first_panel_ in use; 0: W in its place
    bool first_z_from_kernels_ = false;  // the last forward's first layer: small-batch kernel?

    TrainingConfig config_;
    Optimizer<T> optimizer_;
    bool optimizer_ready_ = false;
    bool training_ = false;  // dropout applies only inside train_epoch
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace deltaprop
