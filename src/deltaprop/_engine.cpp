// pybind11 binding of the stateful network engine (csrc/deltaprop/network.hpp).
// Each function only checks dtype/layout (arrays arrive converted by the Python layer; no
// silent copies are made here), releases the GIL, takes the engine's lock and calls the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "deltaprop/blas.hpp"
#include "deltaprop/microkernels.hpp"
#include "deltaprop/network.hpp"

namespace py = pybind11;
using deltaprop::Activation;
using deltaprop::Loss;
using deltaprop::MatrixView;

namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

template <class T>
MatrixView<const T> matrix_arg(const CArray<T>& array, const char* name) {
    if (array.ndim() != 2)
        throw py::value_error(std::string(name) + " must be 2-D; got " + std::to_string(array.ndim()) + "-D");
    return {array.data(), static_cast<std::size_t>(array.shape(0)), static_cast<std::size_t>(array.shape(1))};
}

// The core network plus a lock, so that calls on one engine from several Python threads
// (which run without the GIL inside) take turns.
template <class T>
struct Engine {
    deltaprop::Network<T> network;
    std::mutex lock;

    Engine(const std::vector<std::size_t>& sizes, const std::vector<int>& activation_codes, int loss_code)
        : network(sizes, to_activations(activation_codes), deltaprop::loss_from_code(loss_code)) {}

    static std::vector<Activation> to_activations(const std::vector<int>& codes) {
        std::vector<Activation> result;
        for (int code : codes) result.push_back(deltaprop::activation_from_code(code));
        return result;
    }
};

// Asked by the core between training steps (without the GIL): every 50 ms it takes the GIL
// to let Python's signal handlers run; a pending KeyboardInterrupt stops the epoch. Reading
// the clock at every step cost a 2-16-1 step (0.3 us) a tenth of its time, so the clock is
// read every `stride` calls, the stride doubling while reads come less than 1 ms apart and
// halving when they come more than 4 ms apart.
class SignalPoll {
  public:
    bool operator()() {
        if (--countdown_ > 0) return false;
        const auto now = Clock::now();
        const auto since_read = now - last_read_;
        last_read_ = now;
        if (since_read < std::chrono::milliseconds(1) && stride_ < 4096) stride_ *= 2;
        else if (since_read > std::chrono::milliseconds(4) && stride_ > 1) stride_ /= 2;
        countdown_ = stride_;
        if (now - last_signal_check_ < std::chrono::milliseconds(50)) return false;
        last_signal_check_ = now;
        py::gil_scoped_acquire acquire;
        return PyErr_CheckSignals() != 0;
    }

  private:
    using Clock = std::chrono::steady_clock;
    Clock::time_point last_signal_check_ = Clock::now(), last_read_ = last_signal_check_;
    unsigned stride_ = 1, countdown_ = 1;
};

// A NumPy array over engine-owned memory; it keeps the engine alive.
template <class T>
py::array view_of(T* data, std::vector<py::ssize_t> shape, py::handle owner) {
    return py::array_t<T>(shape, data, owner);
}

template <class T>
py::array copy_of(const MatrixView<T>& m) {
    py::array_t<T> out({static_cast<py::ssize_t>(m.rows), static_cast<py::ssize_t>(m.cols)});
    std::copy(m.data, m.data + m.size(), out.mutable_data());
    return out;
}

