// shmds/detail/table_view.hpp: one segment's table as this process sees it,
// shared by the table's pieces (table_index.hpp, table_heap.hpp,
// table_repair.hpp) and by shm_table.
//
// Owns nothing: a view of bytes in the segment (see segment_layout.hpp) at
// `base`, bounded by a private, validated copy of the geometry and size, so
// that a process scribbling over the header cannot move this process's
// bounds. Must never lock or wait: every caller already holds the table's
// robust mutex. Derived state (index, free lists, counters) that fails a
// check is reported by throwing derived_state_damaged, which shm_table turns
// into a repair; a damaged entry is reported by entry_problem, never thrown.
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "shmds/config.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/element.hpp"
#include "shmds/names.hpp"
#include "shmds/structure_kind.hpp"

namespace shmds::detail {

/// What a structure type tells the table about the block it needs.
template <class L>
concept structure_layout = requires(std::byte* block, std::uint64_t capacity) {
    { L::kind } -> std::convertible_to<structure_kind>;
    { L::block_alignment } -> std::convertible_to<std::size_t>;
    { L::bytes_for(capacity) } -> std::same_as<std::optional<std::size_t>>;
    L::initialise(block, capacity);
};

/// A structure's block, as the table hands it to the structure's handle.
struct opened_block {
    std::byte* block;
    std::uint64_t capacity;
    std::uint64_t serial;
    bool created;
};

/// Thrown inside the table when derived state (index, free lists, counters)
/// fails a check; the table repairs it from the entries and retries.
struct derived_state_damaged {};

struct table_view {
    std::byte* base_;
    std::size_t total_size_;
    segment_geometry geometry_;

    // ---- the shared bytes -----------------------------------------------------------

    segment_header& header() const noexcept { return *reinterpret_cast<segment_header*>(base_); }
    table_state& state() const noexcept { return header().table; }
    table_entry* entries() const noexcept {
        return reinterpret_cast<table_entry*>(base_ + geometry_.entries_offset);
    }
    std::uint32_t* index_slots() const noexcept {
        return reinterpret_cast<std::uint32_t*>(base_ + geometry_.index_offset);
    }
    free_block& free_block_at(std::uint64_t offset) const noexcept {
        return *reinterpret_cast<free_block*>(base_ + offset);
    }

    // ---- updates --------------------------------------------------------------------

    // A process may die between any two stores; the only order that matters
    // is the program order of this process's stores (the kernel makes them
    // visible before the robust mutex reports the death), so compiler
    // barriers are enough.
    void begin_update() const noexcept {
        state().dirty = 1;
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    void end_update() const noexcept {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        state().dirty = 0;
    }

    /// Cheap range checks of the bookkeeping, run at every lock: garbage in
    /// any of these triggers a rebuild from the entries.
    bool state_plausible() const noexcept {
        const auto& g = geometry_;
        const auto& s = state();
        return s.entries_high_water <= g.table_capacity && s.used_entries <= s.entries_high_water &&
               s.free_entry_head <= s.entries_high_water && s.index_tombstones <= g.index_slots &&
               s.heap_top >= g.heap_offset && s.heap_top <= total_size_ && s.heap_top % g.alignment == 0 &&
               (s.heap_free_head == 0 ||
                (s.heap_free_head >= g.heap_offset && s.heap_free_head < s.heap_top)) &&
               s.heap_clean_from >= g.heap_offset;
    }

    // ---- entries ----------------------------------------------------------------------

    /// Why a used entry cannot be trusted, or nullopt.
    std::optional<std::string> entry_problem(const table_entry& e) const {
        std::size_t name_length = ::strnlen(e.name, sizeof e.name);
        if (name_length == sizeof e.name) return "its name is not terminated";
        std::string_view name(e.name, name_length);
        if (!is_valid_structure_name(name)) return "its name is invalid";
        if (e.name_hash != fnv1a64(name)) return "its name hash does not match its name";
        if (!is_known_kind(e.kind)) return "unknown kind " + std::to_string(e.kind);
        if (::strnlen(e.type_name, sizeof e.type_name) == sizeof e.type_name)
            return "its type name is not terminated";
        if (e.element_size == 0 || !is_power_of_two(e.element_align) ||
            e.element_align > max_structure_alignment)
            return "invalid element size or alignment";
        if (e.capacity == 0) return "capacity 0";
        if (e.block_offset < geometry_.heap_offset || e.block_offset % geometry_.alignment != 0 ||
            e.block_bytes == 0 || e.block_bytes % geometry_.alignment != 0 ||
            !range_within(e.block_offset, e.block_bytes, total_size_))
            return "its block [" + std::to_string(e.block_offset) + ", +" + std::to_string(e.block_bytes) +
                   ") lies outside the heap";
        return std::nullopt;
    }

    /// True when [offset, offset + bytes) overlaps the block of a used or
    /// quarantined entry: the free list or heap_top lie.
    bool overlaps_a_block(std::uint64_t offset, std::uint64_t bytes) const noexcept {
        const std::uint32_t high_water = std::min(state().entries_high_water, geometry_.table_capacity);
        for (std::uint32_t i = 0; i < high_water; ++i) {
            const table_entry& e = entries()[i];
            // (Bounds outside the mapping are an entry's own damage, which
            // the repair quarantines; they hold nothing to protect.)
            if (e.state == entry_free || !range_within(e.block_offset, e.block_bytes, total_size_)) continue;
            // (A block of zero bytes, also only damage, covers nothing: the
            // repair leaves it out of the heap, and it must not make the
            // free space around it look taken, or no create could use it.)
            if (e.block_bytes == 0) continue;
            if (e.block_offset < offset + bytes && offset < e.block_offset + e.block_bytes) return true;
        }
        return false;
    }

    std::uint32_t take_free_entry() const {
        auto& s = state();
        if (s.free_entry_head != 0) {
            std::uint32_t index = s.free_entry_head - 1;
            if (index >= s.entries_high_water || entries()[index].state != entry_free)
                throw derived_state_damaged{};
            s.free_entry_head = entries()[index].next_free;
            return index;
        }
        if (s.entries_high_water >= geometry_.table_capacity ||
            entries()[s.entries_high_water].state != entry_free)
            throw derived_state_damaged{};
        return s.entries_high_water++;
    }

    /// Marks the entry free: the single store that removes a structure.
    void unpublish(std::uint32_t index) const {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        entries()[index].state = entry_free;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        --state().used_entries;
    }

    void chain_free_entry(std::uint32_t index) const {
        entries()[index].next_free = state().free_entry_head;
        state().free_entry_head = index + 1;
    }
};

}  // namespace shmds::detail
