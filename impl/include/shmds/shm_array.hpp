// shmds/shm_array.hpp: a fixed-length array of T in a segment, found or
// created by name.
//
// Layout: the elements, starting at the structure's block (aligned to the
// segment's alignment and to alignof(T)); nothing else is shared. The length
// is immutable after creation. Access is not synchronised: concurrent writers
// to one element need their own agreement (or std::atomic_ref on T).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "shmds/detail/os.hpp"
#include "shmds/posix_shm.hpp"
#include "shmds/shm_span.hpp"

namespace shmds {

namespace detail {

template <class T>
struct array_layout {
    static constexpr structure_kind kind = structure_kind::array;
    static constexpr std::size_t block_alignment = alignof(T);

    static std::optional<std::size_t> bytes_for(std::uint64_t count) noexcept {
        return checked_mul(count, sizeof(T));
    }

    /// Value-initialises the elements. The block arrives zeroed, which is
    /// already the value of a trivially default-constructible T.
    static void initialise(std::byte* block, std::uint64_t count) {
        if constexpr (std::is_default_constructible_v<T> && !std::is_trivially_default_constructible_v<T>)
            std::uninitialized_value_construct_n(reinterpret_cast<T*>(block), count);
    }
};

}  // namespace detail

template <class T>
class shm_array : public shm_span<T> {
    using layout = detail::array_layout<T>;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;

    /// Finds the array `name` in `segment`, or creates it with `count`
    /// value-initialised elements. Throws mismatch_error if it exists with
    /// another kind, element type or length; invalid_argument_error for a bad
    /// name or a count of 0 or one that overflows; out_of_space_error when
    /// the table or segment is full.
    shm_array(posix_shm& segment, std::string_view name, std::size_t count)
        : shm_array(segment, name, open_mode::open_or_create, count) {}

    /// Opens the existing array `name`; throws not_found_error if absent.
    shm_array(posix_shm& segment, std::string_view name)
        : shm_array(segment, name, open_mode::open_only, 0) {}

    shm_array(create_only_t, posix_shm& segment, std::string_view name, std::size_t count)
        : shm_array(segment, name, open_mode::create_only, count) {}
    shm_array(open_only_t, posix_shm& segment, std::string_view name)
        : shm_array(segment, name, open_mode::open_only, 0) {}
    shm_array(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t count)
        : shm_array(segment, name, open_mode::open_or_create, count) {}

    /// Unchecked access: index must be below size().
    [[nodiscard]] T& operator[](std::size_t index) const noexcept { return this->data_[index]; }

    /// Bounds-checked access; throws std::out_of_range naming the array.
    [[nodiscard]] T& at(std::size_t index) const {
        if (index >= this->size_)
            throw std::out_of_range("shmds: index " + std::to_string(index) + " is out of range for " +
                                    this->describe("shm_array") + " of size " + std::to_string(this->size_));
        return this->data_[index];
    }

    [[nodiscard]] T& front() const noexcept { return this->data_[0]; }
    [[nodiscard]] T& back() const noexcept { return this->data_[this->size_ - 1]; }

    /// Assigns `value` to every element.
    void fill(const T& value) const noexcept {
        for (T& element : *this) element = value;
    }

private:
    shm_array(posix_shm& segment, std::string_view name, open_mode mode, std::size_t count)
        : shm_array(segment, name, segment.table().open<layout>(name, mode, count, fingerprint_of<T>())) {}

    shm_array(posix_shm& segment, std::string_view name, const detail::opened_block& block)
        : shm_span<T>(reinterpret_cast<T*>(block.block), block.capacity, segment.name(), name,
                      block.created) {}
};

}  // namespace shmds
