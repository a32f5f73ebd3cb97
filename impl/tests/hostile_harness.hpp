// The hostile writer's harness, as the tests see it: the cases (a target, a
// place the writer writes, and the hostile values tried on it;
// test_hostile_targets.cpp), what the victims do and the check afterwards
// (test_hostile_victims.cpp), and the runs (a populated segment, children
// with a deadline, the cases of one group of targets;
// test_hostile_harness.cpp). Those three hold no tests: they are named
// test_* as parts of the GoogleTest program, which scripts/run-tidy checks
// as a suite (without the static analyser).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <shmds/shmds.hpp>

#include "hostile_fields.hpp"
#include "hostile_segment.hpp"
#include "support.hpp"

namespace shmds_hostile {

using shmds_test::unique_segment_name;

// =====================================================================================
// What the victims do, and the check afterwards (test_hostile_victims.cpp).
// =====================================================================================

/// Why a victim failed, for its exit status and stderr.
constexpr int victim_bad_exception = 3;
constexpr int victim_unnamed_error = 4;
/// Why the check afterwards failed.
constexpr int check_failed = 5;

/// A victim's whole run: table, then every structure.
void victim(shmds::posix_shm& seg, handles& h);

/// A victim that attaches after the damage.
void fresh_victim(const std::string& seg_name);

/// Reads every structure (except `skip`, the one the damage was in) through
/// a fresh attachment and compares it with what was stored; destructive.
void check_contents(const std::string& seg_name, const std::vector<shmds::structure_info>& before,
                    std::size_t free_before, std::optional<structure_name> skip);

// =====================================================================================
// The cases (test_hostile_targets.cpp).
// =====================================================================================

/// One place the writer writes: where, how wide, what it means, and which
/// structure (if any) the damage is inside.
struct target {
    std::string name;
    std::size_t offset;  ///< from the segment base
    std::size_t size;
    meaning kind;
    std::optional<structure_name> inside;
    std::uint64_t block_end = 0;           ///< end of the block it belongs to (0: none)
    std::optional<std::size_t> neighbour;  ///< the same field of a neighbouring entry or structure
    /// Offsets that pass every range check: the heap's start, another
    /// structure's block, a point inside one.
    std::vector<std::pair<std::string, std::uint64_t>> plausible{};
};

struct hostile_value {
    std::string label;
    std::vector<std::byte> bytes;
};

/// The hostile values for `t`, in a segment of `seg_size` bytes at `base`.
std::vector<hostile_value> values_for(const target& t, const std::byte* base, std::uint64_t seg_size);

/// The segment's byte offset of a structure's block, from its table entry.
struct layout_facts {
    std::vector<shmds::structure_info> infos;
    std::uint64_t entries_offset;
    std::uint64_t index_offset;
    std::uint32_t index_slots;
    std::uint64_t heap_free_head;
    std::uint32_t free_entry;  ///< index of the destroyed structure's entry
    std::vector<std::pair<std::string, std::uint32_t>> entry_index;
};

const shmds::structure_info& info_of(const layout_facts& f, const structure_name& s);
std::uint32_t entry_index_of(const layout_facts& f, const structure_name& s);

/// Every target; the index slots' offsets are left for the caller to
/// resolve, which sees the index (targets_of does).
std::vector<target> all_targets(const layout_facts& f, std::uint64_t seg_size);

// =====================================================================================
// The harness (test_hostile_harness.cpp).
// =====================================================================================

/// How long a child may run before it counts as hung and is killed.
constexpr auto child_deadline = std::chrono::seconds(20);

/// Forks `body` and waits for it within the deadline; returns "" when it
/// exited 0, or what went wrong.
std::string run_child(const std::function<void()>& body);

/// A populated segment, with this process's handles opened before damage.
struct populated {
    unique_segment_name name{"hostile"};
    std::optional<shmds::posix_shm> seg;
    handles h;
    layout_facts facts{};
    std::size_t free_bytes = 0;

    populated();
    [[nodiscard]] std::byte* base() const { return static_cast<std::byte*>(seg->base()); }
};

/// Runs check_contents on `p` in a child; returns "" or what failed.
std::string check_in_child(const populated& p, std::optional<structure_name> skip);

/// Every target of `p`, the index slots resolved.
std::vector<target> targets_of(const populated& p);

/// The cases of one group of targets (by name prefix), run in this process.
void run_group(const std::function<bool(const target&)>& select, std::size_t* count = nullptr);

inline bool starts_with(const std::string& s, std::string_view prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace shmds_hostile
