// shmds/detail/table_repair.hpp: rebuilds everything in a table that is
// derived from its entries (the heap's free list and top, the free-entry
// chain, the counters, the index), after a crash in the middle of an update
// or after damage.
//
// The entries are the only truth. Never gives up on a table: an entry that
// fails validation, overlaps another or repeats a name is quarantined (no
// longer findable; its block stays out of use when its bounds are sane), and
// everything else goes on working. Must never write outside the table and the
// heap's gaps: a kept block is never touched, and every write lands in a gap
// between kept blocks.
//
// Owns nothing; called by shm_table with the table lock held. Idempotent: a
// process killed in the middle leaves `dirty` set, and the next locker runs
// it again from the start.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "shmds/detail/fault.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/detail/table_heap.hpp"
#include "shmds/detail/table_index.hpp"
#include "shmds/detail/table_view.hpp"

namespace shmds::detail {

/// A structure's block, as the repair sorts them.
struct used_block {
    std::uint64_t offset;
    std::uint64_t bytes;
    std::uint32_t entry;
};

inline bool blocks_overlap(const used_block& a, const used_block& b) noexcept {
    return a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}

/// Healthy blocks that overlap mean an entry lies about its block: quarantines
/// the one overlapping the most others (a block_offset or block_bytes written
/// over usually lands on several honest neighbours), again until none
/// overlap; on a tie, the one further into the heap. `healthy` is sorted by
/// offset. Returns the blocks kept, in that order.
inline std::vector<used_block> quarantine_overlapping(const table_view& t,
                                                      const std::vector<used_block>& healthy) {
    std::vector<std::uint32_t> overlaps(healthy.size(), 0);
    for (std::size_t i = 0; i < healthy.size(); ++i)
        for (std::size_t j = i + 1; j < healthy.size() && blocks_overlap(healthy[i], healthy[j]); ++j) {
            ++overlaps[i];
            ++overlaps[j];
        }
    std::vector<bool> dropped(healthy.size(), false);
    for (;;) {
        std::size_t worst = healthy.size();
        for (std::size_t i = 0; i < healthy.size(); ++i)
            if (!dropped[i] && overlaps[i] != 0 &&
                (worst == healthy.size() || overlaps[i] >= overlaps[worst]))
                worst = i;
        if (worst == healthy.size()) break;
        dropped[worst] = true;
        t.entries()[healthy[worst].entry].state = entry_quarantined;
        for (std::size_t j = 0; j < healthy.size(); ++j)
            if (j != worst && !dropped[j] && blocks_overlap(healthy[worst], healthy[j])) --overlaps[j];
    }
    std::vector<used_block> kept;
    for (std::size_t i = 0; i < healthy.size(); ++i)
        if (!dropped[i]) kept.push_back(healthy[i]);
    return kept;
}

/// Rebuilds everything derived from the entries of the table `t` (of the
/// segment named `segment_name`, for messages). Caller holds the lock.
inline void repair_table(const table_view& t, const std::string& segment_name) {
    t.begin_update();
    const auto& g = t.geometry_;
    auto& s = t.state();
    auto by_offset = [](const used_block& a, const used_block& b) { return a.offset < b.offset; };
    std::vector<used_block> healthy;
    std::vector<used_block> quarantined;
    std::uint32_t high_water = 0;
    for (std::uint32_t i = 0; i < g.table_capacity; ++i) {
        table_entry& e = t.entries()[i];
        if (e.state == entry_free) continue;
        high_water = i + 1;
        const used_block block{e.block_offset, e.block_bytes, i};
        if (e.state == entry_used && !t.entry_problem(e)) {
            healthy.push_back(block);
        } else {
            e.state = entry_quarantined;
            quarantined.push_back(block);
        }
    }

    // Blocks to keep out of use: healthy ones first (less those that lie
    // about their block); then quarantined ones whose bounds are sane and
    // that overlap nothing kept.
    std::sort(healthy.begin(), healthy.end(), by_offset);
    std::vector<used_block> kept = quarantine_overlapping(t, healthy);
    const std::size_t healthy_kept = kept.size();
    for (const used_block& q : quarantined) {
        if (q.offset < g.heap_offset || q.offset % g.alignment != 0 || q.bytes == 0 ||
            q.bytes % g.alignment != 0 || !range_within(q.offset, q.bytes, t.total_size_))
            continue;
        if (std::none_of(kept.begin(), kept.end(), [&](const used_block& k) { return blocks_overlap(q, k); }))
            kept.push_back(q);
    }
    if (kept.size() != healthy_kept) std::sort(kept.begin(), kept.end(), by_offset);

    // The heap: gaps between kept blocks become the free list.
    const table_heap heap(t);
    s.heap_free_head = 0;
    std::uint64_t cursor = g.heap_offset;
    std::uint64_t last_free = 0;
    for (const used_block& b : kept) {
        if (b.offset > cursor) {
            t.free_block_at(cursor) = {b.offset - cursor, 0};
            heap.link_after(last_free, cursor);
            last_free = cursor;
        }
        cursor = b.offset + b.bytes;
    }
    s.heap_top = cursor;
    SHMDS_FAULT_POINT("table.repair.heap_rebuilt");
    // Whoever died may have written anywhere it had claimed: trust no
    // memory to be zero any more.
    s.heap_clean_from = t.total_size_;

    // Entries: free ones below the high-water mark are chained for reuse.
    s.entries_high_water = high_water;
    s.free_entry_head = 0;
    for (std::uint32_t i = high_water; i-- > 0;)
        if (t.entries()[i].state == entry_free) t.chain_free_entry(i);
    s.used_entries = table_index(t).rebuild(segment_name);
    if (s.next_serial == 0) s.next_serial = 1;
    t.end_update();
}

}  // namespace shmds::detail
