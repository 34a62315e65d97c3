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

template <class T>
void require_shape(const MatrixView<T>& m, std::size_t rows, std::size_t cols, const char* name) {
    if (m.rows != rows || m.cols != cols)
        throw std::invalid_argument(std::string(name) + " must have shape " +
                                    shape_str(rows, cols) + "; got " + shape_str(m.rows, m.cols));
    if (m.data == nullptr && rows * cols != 0)
        throw std::invalid_argument(std::string(name) + " has no data");
}

template <class T>
void require_size(const VectorView<T>& v, std::size_t size, const char* name) {
    if (v.size != size)
        throw std::invalid_argument(std::string(name) + " must have length " +
                                    std::to_string(size) + "; got " + std::to_string(v.size));
    if (v.data == nullptr && size != 0) throw std::invalid_argument(std::string(name) + " has no data");
}

}  // namespace deltaprop
