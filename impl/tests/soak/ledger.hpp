// impl/tests/soak/ledger.hpp: the soak's ledger, the record every process of a
// run keeps of what it did: the element that flows through the structures,
// the ledger's layout (producer streams, worker records, counters, the problem
// log) and the per-producer bitmaps of elements seen.
//
// Owns: the ledger's format and the few ways to write and read it (mark an
// element, log a problem, read the log back). The ledger is anonymous
// MAP_SHARED memory mapped before any fork, so every worker and replacement
// inherits it; it is never in the segment under test.
// Must never: attach to the segment or touch a structure (the supervisor reads
// the ledger and must stay detached, so that "the name is gone when the last
// worker exits" checks the library's reference counting), nor judge anything
// (verdict.cpp does).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace soak {

// ---- what flows through the structures ----------------------------------------------------------

/// One element: which producer slot pushed it, its number in that slot's
/// stream, and a checksum of both (and of the structure), so that a torn or
/// foreign element is told from a real one.
struct soak_element {
    std::uint32_t slot;
    std::uint32_t check;
    std::uint64_t k;
};
static_assert(sizeof(soak_element) == 16, "the element is two words, copied whole by the structures");

constexpr std::size_t structure_count = 3;
enum structure_index : unsigned { spsc_index = 0, mpmc_index = 1, stack_index = 2 };
constexpr const char* structure_names[structure_count] = {"spsc", "mpmc", "stack"};
constexpr bool structure_is_fifo[structure_count] = {true, true, false};

constexpr std::uint32_t checksum_of(unsigned structure, std::uint32_t slot, std::uint64_t k) {
    // splitmix64 finaliser: every input bit affects every output bit.
    std::uint64_t x =
        k ^ (std::uint64_t{slot} << 40) ^ (std::uint64_t{structure} << 56) ^ 0x5eed5eed5eed5eedULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::uint32_t>((x ^ (x >> 31)) >> 32);
}

// ---- the ledger's layout -------------------------------------------------------------------------

/// Most producer (or consumer) slots per structure.
constexpr std::uint32_t max_slots = 16;
/// Elements one producer slot may push in a run: its bitmap is this many
/// bits (512 MiB of address space, reserved lazily: only the pages the run
/// reaches take memory, one byte per 8 elements).
constexpr std::uint64_t max_elements_per_slot = std::uint64_t{1} << 32;
constexpr std::size_t bitmap_words_per_slot = max_elements_per_slot / 64;

constexpr std::size_t problem_lines = 64;
constexpr std::size_t problem_length = 240;

/// One worker slot (a role and a slot number), across its incarnations.
/// On its own 128-byte pair, as is each producer stream: workers should
/// contend in the structures, not in the ledger.
struct alignas(128) worker_record {
    std::atomic<std::int64_t>
        heartbeat_ns;  ///< CLOCK_MONOTONIC after every call; set by the supervisor at fork
    std::atomic<std::int64_t> longest_call_ns;  ///< longest single blocking call, all incarnations
    std::atomic<std::uint64_t> calls;
    std::atomic<std::uint64_t> marked;      ///< consumer: distinct elements it marked
    std::atomic<std::uint64_t> late_calls;  ///< calls that returned more than 100 ms after their timeout
    std::atomic<std::uint32_t>
        empty_pops_draining;                  ///< consumer: empty pops begun after every producer exited
    std::atomic<std::uint32_t> role_retries;  ///< SPSC: role_taken answers before the role came back
    /// Consumer: where it is, so that the supervisor can tell what a kill
    /// took. in_pop_call (set just before each pop call): inside the
    /// library, where a kill may lose the element the call committed; the
    /// element it popped (held_code, stored the moment the call returns):
    /// after the call, where a kill loses it only if it is not marked yet
    /// (the soak's own window); 0: before its first call, or after an empty pop.
    std::atomic<std::uint64_t> holding;
    /// Consumer: the first element this incarnation popped (held_code), 0
    /// until it pops one. For the verdict's account of a loss that no
    /// death explains: where each incarnation began.
    std::atomic<std::uint64_t> first_held;
};

/// An element's identity in one word, never 0 (0: holding nothing) and never in_pop_call.
constexpr std::uint64_t held_code(std::uint32_t slot, std::uint64_t k) {
    return ((k << 4) | slot) + 1;
}
static_assert(max_slots <= 16 && max_elements_per_slot <= (std::uint64_t{1} << 59),
              "held_code packs slot and k");
