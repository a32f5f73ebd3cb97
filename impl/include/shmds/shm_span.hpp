// shmds/shm_span.hpp: the common base of contiguous structures in a segment.
//
// A shm_span is a process-local view: it caches the address of the first
// element in this process's mapping, so element access is one pointer
// dereference, with no lookup and no virtual call. It owns nothing; the
// posix_shm it was opened through must outlive it.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "shmds/detail/structure.hpp"
#include "shmds/element.hpp"

namespace shmds {

template <class T>
class shm_span : public detail::structure_identity {
    static_assert(detail::check_element<T>());

public:
    using element_type = T;
    using value_type = T;
    using size_type = std::size_t;
    using pointer = T*;
    using reference = T&;
    using iterator = T*;
    using const_iterator = const T*;

    [[nodiscard]] T* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] T* begin() const noexcept { return data_; }
    [[nodiscard]] T* end() const noexcept { return data_ + size_; }
    [[nodiscard]] std::span<T> span() const noexcept { return {data_, size_}; }
    operator std::span<T>() const noexcept { return span(); }

protected:
    shm_span(T* data, std::size_t size, std::string segment_name, std::string_view name, bool created)
        : detail::structure_identity(std::move(segment_name), name, created), data_(data), size_(size) {}

    T* data_;
    std::size_t size_;
};

}  // namespace shmds