template <class T>
void bind_engine(py::module_& m, const char* name) {
    using E = Engine<T>;
    py::class_<E>(m, name, "Native network engine: parameters, workspaces, backprop and SGD.")
        .def(py::init<const std::vector<std::size_t>&, const std::vector<int>&, int>(),
             py::arg("sizes"), py::arg("activations"), py::arg("loss"))
        .def_property_readonly("n_layers", [](E& e) { return e.network.n_layers(); })
        .def_property_readonly("sizes", [](E& e) { return e.network.sizes(); })
        .def("parameters", [](py::object self) {
            E& e = self.cast<E&>();
            return view_of<T>(e.network.parameters(), {static_cast<py::ssize_t>(e.network.n_parameters())}, self);
        }, "Flat view of all parameters: per layer W row-major, then b, each layer's W starting "
           "on a 64-byte boundary (zeros pad the gaps).")
        .def("weights", [](py::object self, std::size_t layer) {
            auto w = self.cast<E&>().network.weights(layer);
            return view_of<T>(w.data, {static_cast<py::ssize_t>(w.rows), static_cast<py::ssize_t>(w.cols)}, self);
        }, py::arg("layer"), "View of layer's W, shape (n_out, n_in).")
        .def("biases", [](py::object self, std::size_t layer) {
            auto b = self.cast<E&>().network.biases(layer);
            return view_of<T>(b.data, {static_cast<py::ssize_t>(b.size)}, self);
        }, py::arg("layer"), "View of layer's b, shape (n_out,).")
        .def("predict", [](E& e, const CArray<T>& X) {
            auto x = matrix_arg<T>(X, "X");
            py::array_t<T> out({static_cast<py::ssize_t>(x.rows), static_cast<py::ssize_t>(e.network.sizes().back())});
            MatrixView<T> o(out.mutable_data(), x.rows, e.network.sizes().back());
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> guard(e.lock);
            e.network.predict(x, o);
            return out;
        }, py::arg("X").noconvert(), "X (m, n_in) -> A_L (m, n_out).")
        .def("loss", [](E& e, const CArray<T>& X, const CArray<T>& Y) {
            auto x = matrix_arg<T>(X, "X"), y = matrix_arg<T>(Y, "Y");
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> guard(e.lock);
            return e.network.loss(x, y);
        }, py::arg("X").noconvert(), py::arg("Y").noconvert(), "Mean cost over the rows.")
        .def("backprop", [](E& e, const CArray<T>& X, const CArray<T>& Y, bool keep_trace) {
            auto x = matrix_arg<T>(X, "X"), y = matrix_arg<T>(Y, "Y");
            double cost;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> guard(e.lock);
                cost = e.network.backprop(x, y);
            }
            // Copies, made under the GIL: the workspaces are reused by the next call.
            py::list grad_b, grad_w, zs, activations, deltas;
            for (std::size_t l = 0; l < e.network.n_layers(); ++l) {
                auto gb = e.network.grad_biases(l);
                py::array_t<T> bias_copy(static_cast<py::ssize_t>(gb.size));
                std::copy(gb.data, gb.data + gb.size, bias_copy.mutable_data());
                grad_b.append(bias_copy);
                grad_w.append(copy_of<T>(e.network.grad_weights(l)));
                if (keep_trace) {
                    zs.append(copy_of<T>(e.network.zs(l)));
                    activations.append(copy_of<T>(e.network.activations(l)));
                    deltas.append(copy_of<T>(e.network.deltas(l)));
                }
            }
            py::dict result;
            result["loss"] = cost;
            result["grad_b"] = grad_b;
            result["grad_w"] = grad_w;
            if (keep_trace) {
                result["zs"] = zs;
                result["activations"] = activations;
                result["deltas"] = deltas;
            }
            return result;
        }, py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("keep_trace") = false,
           "Gradient of the mean cost over the rows of X (and, with keep_trace, Z, A, deltas).")
        .def("step", [](E& e, const CArray<T>& X, const CArray<T>& Y, T learning_rate) {
            auto x = matrix_arg<T>(X, "X"), y = matrix_arg<T>(Y, "Y");
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> guard(e.lock);
            return e.network.sgd_step(x, y, learning_rate);
        }, py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("learning_rate"),
           "One SGD step on the batch; returns the mean cost before it.")
        .def("configure_training", [](E& e, int optimizer, double momentum, double beta1,
                                      double beta2, double eps, double alpha, double l2, double l1,
                                      double weight_decay, std::vector<double> dropout,
                                      double clip_norm, std::uint64_t key, std::size_t n_train,
                                      bool reset_optimizer) {
            deltaprop::TrainingConfig config;
            config.optimizer = {deltaprop::optimizer_from_code(optimizer), momentum, beta1, beta2, eps, alpha};
            config.l2 = l2;
            config.l1 = l1;
            config.weight_decay = weight_decay;
            config.dropout = std::move(dropout);
            config.clip_norm = clip_norm;
            config.key = key;
            config.n_train = n_train;
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> guard(e.lock);
            e.network.configure_training(config, reset_optimizer);
        }, py::arg("optimizer"), py::arg("momentum"), py::arg("beta1"), py::arg("beta2"),
           py::arg("eps"), py::arg("alpha"), py::arg("l2"), py::arg("l1"), py::arg("weight_decay"),
           py::arg("dropout"), py::arg("clip_norm"), py::arg("key"), py::arg("n_train"),
           py::arg("reset_optimizer"),
           "Settings of the following train_epoch calls (see TrainingConfig in network.hpp).")
        .def("train_epoch", [](E& e, const CArray<T>& X, const CArray<T>& Y,
                               std::optional<py::array_t<std::int64_t, py::array::c_style>> order,
                               std::size_t batch_size, T learning_rate, std::uint64_t first_step,
                               bool check_finite) {
            auto x = matrix_arg<T>(X, "X"), y = matrix_arg<T>(Y, "Y");
            const std::int64_t* order_data = nullptr;
            if (order) {
                if (order->ndim() != 1 || static_cast<std::size_t>(order->shape(0)) != x.rows)
                    throw py::value_error("order must be 1-D with one index per row of X");
                order_data = order->data();
            }
            deltaprop::EpochResult result;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> guard(e.lock);
                result = e.network.train_epoch(x, y, order_data, batch_size, learning_rate,
                                               first_step, SignalPoll(), check_finite);
            }
            // Ctrl-C arrived: the steps so far are complete; raise KeyboardInterrupt now.
            if (result.interrupted) throw py::error_already_set();
            return py::make_tuple(result.mean_loss, result.correct, result.grad_norms);
        }, py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("order").noconvert(),
           py::arg("batch_size"), py::arg("learning_rate"), py::arg("first_step") = 0,
           py::arg("check_finite") = false,
           "One epoch of mini-batch training in the given row order; returns "
           "(mean loss, correct, per-layer mean weight-gradient norms). check_finite: refuse "
           "NaN/Inf in X and Y batch by batch (ValueError), leaving the parameters and the "
           "optimizer state as they were before the epoch.");
}

