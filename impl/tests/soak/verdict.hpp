// impl/tests/soak/verdict.hpp: the verdict of a soak run, computed as data:
// the final scan of every element's fate, the figures per structure, the
// process and segment checks at the end, and the reasons for a FAIL.
//
// Owns: what counts as a failure at the end of a run, and the figures that
// show it. What the supervisor saw along the way comes in as a run_record.
// Must never: print or write anything (report.cpp writes a verdict as text
// and as JSON), nor start a process. The one side effect is cleaning up
// what the checks find left over (processes left behind are killed, a
// segment name left in /dev/shm is unlinked), so that a failed run leaves
// nothing behind.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "context.hpp"

namespace soak {

/// What the supervisor counted of one structure's workers.
struct structure_counts {
    std::uint64_t producer_kills = 0;
    std::uint64_t consumer_kills = 0;
    std::uint64_t restarts = 0;
    std::uint64_t paced_incarnations = 0;
    std::uint64_t sleeping_incarnations = 0;  ///< wait_strategy::sleep instead of spin_then_sleep
    std::int64_t longest_heartbeat_gap_ns = 0;
};

/// What the supervisor saw of one structure: its counts, and what each
/// killed worker took with it.
struct structure_tally {
    structure_counts counts;
    std::map<std::uint32_t, std::set<std::uint64_t>> in_doubt;  ///< per producer slot: k of elements in doubt
    /// Per producer slot: k of elements a killed consumer had popped and not marked.
    std::map<std::uint32_t, std::set<std::uint64_t>> popped_unmarked;
    /// SPSC: what each consumer death left. `seen` is k+1 of the last
    /// element the consumer side had recorded. A death inside a pop call
    /// (holding == in_pop_call) can have lost only the next element the
    /// producer published, and a death after one only the element it held,
    /// if unmarked (popped_unmarked): every SPSC loss must sit at one of
    /// those. first_popped is for the account of a loss that none explains.
    struct spsc_death {
        std::uint64_t seen = 0;
        std::uint64_t first_popped = 0;  ///< the incarnation's first element (held_code; 0: none)
        std::uint64_t holding = 0;       ///< its holding record when it died (worker_record::holding)
    };
    std::vector<spsc_death> spsc_consumer_deaths;
};

/// The supervisor's own record of a run, handed to the verdict at the end.
struct run_record {
    structure_tally tally[structure_count];
    std::vector<pid_t> started_pids;
    std::set<pid_t> reaped_pids;
    std::uint64_t postponed_kills = 0;  ///< kills put off: the victim was the only worker attached
    std::vector<std::string> reasons;   ///< failures found during the run, in order
};

/// One structure's elements, from the final scan of the ledger.
struct element_fates {
    std::uint64_t completed = 0;         ///< completed pushes (in-doubt elements excluded)
    std::uint64_t seen_once = 0;         ///< of those, seen exactly once
    std::uint64_t lost = 0;              ///< of those, never seen
    std::uint64_t lost_unmarked = 0;     ///< of those, popped by a consumer killed before it marked them
    std::uint64_t lost_unexplained = 0;  ///< SPSC: of those, not the element after a dead consumer's last
    /// SPSC: the first few of those, each with the consumer deaths nearest
    /// it (what a dead consumer had seen last), for whoever debugs the run.
    std::string unexplained_detail;
    std::uint64_t in_doubt = 0;
    std::uint64_t in_doubt_seen = 0;
    std::uint64_t beyond_started = 0;  ///< bits set for elements never started (phantoms)
};

/// One structure's figures and the failures they show.
struct structure_verdict {
    unsigned structure = 0;
    std::uint32_t producers = 0;
    std::uint32_t consumers = 0;
    structure_counts counts;
    element_fates elements;
    std::uint64_t loss_allowance = 0;  ///< one per consumer kill
    // Summed over every worker record of the structure:
    std::int64_t longest_call_ns = 0;
    std::uint64_t role_retries = 0;
    std::uint64_t calls = 0;
    std::uint64_t late_calls = 0;
    // The ledger's counters:
    std::uint64_t duplicates = 0;
    std::uint64_t order_violations = 0;
    std::uint64_t corrupt = 0;
    std::uint64_t phantom = 0;  ///< popped before their push began, or bits beyond started
    std::uint64_t lock_recoveries = 0;
    std::vector<std::string> failures;
};

struct soak_verdict {
    std::uint64_t seed = 0;
    double ran_s = 0;
    std::size_t capacity = 0;
    std::uint32_t timeout_ms = 0;
    bool fault_injected = false;
    /// Failures of the end-of-run process and segment checks (before the structures').
    std::vector<std::string> process_failures;
    std::vector<structure_verdict> structures;  ///< those that ran, in structure order
    std::uint32_t problems_logged = 0;
    std::size_t processes_started = 0;
    std::size_t processes_reaped = 0;
    std::size_t processes_left_behind = 0;
    std::string segment;
    bool segment_name_left = false;
    std::uint64_t kills = 0;
    std::uint64_t postponed_kills = 0;
    std::uint64_t restarts = 0;
    std::uint64_t elements_checked = 0;
    std::uint64_t library_notices = 0;
    /// Every failure: those found during the run, then the above in order. None: PASS.
    std::vector<std::string> reasons;

    bool pass() const { return reasons.empty(); }
};

/// Whether the segment's name is in /dev/shm.
bool segment_name_exists(const std::string& segment);

/// The verdict of the run described by `cx` and `run`, which ran for
/// `ran_s` seconds; call it once every worker has exited.
soak_verdict judge(const context& cx, const run_record& run, double ran_s);

}  // namespace soak
