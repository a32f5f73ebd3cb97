// shmds/detail/table_index.hpp: the table's hash index, from a structure's
// name to its entry.
//
// Open addressing with linear probing over a power-of-two array of slots
// (index_slots in the geometry), each empty, a tombstone, or an entry's
// number plus one; kept at most three-quarters full (live entries plus
// tombstones), so a probe ends at an empty slot. The index is derived state:
// the entries are the truth, and rebuild() makes it again from them (after a
// crash, after damage, or when tombstones pile up). Find costs O(1) on
// average.
//
// Owns nothing; works on the table_view it is given, under the table lock the
// caller holds. Must never trust a slot: a slot naming a missing or unused
// entry throws derived_state_damaged (the caller repairs and retries).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "shmds/detail/segment_layout.hpp"
#include "shmds/detail/table_view.hpp"
#include "shmds/error.hpp"

namespace shmds::detail {

class table_index {
public:
    explicit table_index(const table_view& table) noexcept : t_(table) {}

    struct probe_result {
        std::optional<std::uint32_t> entry;  ///< the entry holding the name
        std::uint32_t slot;                  ///< its slot, or where to insert it
    };

    /// Looks `name` (a valid structure name: check_structure_name) up;
    /// `hash` is its hash.
    probe_result probe(std::string_view name, std::uint64_t hash) const {
        const std::uint32_t slots = t_.geometry_.index_slots;
        const std::uint32_t mask = slots - 1;
        const std::uint32_t* index = t_.index_slots();
        std::optional<std::uint32_t> first_tombstone;
        std::uint32_t i = static_cast<std::uint32_t>(hash) & mask;
        for (std::uint32_t step = 0; step < slots; ++step, i = (i + 1) & mask) {
            std::uint32_t v = index[i];
            if (v == index_empty) return {std::nullopt, first_tombstone.value_or(i)};
            if (v == index_tombstone) {
                if (!first_tombstone) first_tombstone = i;
                continue;
            }
            std::uint32_t e = v - 1;
            if (e >= t_.geometry_.table_capacity) throw derived_state_damaged{};
            const table_entry& entry = t_.entries()[e];
            if (entry.state != entry_used) throw derived_state_damaged{};
            // `name` is valid (no NUL, shorter than the field), so matching
            // its bytes and then a NUL is matching the stored name whole.
            if (entry.name_hash == hash && std::memcmp(entry.name, name.data(), name.size()) == 0 &&
                entry.name[name.size()] == '\0')
                return {e, i};
        }
        // Every slot is live or a tombstone: only damage can do that, because
        // insert keeps them under three quarters.
        throw derived_state_damaged{};
    }

    /// Puts `entry` into `slot` (from probe). Rebuilds when live entries and
    /// tombstones pass three quarters of the slots. Caller has begun an update.
    void insert(std::uint32_t slot, std::uint32_t entry, const std::string& segment_name) const {
        std::uint32_t& v = t_.index_slots()[slot];
        if (v == index_tombstone) --t_.state().index_tombstones;
        v = entry + 1;
        const auto& s = t_.state();
        if ((s.used_entries + s.index_tombstones) * 4 > std::uint64_t{t_.geometry_.index_slots} * 3)
            t_.state().used_entries = rebuild(segment_name);
    }

    /// Empties `slot`, or makes it a tombstone when a probe may pass it.
    /// Caller has begun an update.
    void remove(std::uint32_t slot) const {
        const std::uint32_t mask = t_.geometry_.index_slots - 1;
        std::uint32_t* index = t_.index_slots();
        if (index[(slot + 1) & mask] != index_empty) {
            index[slot] = index_tombstone;
            ++t_.state().index_tombstones;
            return;
        }
        // Nothing probes past an empty slot, so this slot and the tombstones
        // right before it can become empty.
        index[slot] = index_empty;
        for (std::uint32_t i = (slot - 1) & mask; index[i] == index_tombstone; i = (i - 1) & mask) {
            index[i] = index_empty;
            --t_.state().index_tombstones;
        }
    }

    /// Re-inserts every used entry; a second entry with a name already
    /// inserted is quarantined. Returns the number inserted.
    std::uint64_t rebuild(const std::string& segment_name) const {
        std::uint32_t* index = t_.index_slots();
        std::fill_n(index, t_.geometry_.index_slots, index_empty);
        t_.state().index_tombstones = 0;
        const std::uint32_t mask = t_.geometry_.index_slots - 1;
        const std::uint32_t high_water = std::min(t_.state().entries_high_water, t_.geometry_.table_capacity);
        std::uint64_t inserted = 0;
        for (std::uint32_t e = 0; e < high_water; ++e) {
            table_entry& entry = t_.entries()[e];
            if (entry.state != entry_used) continue;
            std::uint32_t i = static_cast<std::uint32_t>(entry.name_hash) & mask;
            bool duplicate = false;
            // Fewer entries than slots, so an empty slot comes; the bound is
            // for a process writing into the index meanwhile.
            for (std::uint32_t step = 0; index[i] != index_empty && !duplicate; ++step) {
                const std::uint32_t other = index[i] - 1;
                if (step == t_.geometry_.index_slots || other >= t_.geometry_.table_capacity)
                    throw corrupted_error("the index of segment '" + segment_name +
                                          "' changed while its lock was held");
                duplicate = same_name(t_.entries()[other], entry);
                i = (i + 1) & mask;
            }
            if (duplicate) {
                entry.state = entry_quarantined;
                continue;
            }
            index[i] = e + 1;
            ++inserted;
        }
        return inserted;
    }

private:
    static bool same_name(const table_entry& a, const table_entry& b) noexcept {
        const std::size_t length = ::strnlen(a.name, sizeof a.name);
        return a.name_hash == b.name_hash && length == ::strnlen(b.name, sizeof b.name) &&
               std::memcmp(a.name, b.name, length) == 0;
    }

    const table_view& t_;
};

}  // namespace shmds::detail
