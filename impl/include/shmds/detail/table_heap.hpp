// shmds/detail/table_heap.hpp: the segment's heap, where structures' blocks
// live: a first-fit allocator over an address-ordered free list of gaps
// below `heap_top`, and the untouched space above it.
//
// Invariants (all derived from the entries, rebuilt by table_repair.hpp):
// free blocks lie inside [heap_offset, heap_top), in strictly increasing
// address order, each a multiple of the alignment, none touching another
// (freeing merges neighbours) and none overlapping a structure's block;
// memory above `heap_clean_from` is still the zeros posix_fallocate gave.
//
// Owns nothing; works on the table_view it is given, under the table lock the
// caller holds. Must never write before it has checked: every free block is
// read once into a private copy and checked against the mapping before use,
// so a damaged chain can neither loop nor lead out of the segment; damage
// throws derived_state_damaged (the caller repairs and retries).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include "shmds/detail/os.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/detail/table_view.hpp"

namespace shmds::detail {

class table_heap {
public:
    explicit table_heap(const table_view& table) noexcept : t_(table) {}

    /// Calls visit(offset, node) with a checked copy of each free block, in
    /// address order, until it returns true. Returns the offset of the last
    /// block visited (0 if none). Each node is read once, so what is checked
    /// is what is used even if another process scribbles on it meanwhile.
    template <class Visit>
    std::uint64_t walk_free_list(Visit&& visit) const {
        const auto& g = t_.geometry_;
        const std::uint64_t top = t_.state().heap_top;
        if (top < g.heap_offset || top > t_.total_size_ || top % g.alignment != 0)
            throw derived_state_damaged{};
        std::uint64_t lowest_next = g.heap_offset;
        std::uint64_t last = 0;
        for (std::uint64_t at = t_.state().heap_free_head; at != 0;) {
            // Strictly increasing offsets inside the heap: a damaged chain
            // can neither loop nor leave the mapping.
            if (at < lowest_next || at % g.alignment != 0 || !range_within(at, sizeof(free_block), top))
                throw derived_state_damaged{};
            const free_block node = t_.free_block_at(at);
            if (node.bytes == 0 || node.bytes % g.alignment != 0 || !range_within(at, node.bytes, top))
                throw derived_state_damaged{};
            last = at;
            if (visit(at, node)) return at;
            lowest_next = at + node.bytes;
            at = node.next;
        }
        return last;
    }

    struct fit {
        std::uint64_t start;      ///< where the block goes
        std::uint64_t node;       ///< free block it is carved from; 0 = from the top
        free_block node_copy;     ///< that block as checked
        std::uint64_t prev_node;  ///< node before `node` (or the last node when from the top)
    };

    /// First fit for `bytes` aligned to `align`; nullopt when nothing fits.
    /// Reads only.
    std::optional<fit> find_fit(std::uint64_t bytes, std::uint64_t align) const {
        std::uint64_t prev = 0;
        std::optional<fit> found;
        std::uint64_t last = walk_free_list([&](std::uint64_t at, const free_block& node) {
            std::uint64_t start = align_up(at, align);
            if (start - at <= node.bytes && bytes <= node.bytes - (start - at)) {
                found = fit{start, at, node, prev};
                return true;
            }
            prev = at;
            return false;
        });
        if (found) return found;
        std::uint64_t start = align_up(t_.state().heap_top, align);
        if (!range_within(start, bytes, t_.total_size_)) return std::nullopt;
        return fit{start, 0, {}, last};
    }

    /// Makes `node` follow `prev` in the free list (prev 0: the list's head).
    void link_after(std::uint64_t prev, std::uint64_t node) const {
        if (prev == 0)
            t_.state().heap_free_head = node;
        else
            t_.free_block_at(prev).next = node;
    }

    /// Takes the block chosen by find_fit. Caller has begun an update.
    void carve(const fit& chosen, std::uint64_t bytes) const {
        auto& s = t_.state();
        const std::uint64_t end = chosen.start + bytes;
        if (chosen.node == 0) {
            const std::uint64_t gap = chosen.start - s.heap_top;
            // Note the high-water mark before writing anything above it.
            s.heap_clean_from = std::max(s.heap_clean_from, end);
            if (gap != 0) {
                t_.free_block_at(s.heap_top) = {gap, 0};
                link_after(chosen.prev_node, s.heap_top);
            }
            s.heap_top = end;
            return;
        }
        const std::uint64_t node_end = chosen.node + chosen.node_copy.bytes;
        std::uint64_t next = chosen.node_copy.next;
        if (end < node_end) {
            t_.free_block_at(end) = {node_end - end, next};
            next = end;
        }
        if (chosen.start > chosen.node) {
            t_.free_block_at(chosen.node) = {chosen.start - chosen.node, next};
        } else {
            link_after(chosen.prev_node, next);
        }
    }

    /// Returns [offset, offset + bytes) to the heap, merging with neighbours
    /// and lowering heap_top when it is the last block. Caller has begun an
    /// update. Validates the free list before writing anything.
    void release(std::uint64_t offset, std::uint64_t bytes) const {
        auto& s = t_.state();
        struct neighbour {
            std::uint64_t at = 0;
            free_block node{};
        } before_prev, prev, next;
        walk_free_list([&](std::uint64_t at, const free_block& node) {
            if (at > offset) {
                next = {at, node};
                return true;
            }
            before_prev = prev;
            prev = {at, node};
            return false;
        });
        std::uint64_t end = offset + bytes;
        // A free block overlapping the one being freed means the list lies.
        if ((prev.at != 0 && prev.at + prev.node.bytes > offset) || (next.at != 0 && next.at < end) ||
            end > s.heap_top)
            throw derived_state_damaged{};
        const bool merge_prev = prev.at != 0 && prev.at + prev.node.bytes == offset;
        const std::uint64_t start = merge_prev ? prev.at : offset;
        std::uint64_t after = next.at;
        if (next.at != 0 && next.at == end) {
            end = next.at + next.node.bytes;
            after = next.node.next;
        }
        if (end == s.heap_top) {
            // The merged block is the topmost: give it back to the top.
            s.heap_top = start;
            link_after(merge_prev ? before_prev.at : prev.at, 0);
            return;
        }
        t_.free_block_at(start) = {end - start, after};
        if (!merge_prev) link_after(prev.at, start);
    }

private:
    const table_view& t_;
};

}  // namespace shmds::detail
