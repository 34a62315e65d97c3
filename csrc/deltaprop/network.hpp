// The stack of dense layers: parameters in one flat buffer, workspaces sized once per batch
// size, backprop over a batch, the SGD step and the epoch loop. No Python in here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "activations.hpp"
#include "losses.hpp"
#include "view.hpp"

namespace deltaprop {

struct EpochResult {
    double mean_loss = 0;      // mean over the epoch's samples of the cost before each step
    std::size_t correct = 0;   // samples classified right before each step (see count_correct)
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

    // Parameters: for each layer W (n_out x n_in) then b (n_out), back to back.
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
    // One SGD step, W -= eta * grad_W, b -= eta * grad_b; returns the mean cost before it.
    double sgd_step(const MatrixView<const T>& X, const MatrixView<const T>& Y, T learning_rate);
    // SGD over mini-batches of consecutive rows of `order` (nullptr: 0..n-1); the last batch
    // may be smaller. Allocates only if batch_size exceeds every earlier batch.
    EpochResult train_epoch(const MatrixView<const T>& X, const MatrixView<const T>& Y,
                            const std::int64_t* order, std::size_t batch_size, T learning_rate);

    // Grow the workspaces to hold `rows` samples; never shrinks.
    void reserve(std::size_t rows);

  private:
    MatrixView<T> weight_view(std::vector<T>& buffer, std::size_t layer);
    VectorView<T> bias_view(std::vector<T>& buffer, std::size_t layer);
    MatrixView<T> workspace_view(std::vector<std::vector<T>>& buffers, std::size_t layer);
    void check_batch(const MatrixView<const T>& X, const MatrixView<const T>* Y) const;
    void forward(const MatrixView<const T>& X);
    // BP1..BP4 over the current batch. With apply_sgd the updates go straight into the
    // parameters (each layer's W is updated only after the delta below it has used it).
    void backward(const MatrixView<const T>& X, const MatrixView<const T>& Y, bool apply_sgd,
                  T learning_rate);
    double forward_loss(const MatrixView<const T>& Y);

    std::vector<std::size_t> sizes_;
    std::vector<Activation> activations_;
    Loss loss_;
    std::vector<std::size_t> offsets_;  // start of each layer's W in the flat buffers
    std::vector<T> parameters_;
    std::vector<T> gradients_;

    std::size_t capacity_ = 0;  // rows the workspaces hold
    std::size_t rows_ = 0;      // rows of the current batch
    std::vector<std::vector<T>> zs_, activations_ws_, deltas_;
    std::vector<T> batch_x_, batch_y_;  // gathered rows of a shuffled mini-batch
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace deltaprop
