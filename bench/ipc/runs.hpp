// bench/ipc/runs.hpp: what every multi-process benchmark of shmds_ipc_bench
// shares around its run: the program's options, the slot a run is registered
// in, run lengths, the hardware limits measured around a run, the delivery
// check before it is timed, and its latency counters and histogram file.
// Registers no benchmark of its own (families.hpp does) and knows no
// transport but through the template parameter it is given.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "harness/channel.hpp"
#include "harness/histogram.hpp"
#include "workloads/scenarios.hpp"

#ifndef SHMDS_WITH_COMPARE
#define SHMDS_WITH_COMPARE 0  // compare/CMakeLists.txt defines it to 1 when the peers are built in
#endif

namespace shmds_bench::ipc {

struct settings {
    bool quick = false;
    bool compare = SHMDS_WITH_COMPARE;  ///< the peers (compare/) beside the project's structures
    std::string histogram_dir;
    std::string clock = "auto";
    std::vector<std::size_t> payloads;       ///< throughput sweep; empty: the defaults
    std::vector<std::size_t> senders{1, 2};  ///< scaling runs: every senders x receivers
    std::vector<std::size_t> receivers{1, 2};
    double scale = 1;        ///< multiplies every run's length
    int pair_rounds = 0;     ///< rounds of each interleaved group; 0: 24 (2 in quick mode)
    int only_round = -1;     ///< run only this round and its share of the plain runs; -1: all
    std::uint64_t seed = 0;  ///< order of the members in each round; 0: from the clock
};

/// The options, as ipc_bench.cpp's parse_options set them before anything is registered.
extern settings options;

/// Where a run is registered: as a plain benchmark (repeated by
/// --benchmark_repetitions), or as one round of an interleaved group, in
/// which every member runs once per round, in an order shuffled afresh for
/// each round, with the limit measured before and after it. Ratios between
/// members are taken between runs of the same round (scripts/summarize.py),
/// so that both halves of a ratio saw the same placement of the CPUs.
struct slot {
    std::string group;  ///< empty: a plain benchmark
    int round = 0;

    /// "ipc/throughput/x/..." -> "paired/<group>/ipc/throughput/x/.../round:<round>".
    std::string name(const std::string& plain) const {
        if (group.empty()) return plain;
        return "paired/" + group + "/" + plain + "/round:" + std::to_string(round);
    }
};

/// Registers `run` as the benchmark `plain` in the slot `where` (a round
/// runs once, whatever --benchmark_repetitions says).
template <class Run>
benchmark::internal::Benchmark* register_in(const slot& where, const std::string& plain, Run&& run) {
    auto* b = benchmark::RegisterBenchmark(where.name(plain).c_str(), std::forward<Run>(run));
    return where.group.empty() ? b : b->Repetitions(1);
}

/// A run's length: the full-mode figure, shortened in quick mode and scaled by --scale.
std::uint64_t scaled(std::uint64_t full, std::uint64_t minimum = 2000);
std::chrono::nanoseconds scaled(std::chrono::milliseconds full);

std::string unique_tag();

/// The round trip through one cache line (or one line each way) between
/// the two CPUs the runs use.
double limit_round_trip_ns(int lines = 1);

double memcpy_limit();

/// Records the limit before and after `run`, and flags runs during which it
/// moved by more than a quarter (the VM's CPUs moved on the host).
template <class Run>
void with_limits(benchmark::State& state, Run&& run) {
    const double before = limit_round_trip_ns();
    run();
    const double after = limit_round_trip_ns();
    state.counters["limit_rtt_before_ns"] = before;
    state.counters["limit_rtt_after_ns"] = after;
    state.counters["limit_moved"] = std::fabs(after - before) > 0.25 * std::min(before, after) ? 1 : 0;
}

/// Writes the full histogram of one repetition of `name` beside the summary,
/// or of round `round` of its interleaved group (named by the round: each
/// round runs in a process of its own, whose repetition count starts afresh).
void write_histogram(const std::string& name, const latency_histogram& h, int round);

void report_latency(benchmark::State& state, const std::string& name, const latency_result& r,
                    double limit_ns, int round = -1);

/// Why `Channel` cannot run with this wait strategy and these senders and
/// receivers (empty when it can): the report says so instead of leaving a hole.
template <class Channel>
std::string cannot_run(shmds_bench::wait_mode wait, std::size_t senders, std::size_t receivers) {
    if constexpr (requires { Channel::supports(wait); }) {
        if (!Channel::supports(wait)) return Channel::name() + " cannot wait by " + to_string(wait);
    }
    if constexpr (requires { Channel::unavailable(); }) {
        if (std::string why = Channel::unavailable(); !why.empty()) return why;
    }
    if (senders > Channel::max_senders || receivers > Channel::max_receivers)
        return Channel::name() + " takes at most " + std::to_string(Channel::max_senders) +
               " sender(s) and " + std::to_string(Channel::max_receivers) + " receiver(s)";
    return "";
}

/// `config` under a fresh tag: every run names its own resources.
channel_config with_fresh_tag(channel_config config);

/// Runs check_delivery once per channel, configuration (payload, capacity,
/// wait) and shape before any of them is timed: exactly the configuration
/// that is then timed. False (and the benchmark skipped, saying why) when the
/// channel cannot run so or failed the check.
template <class Channel>
bool ready_to_time(benchmark::State& state, const channel_config& timed, std::size_t senders,
                   std::size_t receivers) {
    if (const std::string why = cannot_run<Channel>(timed.wait, senders, receivers); !why.empty()) {
        state.SkipWithError(("not applicable: " + why).c_str());
        return false;
    }
    static std::map<std::string, std::string> verdicts;
    const std::string key = Channel::name() + "/" + std::to_string(timed.payload) + "/" +
                            std::to_string(timed.capacity) + "/" + to_string(timed.wait) + "/" +
                            std::to_string(senders) + "x" + std::to_string(receivers) +
                            (timed.round_trip ? "/round_trip" : "");
    if (!verdicts.count(key)) {
        try {
            check_delivery<Channel>(with_fresh_tag(timed), senders, receivers);
            verdicts[key] = "";
        } catch (const std::exception& e) {
            verdicts[key] = e.what();
        }
    }
    if (!verdicts[key].empty()) {
        state.SkipWithError(("failed its delivery check: " + verdicts[key]).c_str());
        return false;
    }
    return true;
}

}  // namespace shmds_bench::ipc
