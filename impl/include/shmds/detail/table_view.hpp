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
}
&&(
    requires(std::byte* block, std::uint64_t capacity) { L::initialise(block, capacity); } ||
    // A layout whose blocks need one more number at creation takes it
    // as a third argument (shm_table::open's `parameter`).
    requires(std::byte * block, std::uint64_t capacity) { L::initialise(block, capacity, capacity); });

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

    /// True when `value` is a multiple of the segment's alignment. A mask,
    /// not `%`: the alignment is a power of two (compute_geometry), which
    /// the compiler cannot know, and the divisions cost every lookup (three
    /// of them) more than the rest of its checks together.
    bool aligned(std::uint64_t value) const noexcept { return (value & (geometry_.alignment - 1)) == 0; }

    /// Cheap range checks of the bookkeeping, run at every lock: garbage in
    /// any of these triggers a rebuild from the entries.
    bool state_plausible() const noexcept {
        const auto& g = geometry_;
        const auto& s = state();
        return s.entries_high_water <= g.table_capacity && s.used_entries <= s.entries_high_water &&
               s.free_entry_head <= s.entries_high_water && s.index_tombstones <= g.index_slots &&
               s.heap_top >= g.heap_offset && s.heap_top <= total_size_ && aligned(s.heap_top) &&
               (s.heap_free_head == 0 ||
                (s.heap_free_head >= g.heap_offset && s.heap_free_head < s.heap_top)) &&
               s.heap_clean_from >= g.heap_offset;
    }

    // ---- entries ----------------------------------------------------------------------

    /// What can be wrong with a used entry: each is what one check of
    /// fault_of finds.
    enum class entry_fault : std::uint8_t {
        none,
        name_unterminated,
        name_invalid,
        name_hash,
        unknown_kind,
        type_name_unterminated,
        element_shape,
        capacity_zero,
        block_outside_heap,
    };

    /// The first fault of used entry `e`, or none. With `name_matched`, the
    /// caller's probe of the index has just matched e against a valid name:
    /// its name is that name, terminated, with that hash, so only the rest
    /// needs a look (that is every lookup's path, so no message is built here).
    entry_fault fault_of(const table_entry& e, bool name_matched = false) const noexcept {
        if (!name_matched) {
            std::size_t name_length = ::strnlen(e.name, sizeof e.name);
            if (name_length == sizeof e.name) return entry_fault::name_unterminated;
            std::string_view name(e.name, name_length);
            if (!is_valid_structure_name(name)) return entry_fault::name_invalid;
            if (e.name_hash != fnv1a64(name)) return entry_fault::name_hash;
        }
        if (!is_known_kind(e.kind)) return entry_fault::unknown_kind;
        // Written zero-filled, a type name is cut short of the field's last
        // byte (shm_table::create); only damage sets it. (Cheaper than
        // looking for the NUL: this is on every lookup's path.)
        if (e.type_name[sizeof e.type_name - 1] != '\0') return entry_fault::type_name_unterminated;
        if (e.element_size == 0 || !is_power_of_two(e.element_align) ||
            e.element_align > max_structure_alignment)
            return entry_fault::element_shape;
        if (e.capacity == 0) return entry_fault::capacity_zero;
        if (e.block_offset < geometry_.heap_offset || !aligned(e.block_offset) || e.block_bytes == 0 ||
            !aligned(e.block_bytes) || !range_within(e.block_offset, e.block_bytes, total_size_))
            return entry_fault::block_outside_heap;
        return entry_fault::none;
    }

    /// What `fault` means for `e`, for an error message.
    static std::string describe_fault(entry_fault fault, const table_entry& e) {
        switch (fault) {
            case entry_fault::none:
                return "no fault";
            case entry_fault::name_unterminated:
                return "its name is not terminated";
            case entry_fault::name_invalid:
                return "its name is invalid";
            case entry_fault::name_hash:
                return "its name hash does not match its name";
            case entry_fault::unknown_kind:
                return "unknown kind " + std::to_string(e.kind);
            case entry_fault::type_name_unterminated:
                return "its type name is not terminated";
            case entry_fault::element_shape:
                return "invalid element size or alignment";
            case entry_fault::capacity_zero:
                return "capacity 0";
            case entry_fault::block_outside_heap:
                return "its block [" + std::to_string(e.block_offset) + ", +" +
                       std::to_string(e.block_bytes) + ") lies outside the heap";
        }
        return "fault " + std::to_string(static_cast<int>(fault));
    }

    /// Why a used entry cannot be trusted, or nullopt.
    std::optional<std::string> entry_problem(const table_entry& e) const {
        const entry_fault fault = fault_of(e);
        if (fault == entry_fault::none) return std::nullopt;
        return describe_fault(fault, e);
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
