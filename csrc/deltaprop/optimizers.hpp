// Optimizers: one update rule per kind, as torch.optim defines them, over the flat
// parameter buffer; the state (v, m, s) is held by position, next to each parameter.
// Codes match deltaprop/optimizers.py (OPTIMIZER_CODES).
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace deltaprop {

enum class OptimizerKind : int { sgd = 0, momentum = 1, nesterov = 2, adam = 3, adamw = 4, rmsprop = 5, adagrad = 6 };

struct OptimizerConfig {
    OptimizerKind kind = OptimizerKind::sgd;
    double momentum = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, alpha = 0.99;
};

inline OptimizerKind optimizer_from_code(int code) {
    if (code < 0 || code > 6)
        throw std::invalid_argument("unknown optimizer code " + std::to_string(code) + "; expected 0..6");
    return static_cast<OptimizerKind>(code);
}

template <class T>
class Optimizer {
  public:
    Optimizer() = default;
    Optimizer(const OptimizerConfig& config, std::size_t n_parameters) : config_(config) {
        switch (config.kind) {
            case OptimizerKind::sgd: break;
            case OptimizerKind::momentum:
            case OptimizerKind::nesterov:
            case OptimizerKind::rmsprop:
            case OptimizerKind::adagrad: first_.assign(n_parameters, T(0)); break;
            case OptimizerKind::adam:
            case OptimizerKind::adamw:
                first_.assign(n_parameters, T(0));
                second_.assign(n_parameters, T(0));
                break;
        }
    }

    std::size_t steps() const { return steps_; }
    // A plain-SGD step that the caller applied itself (Network::backward_sgd); sgd keeps no
    // state, so only the step count moves.
    void count_step() {
        if (config_.kind != OptimizerKind::sgd)
            throw std::logic_error("only plain sgd steps can be applied outside the optimizer");
        ++steps_;
    }

    // One update of p (n values) with gradient g at learning rate eta; t counts from 1.
    void update(T* p, const T* g, std::size_t n, T eta) {
        ++steps_;
        const OptimizerConfig& c = config_;
        T* v = first_.data();
        T* s = second_.data();
        switch (c.kind) {
            case OptimizerKind::sgd:  // p <- p - eta g
                for (std::size_t i = 0; i < n; ++i) p[i] -= eta * g[i];
                break;
            case OptimizerKind::momentum: {  // v <- mu v + g; p <- p - eta v
                const T mu = T(c.momentum);
                for (std::size_t i = 0; i < n; ++i) {
                    v[i] = mu * v[i] + g[i];
                    p[i] -= eta * v[i];
                }
                break;
            }
            case OptimizerKind::nesterov: {  // v <- mu v + g; p <- p - eta (g + mu v)
                const T mu = T(c.momentum);
                for (std::size_t i = 0; i < n; ++i) {
                    v[i] = mu * v[i] + g[i];
                    p[i] -= eta * (g[i] + mu * v[i]);
                }
                break;
            }
            case OptimizerKind::adam:
            case OptimizerKind::adamw: {
                // m <- b1 m + (1 - b1) g; s <- b2 s + (1 - b2) g^2;
                // p <- p - eta (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
                const T b1 = T(c.beta1), b2 = T(c.beta2), eps = T(c.eps);
                const T correction1 = T(1 - std::pow(c.beta1, double(steps_)));
                const T correction2 = T(1 - std::pow(c.beta2, double(steps_)));
                for (std::size_t i = 0; i < n; ++i) {
                    v[i] = b1 * v[i] + (T(1) - b1) * g[i];
                    s[i] = b2 * s[i] + (T(1) - b2) * g[i] * g[i];
                    p[i] -= eta * (v[i] / correction1) / (std::sqrt(s[i] / correction2) + eps);
                }
                break;
            }
            case OptimizerKind::rmsprop: {  // s <- alpha s + (1 - alpha) g^2; p <- p - eta g / (sqrt(s) + eps)
                const T alpha = T(c.alpha), eps = T(c.eps);
                for (std::size_t i = 0; i < n; ++i) {
                    v[i] = alpha * v[i] + (T(1) - alpha) * g[i] * g[i];
                    p[i] -= eta * g[i] / (std::sqrt(v[i]) + eps);
                }
                break;
            }
            case OptimizerKind::adagrad: {  // s <- s + g^2; p <- p - eta g / (sqrt(s) + eps)
                const T eps = T(c.eps);
                for (std::size_t i = 0; i < n; ++i) {
                    v[i] += g[i] * g[i];
                    p[i] -= eta * g[i] / (std::sqrt(v[i]) + eps);
                }
                break;
            }
        }
    }

  private:
    OptimizerConfig config_;
    std::vector<T> first_, second_;  // v (or s for rmsprop/adagrad) and s, by parameter position
    std::size_t steps_ = 0;
};

}  // namespace deltaprop