/// worker_record::holding of a consumer inside a pop call.
constexpr std::uint64_t in_pop_call = ~std::uint64_t{0};
static_assert(held_code(max_slots - 1, max_elements_per_slot - 1) < in_pop_call,
              "no element's code can be taken for the in-call mark");
constexpr std::uint32_t held_slot(std::uint64_t code) {
    return static_cast<std::uint32_t>((code - 1) & 15);
}
constexpr std::uint64_t held_k(std::uint64_t code) {
    return (code - 1) >> 4;
}

/// Producer slot p's stream of elements, across incarnations.
struct alignas(128) producer_stream {
    std::atomic<std::uint64_t> started;         ///< k+1 of the element it is pushing (or pushed)
    std::atomic<std::uint64_t> completed;       ///< k+1 of its last push that returned true
    std::atomic<std::uint64_t> spsc_last_seen;  ///< SPSC consumer: k+1 last seen from it, across incarnations
};

struct structure_ledger {
    producer_stream streams[max_slots];
    worker_record producer[max_slots];
    worker_record consumer[max_slots];
    std::atomic<std::uint64_t> duplicates;
    std::atomic<std::uint64_t> order_violations;
    std::atomic<std::uint64_t> corrupt;          ///< bad slot or checksum
    std::atomic<std::uint64_t> phantom;          ///< an element whose push had not even started
    std::atomic<std::uint64_t> lock_recoveries;  ///< stack: lock take-overs from dead holders seen by its workers
    std::atomic<std::uint32_t> injected;         ///< self-test: the fault was injected (once per structure)
};

struct ledger {
    std::atomic<std::uint32_t> stop_producers;
    std::atomic<std::uint32_t> stop_consumers;
    std::atomic<std::int64_t> producers_gone_at_ns;  ///< 0 until every producer has exited
    std::atomic<std::uint32_t> problems_logged;
    /// Notices from the library (a stale segment reclaimed, ...). The
    /// supervisor keeps one worker attached at every moment, so there must be none.
    std::atomic<std::uint64_t> segment_notices;
    std::atomic<std::uint32_t> problem_ready[problem_lines];
    char problems[problem_lines][problem_length];
    structure_ledger structures[structure_count];
};

// ---- the ledger's clock --------------------------------------------------------------------------

/// CLOCK_MONOTONIC in nanoseconds: heartbeats are written by workers in it
/// and read by the supervisor against it.
std::int64_t now_ns();
void sleep_ns(std::int64_t ns);

// ---- the ledger as mapped in every process -------------------------------------------------------

/// The ledger and the bitmaps, mapped once by the supervisor before any
/// fork: every process holds the same pointers to the same memory.
struct shared_ledger {
    ledger* book = nullptr;
    std::atomic<std::uint64_t>* bitmaps = nullptr;

    /// Maps a zeroed ledger and its bitmaps; exits with status 2 if it cannot.
    static shared_ledger map();

    std::atomic<std::uint64_t>& bitmap_word(unsigned s, std::uint32_t slot, std::uint64_t k) const {
        return bitmaps[(std::size_t{s} * max_slots + slot) * bitmap_words_per_slot + k / 64];
    }
    /// Whether element k of producer slot `slot` of structure `s` has been marked as seen.
    bool is_marked(unsigned s, std::uint32_t slot, std::uint64_t k) const {
        return (bitmap_word(s, slot, k).load() >> (k % 64) & 1) != 0;
    }
    /// Marks element k as seen; returns whether it already was (a duplicate).
    bool mark(unsigned s, std::uint32_t slot, std::uint64_t k) const {
        const std::uint64_t bit = std::uint64_t{1} << (k % 64);
        return (bitmap_word(s, slot, k).fetch_or(bit) & bit) != 0;
    }

    /// Adds a line to the problem log, which the supervisor prints as soon
    /// as it sees it (the continuous check). Past problem_lines, the line
    /// is only counted: the counters hold the totals.
    [[gnu::format(printf, 2, 3)]] void problem(const char* format, ...) const;
    /// Line `line` of the problem log, or nullptr while it is not written yet.
    const char* problem_line(std::uint32_t line) const;
};

}  // namespace soak
