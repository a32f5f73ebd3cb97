// impl/tests/soak/worker.hpp: what a worker process does: a producer pushes
// its slot's stream of elements, a consumer pops and marks them in the
// ledger, each until the ledger tells it to stop.
//
// Owns: the worker's side of the ledger (started, completed, heartbeats,
// marks, the problem log), the checks made as each element is popped
// (checksum, phantom, duplicate, order), and the self-test faults a
// worker injects.
// Must never: return into the supervisor's code (a worker ends in _exit),
// fork anything but the leak self-test's holder, or judge the run as a
// whole: the verdict is the supervisor's, from the ledger.
#pragma once

#include <cstdint>

#include "context.hpp"

namespace soak {

enum class role { producer, consumer };

constexpr const char* role_name(role r) {
    return r == role::producer ? "producer" : "consumer";
}

/// How one incarnation of a worker behaves, drawn by the supervisor from
/// the seeded generator so that a run is varied and yet repeatable.
struct incarnation_style {
    /// Producer: sleeps 50 us every 16 elements, so the structure also
    /// spends time near empty (consumers then sleep) rather than always full.
    bool paced = false;
    /// Waits with wait_strategy::sleep instead of the default
    /// spin_then_sleep: handles with different strategies must work together.
    bool sleep_at_once = false;
};

/// A worker process's whole life, called in the child right after fork:
/// role `r`, slot `slot` of structure `s`. Exits with status 0 when told to
/// stop, 3 after an exception (logged as a problem); never returns.
[[noreturn]] void worker_main(const context& cx, unsigned s, role r, std::uint32_t slot,
                              const incarnation_style& style);

}  // namespace soak
