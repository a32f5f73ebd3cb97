// impl/tests/soak/options.hpp: shmds-soak's command line, as parsed options.
//
// Owns: every option, its default, its --help text and its validation
// (exit status 2 and the usage on stderr for a bad command line; --help on
// stdout, exit status 0).
// Must never: start a process, map or attach to anything; a parsed
// `options` is plain data, copied into every worker by fork.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ledger.hpp"

namespace soak {

/// Self-tests: ways a worker (or the supervisor) misbehaves on purpose, so
/// that a test can check that each check of the verdict can fail.
enum class injected_fault { none, duplicate, loss, lose_one, reorder, block, leak, orphan };

struct options {
    double seconds = 60;
    std::uint32_t producers = 2;
    std::uint32_t consumers = 2;
    bool run[structure_count] = {true, true, true};
    double kill_every_ms = 250;      ///< mean interval between kills; 0: none
    std::uint32_t timeout_ms = 200;  ///< of every try_push_for / try_pop_for
    /// How much later than its timeout a call may return before its worker
    /// counts as blocked. A call returns on time, but its process must then
    /// be scheduled to say so: on a shared 2-vCPU VM with a dozen or more
    /// runnable workers (and other jobs), a runnable process can wait
    /// hundreds of milliseconds for a CPU (calls of 200 ms took up to 710 ms
    /// here at a load average of 10), and a sanitizer build is slower
    /// still. A hang is still caught: a call that never returns exceeds any
    /// slack.
    std::uint32_t slack_ms = 3000;
    std::size_t capacity = 256;
    std::uint64_t seed = 0;
    std::string segment;
    double progress_every_s = 10;
    std::string json_path;
    injected_fault inject = injected_fault::none;
};

/// Parses the command line; on a bad one, or --help, prints and exits.
/// Fills in what the user left to it: the seed (from the clock) and the
/// segment's name (/shmds-soak-<pid>).
options parse_options(int argc, char** argv);

}  // namespace soak
