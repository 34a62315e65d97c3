// Non-owning views of row-major, contiguous arrays: what the bindings hand to the core.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace deltaprop {

template <class T>
struct MatrixView {
    T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;
    MatrixView() = default;
    MatrixView(T* data_, std::size_t rows_, std::size_t cols_)
        : data(data_), rows(rows_), cols(cols_) {}
    // A view of T converts to a read-only view of const T.
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
    MatrixView(const MatrixView<U>& other) : data(other.data), rows(other.rows), cols(other.cols) {}
    T* row(std::size_t i) const { return data + i * cols; }
    std::size_t size() const { return rows * cols; }
};

template <class T>
struct VectorView {
    T* data = nullptr;
    std::size_t size = 0;
    VectorView() = default;
    VectorView(T* data_, std::size_t size_) : data(data_), size(size_) {}
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
    VectorView(const VectorView<U>& other) : data(other.data), size(other.size) {}
};

inline std::string shape_str(std::size_t rows, std::size_t cols) {
    return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

// The checks are inline and cheap; building the message is kept out of line (cold), so the
// small networks' steps, which check a few dozen views, do not pay for it.
[[noreturn]] inline void wrong_shape(const char* name, std::size_t rows, std::size_t cols,
                                     std::size_t got_rows, std::size_t got_cols) {
    throw std::invalid_argument(std::string(name) + " must have shape " + shape_str(rows, cols) +
                                "; got " + shape_str(got_rows, got_cols));
}

[[noreturn]] inline void wrong_size(const char* name, std::size_t size, std::size_t got) {
    throw std::invalid_argument(std::string(name) + " must have length " + std::to_string(size) +
                                "; got " + std::to_string(got));
}

[[noreturn]] inline void no_data(const char* name) {
    throw std::invalid_argument(std::string(name) + " has no data");
}

template <class T>
inline void require_shape(const MatrixView<T>& m, std::size_t rows, std::size_t cols,
                          const char* name) {
    if (m.rows != rows || m.cols != cols) wrong_shape(name, rows, cols, m.rows, m.cols);
    if (m.data == nullptr && rows * cols != 0) no_data(name);
}

template <class T>
inline void require_size(const VectorView<T>& v, std::size_t size, const char* name) {
    if (v.size != size) wrong_size(name, size, v.size);
    if (v.data == nullptr && size != 0) no_data(name);
}

}  // namespace deltaprop
