// shmds/structure_info.hpp: what the table says about one structure
// (public: shm_table::find and list return it, locate the part without the
// names), and the descriptions of a structure's kind and element type that
// every table message uses.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "shmds/detail/segment_layout.hpp"
#include "shmds/element.hpp"
#include "shmds/structure_kind.hpp"

namespace shmds {

/// Where one structure lies and what it holds, without its names: what
/// shm_table::locate returns, built without allocating.
struct structure_location {
    structure_kind kind;
    std::uint64_t capacity;       ///< elements
    std::uint32_t element_size;   ///< sizeof(T)
    std::uint32_t element_align;  ///< alignof(T)
    std::uint64_t type_hash;      ///< of the element type's recorded name
    std::uint64_t offset;         ///< first byte of the structure's block, from the segment base
    std::uint64_t bytes;          ///< size of the block
    std::uint64_t serial;         ///< creation number, unique within the segment's life
};

/// A snapshot of one table entry, for listing and inspection.
struct structure_info {
    std::string name;
    structure_kind kind;
    std::uint64_t capacity;       ///< elements
    std::uint32_t element_size;   ///< sizeof(T)
    std::uint32_t element_align;  ///< alignof(T)
    std::string type_name;        ///< readable (demangled) element type
    std::uint64_t type_hash;
    std::uint64_t offset;  ///< first byte of the structure's block, from the segment base
    std::uint64_t bytes;   ///< size of the block
    std::uint64_t serial;  ///< creation number, unique within the segment's life
};

namespace detail {

/// "shm_queue<int> (element size 4, align 4)".
inline std::string describe_type(structure_kind kind, std::string_view type_name, std::uint32_t size,
                                 std::uint32_t align) {
    return std::string(to_string(kind)) + "<" + readable_type_name(type_name) + "> (element size " +
           std::to_string(size) + ", align " + std::to_string(align) + ")";
}

/// The element type's recorded name, as stored (bounded by its field).
inline std::string entry_type_name(const table_entry& e) {
    return {e.type_name, ::strnlen(e.type_name, sizeof e.type_name)};
}

/// A table entry's kind, element type and capacity, for messages.
inline std::string describe_entry(const table_entry& e) {
    return describe_type(static_cast<structure_kind>(e.kind), entry_type_name(e), e.element_size,
                         e.element_align) +
           " of capacity " + std::to_string(e.capacity);
}

/// The public snapshots of a table entry: without its names, and whole.
inline structure_location location_of(const table_entry& e) noexcept {
    return {static_cast<structure_kind>(e.kind),
            e.capacity,
            e.element_size,
            e.element_align,
            e.type_hash,
            e.block_offset,
            e.block_bytes,
            e.serial};
}

inline structure_info info_of(const table_entry& e) {
    return {std::string(e.name, ::strnlen(e.name, sizeof e.name)),
            static_cast<structure_kind>(e.kind),
            e.capacity,
            e.element_size,
            e.element_align,
            readable_type_name(entry_type_name(e)),
            e.type_hash,
            e.block_offset,
            e.block_bytes,
            e.serial};
}

}  // namespace detail
}  // namespace shmds