// SciPy's cython_blas exports its routines as capsules holding function pointers.
template <class Fn>
Fn blas_routine(const char* name) {
    py::object capi = py::module_::import("scipy.linalg.cython_blas").attr("__pyx_capi__");
    auto capsule = capi[name].cast<py::capsule>();
    return reinterpret_cast<Fn>(capsule.get_pointer<void>());
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
    m.doc() = "deltaprop's stateful network engine (pybind11 over csrc/deltaprop).";
    // Share SciPy's BLAS: its cython_blas exports sgemm/dgemm as capsules. (deltaprop._blas
    // may hand over another at import: DELTAPROP_BLAS, deltaprop.set_blas.)
    auto use_scipy_gemm = [] {
        deltaprop::blas::set_gemm(blas_routine<deltaprop::blas::sgemm_fn>("sgemm"),
                                  blas_routine<deltaprop::blas::dgemm_fn>("dgemm"));
    };
    use_scipy_gemm();
    m.def("_use_scipy_gemm", use_scipy_gemm, "Multiply with SciPy's BLAS (the default).");
    m.def("_set_gemm", [](std::uintptr_t sgemm, std::uintptr_t dgemm) {
        deltaprop::blas::set_gemm(reinterpret_cast<deltaprop::blas::sgemm_fn>(sgemm),
                                  reinterpret_cast<deltaprop::blas::dgemm_fn>(dgemm));
    }, py::arg("sgemm_address"), py::arg("dgemm_address"),
       "Hand the core another BLAS's sgemm_/dgemm_ (Fortran interface, 32-bit integers), as "
       "addresses; deltaprop.set_blas calls it. The library must stay loaded.");
    m.def("_set_small_product_limit", [](std::size_t limit) {
        const std::size_t previous = deltaprop::blas::small_product_limit;
        deltaprop::blas::small_product_limit = limit;
        return previous;
    }, py::arg("limit"),
       "Products of at most `limit` multiply-adds use the plain-loop kernel, larger ones the "
       "BLAS (for tests and benchmarks); returns the previous limit.");
    m.def("_set_small_batch_kernels", [](const std::string& name) {
        return deltaprop::micro::select_isa_by_name(name);
    }, py::arg("name"),
       "Select the small-batch kernels ('auto', 'off', 'generic', 'avx2', 'avx512'; 'off' sends "
       "every product to the BLAS), for tests and benchmarks; returns the previous name.");
    m.def("_best_small_batch_kernels", [] {
        return std::string(deltaprop::micro::isa_name(deltaprop::micro::best_supported_isa()));
    }, "The widest small-batch kernel set this CPU supports.");
    bind_engine<float>(m, "Network32");
    bind_engine<double>(m, "Network64");
}
