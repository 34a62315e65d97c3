// Buffers on 64-byte (cache-line) boundaries. The small-batch kernels load whole vectors
// along rows; a load that straddles two cache lines costs about two, and unaligned buffers
// made P2's forward product 1.5x slower (147 against 97 GFLOP/s, benchmarks/README.md).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace deltaprop {

inline constexpr std::size_t buffer_alignment = 64;

template <class T>
struct AlignedAllocator {
    using value_type = T;
    AlignedAllocator() noexcept = default;
    template <class U>
    AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(buffer_alignment)));
    }
    void deallocate(T* p, std::size_t) noexcept {
        ::operator delete(p, std::align_val_t(buffer_alignment));
    }
    template <class U>
    bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const AlignedAllocator<U>&) const noexcept { return false; }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// n rounded up so that an array of n T's ends on a 64-byte boundary.
template <class T>
constexpr std::size_t aligned_count(std::size_t n) {
    constexpr std::size_t per_line = buffer_alignment / sizeof(T);
    return (n + per_line - 1) / per_line * per_line;
}

}  // namespace deltaprop
