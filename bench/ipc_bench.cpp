// bench/ipc_bench.cpp: the multi-process benchmarks, run through Google
// Benchmark so that results share its JSON format (context, repetitions,
// aggregates) with the microbenchmarks. Each benchmark iteration is one whole
// multi-process run timed by its members (manual time). Around every run the
// cache-line round trip between the CPUs used is measured again; a figure is
// also reported as a fraction of that limit (or of memcpy bandwidth).
//
//   shmds_ipc_bench [OPTION...] [Google Benchmark flags]
//
// The options, with their defaults, are in usage_text (above parse_options;
// --help prints it).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include "adapters/shmds_channels.hpp"
#include "adapters/shmds_counters.hpp"
#include "harness/limits.hpp"
#include "harness/machine.hpp"
#include "harness/progress.hpp"
#include "workloads/false_sharing.hpp"
#include "workloads/inprocess_ring.hpp"
#include "workloads/scenarios.hpp"

#if SHMDS_WITH_COMPARE
#include "peers/boost_channels.hpp"
#include "peers/kernel_channels.hpp"
#else
#define SHMDS_WITH_COMPARE 0
#endif

namespace shmds_bench {
namespace {

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
} options;

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
std::uint64_t scaled(std::uint64_t full, std::uint64_t minimum = 2000) {
    const double n = static_cast<double>(full) * options.scale * (options.quick ? 0.1 : 1.0);
    return std::max<std::uint64_t>(minimum, static_cast<std::uint64_t>(n));
}
std::chrono::nanoseconds scaled(std::chrono::milliseconds full) {
    return std::chrono::nanoseconds(scaled(static_cast<std::uint64_t>(full.count()) * 1'000'000, 1'000'000));
}

std::string unique_tag() {
    static std::atomic<unsigned> counter{0};
    return std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

/// The round trip through one cache line (or one line each way) between
/// the two CPUs the runs use.
double limit_round_trip_ns(int lines = 1) {
    const auto where = placement::for_members(2);
    return cacheline_round_trip_ns(where.cpus[0], where.cpus[1], options.quick ? 20'000 : 100'000, lines);
}

double memcpy_limit() {
    static const double bytes_per_second = memcpy_bytes_per_second();
    return bytes_per_second;
}

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
void write_histogram(const std::string& name, const latency_histogram& h, int round) {
    if (options.histogram_dir.empty()) return;
    static std::map<std::string, int> repetitions;
    std::string file = name + (round >= 0 ? "/round:" + std::to_string(round) : "") +
                       "/repetition:" + std::to_string(repetitions[name]++);
    for (char& c : file)
        if (c == '/' || c == ':' || c == '%') c = '_';
    std::ofstream out(options.histogram_dir + "/" + file + ".json");
    out << "{\"name\": \"" << name << "\", \"repetition\": " << repetitions[name] - 1
        << ", \"unit\": \"ns\", \"count\": " << h.count() << ", \"buckets\": [";
    bool first = true;
    for (std::size_t b = 0; b < latency_histogram::bucket_count; ++b) {
        if (h.count_in(b) == 0) continue;
        out << (first ? "" : ", ") << "[" << latency_histogram::bucket_low(b) << ", "
            << latency_histogram::bucket_high(b) << ", " << h.count_in(b) << "]";
        first = false;
    }
    out << "]}\n";
}

void report_latency(benchmark::State& state, const std::string& name, const latency_result& r,
                    double limit_ns, int round = -1) {
    state.SetIterationTime(r.seconds);
    state.SetItemsProcessed(static_cast<std::int64_t>(r.messages));
    const auto& h = r.histogram;
    state.counters["p50_ns"] = static_cast<double>(h.percentile(50));
    // The headline ratios use this, not p50: see latency_histogram::mid_mean.
    state.counters["mid_mean_ns"] = h.mid_mean(25, 75);
    state.counters["p90_ns"] = static_cast<double>(h.percentile(90));
    state.counters["p99_ns"] = static_cast<double>(h.percentile(99));
    state.counters["p99_9_ns"] = static_cast<double>(h.percentile(99.9));
    state.counters["p99_99_ns"] = static_cast<double>(h.percentile(99.99));
    state.counters["max_ns"] = static_cast<double>(h.max());
    state.counters["mean_ns"] = h.mean();
    if (limit_ns > 0 && h.percentile(50) > 0)
        state.counters["fraction_of_limit"] = limit_ns / static_cast<double>(h.percentile(50));
    state.counters["oversubscribed"] = r.oversubscribed ? 1 : 0;
    if (r.oversubscribed) state.SetLabel("oversubscribed: more processes than CPUs");
    write_histogram(name, h, round);
}

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
channel_config with_fresh_tag(channel_config config) {
    config.tag = unique_tag();
    return config;
}

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
                            std::to_string(senders) + "x" + std::to_string(receivers);
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

template <template <std::size_t> class Channel, std::size_t Payload>
void register_throughput(shmds_bench::wait_mode wait, std::size_t senders, std::size_t receivers,
                         const slot& where = {}) {
    const std::string name = "ipc/throughput/" + Channel<Payload>::name() +
                             "/payload:" + std::to_string(Payload) + "/senders:" + std::to_string(senders) +
                             "/receivers:" + std::to_string(receivers) + "/wait:" + to_string(wait);
    register_in(where, name,
                [=](benchmark::State& state) {
                    const channel_config timed{.payload = Payload, .capacity = 1024, .wait = wait};
                    if (!ready_to_time<Channel<Payload>>(state, timed, senders, receivers)) return;
                    const auto duration = scaled(std::chrono::milliseconds(300));
                    for (auto _ : state) {
                        throughput_result r;
                        with_limits(state, [&] {
                            r = run_throughput<Channel<Payload>>(with_fresh_tag(timed), senders, receivers,
                                                                 duration);
                        });
                        state.SetIterationTime(r.seconds);
                        state.SetItemsProcessed(static_cast<std::int64_t>(r.messages));
                        state.SetBytesProcessed(static_cast<std::int64_t>(r.messages * Payload));
                        const double bytes_per_second = static_cast<double>(r.messages * Payload) / r.seconds;
                        state.counters["fraction_of_memcpy"] = bytes_per_second / memcpy_limit();
                        state.counters["oversubscribed"] = r.oversubscribed ? 1 : 0;
                        const bool spinning = wait != shmds_bench::wait_mode::sleep;
                        if (r.oversubscribed && spinning)
                            state.SetLabel("oversubscribed: spinning processes share CPUs");
                    }
                })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

template <template <std::size_t> class Channel>
void register_ping_pong(shmds_bench::wait_mode wait, const slot& where = {}) {
    const std::string name = "ipc/ping_pong/" + Channel<8>::name() + "/payload:8/wait:" + to_string(wait);
    register_in(where, name,
                [=](benchmark::State& state) {
                    const channel_config timed{.payload = 8, .capacity = 64, .wait = wait};
                    if (!ready_to_time<Channel<8>>(state, timed, 1, 1)) return;
                    const std::uint64_t round_trips =
                        scaled(wait == shmds_bench::wait_mode::spin ? 200'000 : 20'000);
                    // A sleeping round trip costs two kernel wake-ups (20-50 us
                    // here), so its runs end on this cap, not on the count: while
                    // both vCPUs idle in the kernel the host is free to move them,
                    // and the longer the run the more of its pairs see the limit
                    // move and are discarded (a quarter of them at 500 ms).
                    const auto duration =
                        scaled(std::chrono::milliseconds(wait == shmds_bench::wait_mode::spin ? 500 : 100));
                    for (auto _ : state) {
                        latency_result r;
                        // Two one-way channels need a line each way at least: that
                        // floor is measured too, right before.
                        const double two_lines = limit_round_trip_ns(2);
                        with_limits(state, [&] {
                            r = run_ping_pong<Channel<8>>(with_fresh_tag(timed), round_trips, duration);
                        });
                        report_latency(state, name, r, state.counters["limit_rtt_before_ns"],
                                       where.group.empty() ? -1 : where.round);
                        state.counters["limit_two_line_rtt_ns"] = two_lines;
                        if (r.histogram.percentile(50) > 0)
                            state.counters["fraction_of_two_line_limit"] =
                                two_lines / static_cast<double>(r.histogram.percentile(50));
                    }
                })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

/// One-way latency at `fraction` of the channel's measured maximum: the rate
/// this very workload reaches closed-loop (sender as fast as it can, same
/// stamping and recording), measured once per channel and wait.
template <template <std::size_t> class Channel>
void register_latency(shmds_bench::wait_mode wait, double fraction) {
    const std::string name = "ipc/latency/" + Channel<8>::name() +
                             "/payload:8/load:" + std::to_string(static_cast<int>(fraction * 100)) +
                             "%/wait:" + to_string(wait);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [=](benchmark::State& state) {
            const channel_config timed{.payload = 8, .capacity = 1024, .wait = wait};
            if (!ready_to_time<Channel<8>>(state, timed, 1, 1)) return;
            static std::map<std::string, double> peak;  // messages/s
            const std::string key = Channel<8>::name() + to_string(wait);
            if (!peak.count(key)) {
                const auto r = run_latency<Channel<8>>(with_fresh_tag(timed), 0, scaled(1'000'000));
                peak[key] = static_cast<double>(r.messages) / r.seconds;
            }
            const double rate = fraction * peak[key];
            // Half a second of offered load (a twentieth in quick mode).
            const auto messages = std::clamp<std::uint64_t>(
                static_cast<std::uint64_t>(rate * (options.quick ? 0.05 : 0.5) * options.scale), 2'000,
                scaled(2'000'000));
            for (auto _ : state) {
                latency_result r;
                with_limits(state,
                            [&] { r = run_latency<Channel<8>>(with_fresh_tag(timed), rate, messages); });
                state.counters["offered_rate_per_second"] = rate;
                state.counters["peak_rate_per_second"] = peak[key];
                report_latency(state, name, r, state.counters["limit_rtt_before_ns"] / 2);
            }
        })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

/// The limits on their own, once per run: the round trip through one line
/// and through two (one each way, ping-pong's floor), and memcpy bandwidth.
void register_limits() {
    const auto round_trip = [](const char* name, int lines) {
        benchmark::RegisterBenchmark(name,
                                     [lines](benchmark::State& state) {
                                         for (auto _ : state) {
                                             const double ns = limit_round_trip_ns(lines);
                                             state.SetIterationTime(ns * 1e-9);
                                             state.counters["round_trip_ns"] = ns;
                                         }
                                     })
            ->Iterations(1)
            ->UseManualTime()
            ->Unit(benchmark::kNanosecond);
    };
    round_trip("limits/cacheline_round_trip", 1);
    round_trip("limits/two_line_round_trip", 2);
    benchmark::RegisterBenchmark("limits/memcpy_64MiB",
                                 [](benchmark::State& state) {
                                     for (auto _ : state) {
                                         const double rate = memcpy_bytes_per_second();
                                         state.SetIterationTime(static_cast<double>(64u << 20) / rate);
                                         state.SetBytesProcessed(64 << 20);
                                     }
                                 })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

/// Seconds for the counters workload on `members` counters laid out as
/// `layout` (the allocator's layout is the library's: an adapter's).
double time_counters_as(counter_layout layout, std::size_t members, std::uint64_t increments) {
    if (layout == counter_layout::allocator) {
        const shmds_allocated_counters counters(members, unique_tag());
        return time_counters(counters.pointers(), increments);
    }
    const spaced_counters counters(layout, members);
    return time_counters(counters.pointers(), increments);
}

/// Each iteration times the layout and, right after, the 128-byte layout on
/// the same CPUs: factor = layout / 128 apart (1 = no false sharing).
void register_false_sharing_counters(counter_layout layout, const slot& where) {
    const std::size_t members = std::max<std::size_t>(2, std::min<std::size_t>(4, allowed_cpus().size()));
    const std::string name = std::string("false_sharing/counters/layout:") + to_string(layout) +
                             "/processes:" + std::to_string(members);
    register_in(where, name,
                [=](benchmark::State& state) {
                    const std::uint64_t increments = scaled(5'000'000);
                    for (auto _ : state) {
                        double seconds = 0, widest = 0;
                        with_limits(state, [&] {
                            seconds = time_counters_as(layout, members, increments);
                            widest = time_counters_as(counter_layout::line_128, members, increments);
                        });
                        state.SetIterationTime(seconds);
                        state.SetItemsProcessed(static_cast<std::int64_t>(increments * members));
                        state.counters["ns_per_increment"] = seconds * 1e9 / static_cast<double>(increments);
                        state.counters["false_sharing_factor"] = seconds / widest;
                    }
                })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

/// The SPSC ring with its head and tail on one line, and 128 bytes apart;
/// factor = this layout / the padded one, timed right after.
void register_false_sharing_rings() {
    auto ring = [](const char* name, auto time_this) {
        benchmark::RegisterBenchmark(name,
                                     [=](benchmark::State& state) {
                                         const std::uint64_t messages = scaled(10'000'000);
                                         for (auto _ : state) {
                                             double seconds = 0, padded = 0;
                                             with_limits(state, [&] {
                                                 seconds = time_this(messages);
                                                 padded = time_ring<128>(messages);
                                             });
                                             state.SetIterationTime(seconds);
                                             state.SetItemsProcessed(static_cast<std::int64_t>(messages));
                                             state.counters["false_sharing_factor"] = seconds / padded;
                                         }
                                     })
            ->Iterations(1)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    };
    ring("false_sharing/spsc_ring/head_tail:adjacent", [](std::uint64_t n) { return time_ring<8>(n); });
    ring("false_sharing/spsc_ring/head_tail:128_apart", [](std::uint64_t n) { return time_ring<128>(n); });
}

/// An in-process yardstick for SPSC throughput (see inprocess_ring.hpp),
/// interleaved with the SPSC queue's own 8-byte runs.
void register_inprocess_ring(ring_design design, const std::string& name, const slot& where) {
    register_in(where, "ipc/throughput/" + name + "/payload:8/senders:1/receivers:1/wait:spin",
                [design](benchmark::State& state) {
                    const std::uint64_t messages = scaled(20'000'000);
                    for (auto _ : state) {
                        const auto cpus = placement::for_members(2);
                        double seconds = 0;
                        with_limits(state, [&] {
                            seconds = time_inprocess_ring(design, messages, cpus.cpus[0], cpus.cpus[1]);
                        });
                        state.SetIterationTime(seconds);
                        state.SetItemsProcessed(static_cast<std::int64_t>(messages));
                        state.SetBytesProcessed(static_cast<std::int64_t>(messages * 8));
                        state.counters["fraction_of_memcpy"] =
                            static_cast<double>(messages * 8) / seconds / memcpy_limit();
                        state.counters["oversubscribed"] = cpus.oversubscribed ? 1 : 0;
                    }
                })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

/// Payload sizes the throughput sweep can run (each is compiled in).
constexpr std::size_t supported_payloads[] = {8, 16, 64, 256, 512, 1024, 4096, 16384, 65536};

template <template <std::size_t> class Channel, std::size_t... Sizes>
void register_throughput_for(std::size_t payload, shmds_bench::wait_mode wait, std::size_t senders,
                             std::size_t receivers, std::index_sequence<Sizes...>) {
    const bool known =
        ((payload == supported_payloads[Sizes]
              ? (register_throughput<Channel, supported_payloads[Sizes]>(wait, senders, receivers), true)
              : false) ||
         ...);
    if (!known)
        throw std::invalid_argument("--payloads: " + std::to_string(payload) + " is not a supported size");
}

/// A transport, as a type: Channel<Payload> is its adapter for each payload.
template <template <std::size_t> class Channel>
struct transport {};

/// Calls `f(transport<C>{})` for every transport: the project's structures,
/// then (unless --no-compare) the peers. Registering each scenario for all of
/// them in turn runs them side by side in time, on the same CPUs.
template <class F>
void for_each_transport(F&& f) {
    f(transport<shmds_spsc>{});
    f(transport<shmds_mpmc>{});
    f(transport<shmds_stack>{});
#if SHMDS_WITH_COMPARE
    if (!options.compare) return;
    f(transport<shmds_compare::boost_lockfree_spsc>{});
    f(transport<shmds_compare::boost_locked_ring>{});
    f(transport<shmds_compare::boost_message_queue>{});
    f(transport<shmds_compare::posix_mq_channel>{});
    f(transport<shmds_compare::pipe_channel>{});
    f(transport<shmds_compare::unix_socket_channel>{});
#endif
}

/// The in-process yardstick rings (see inprocess_ring.hpp), by the name their
/// benchmarks carry.
constexpr std::pair<ring_design, const char*> inprocess_rings[] = {
    {ring_design::cached_indices, "inprocess_spsc_ring"},
    {ring_design::slot_sequences, "inprocess_spsc_sequence_ring"},
};

/// Every transport this run measures, as "name:role,..." (role: project for
/// the project's structures, named shmds_*; peer; ring for the in-process
/// yardsticks), for the results' context: the scripts check their own list
/// (scripts/results.py, TRANSPORTS) against it (bench/tests/check_results.py).
std::string transports_for_context() {
    std::string list;
    const auto add = [&list](const std::string& name, const char* role) {
        list += (list.empty() ? "" : ",") + name + ":" + role;
    };
    for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
        add(C<8>::name(), C<8>::name().rfind("shmds_", 0) == 0 ? "project" : "peer");
    });
    for (const auto& ring : inprocess_rings) add(ring.second, "ring");
    return list;
}

/// A member of an interleaved group: registers its run in the slot it is given.
using member = std::function<void(const slot&)>;

/// Runs whose ratios make the headlines: every member runs once per round.
struct interleaved_group {
    std::string name;
    std::vector<member> members;
};

/// Registers every group's rounds spread over the whole run: round k of each
/// group (the groups, and the members within each, in an order shuffled
/// afresh every round, so that neither half of a ratio always runs first, on
/// a machine the other warmed), then the k-th share of the plain benchmarks.
/// A group's rounds thus sample the placements of the CPUs over the whole
/// run, not over the few minutes its rounds would take back to back: the
/// spread of its ratios, and so their confidence interval, includes how the
/// machine drifts during a run.
/// With --only-round=K just round K and its share are registered, in the
/// order a whole run with the same seed would give them: scripts/run-benchmarks
/// runs each round in a process of its own (see there why) and merges them.
void register_spread_over_run(std::vector<interleaved_group> groups,
                              const std::vector<std::function<void()>>& plain, std::mt19937_64& order) {
    const int rounds = options.pair_rounds > 0 ? options.pair_rounds : options.quick ? 2 : 24;
    if (options.only_round >= rounds)
        throw std::invalid_argument("--only-round=" + std::to_string(options.only_round) +
                                    ": there are only " + std::to_string(rounds) + " rounds (0 to " +
                                    std::to_string(rounds - 1) + ")");
    std::size_t next_plain = 0;
    for (int round = 0; round < rounds; ++round) {
        const bool wanted = options.only_round < 0 || options.only_round == round;
        std::shuffle(groups.begin(), groups.end(),
                     order);  // even when unwanted: the same order as a whole run
        for (interleaved_group& g : groups) {
            std::shuffle(g.members.begin(), g.members.end(), order);
            if (wanted)
                for (const member& m : g.members) m(slot{g.name, round});
        }
        const std::size_t share_end = plain.size() * static_cast<std::size_t>(round + 1) / rounds;
        for (; next_plain < share_end; ++next_plain)
            if (wanted) plain[next_plain]();
    }
}

/// The runs every headline ratio is taken from, as interleaved groups:
/// throughput of 8-byte elements, 1 x 1 (the in-process rings and every
/// transport with every way of waiting it has), ping-pong round trips (every
/// transport and way of waiting), and the false-sharing counters. A
/// transport that cannot wait some way is registered once, outside the
/// groups, to say why.
std::vector<interleaved_group> headline_groups() {
    using shmds_bench::wait_mode;
    const wait_mode all_waits[] = {wait_mode::spin, wait_mode::spin_then_sleep, wait_mode::sleep};
    interleaved_group throughput{"throughput_8B", {}};
    // (Each ring captured whole: clang 14 cannot capture a structured binding.)
    for (const auto& ring : inprocess_rings)
        throughput.members.emplace_back(
            [ring](const slot& s) { register_inprocess_ring(ring.first, ring.second, s); });
    interleaved_group ping_pong{"round_trips", {}};
    for (auto wait : all_waits)
        for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
            if (!cannot_run<C<8>>(wait, 1, 1).empty()) {
                register_throughput<C, 8>(wait, 1, 1);
                register_ping_pong<C>(wait);
                return;
            }
            throughput.members.emplace_back(
                [wait](const slot& s) { register_throughput<C, 8>(wait, 1, 1, s); });
            ping_pong.members.emplace_back([wait](const slot& s) { register_ping_pong<C>(wait, s); });
        });
    interleaved_group false_sharing{"false_sharing", {}};
    for (auto layout : {counter_layout::packed, counter_layout::line_64, counter_layout::allocator,
                        counter_layout::line_128})
        false_sharing.members.emplace_back(
            [layout](const slot& s) { register_false_sharing_counters(layout, s); });
    return {std::move(throughput), std::move(ping_pong), std::move(false_sharing)};
}

/// Every benchmark that is not part of a headline group (each repeated by
/// --benchmark_repetitions, its repetitions back to back), as registrations
/// to be made in this order.
std::vector<std::function<void()>> plain_benchmarks() {
    using shmds_bench::wait_mode;
    std::vector<std::function<void()>> plain{register_false_sharing_rings};
    std::vector<std::size_t> payloads = options.payloads;
    if (payloads.empty())
        payloads =
            options.quick ? std::vector<std::size_t>{8} : std::vector<std::size_t>{8, 64, 512, 4096, 65536};
    const auto waits =
        options.quick ? std::vector<wait_mode>{wait_mode::spin, wait_mode::sleep}
                      : std::vector<wait_mode>{wait_mode::spin, wait_mode::spin_then_sleep, wait_mode::sleep};
    // The payload sweep (8 bytes, 1 x 1, runs in the headline group).
    for (auto wait : waits)
        for (std::size_t payload : payloads)
            if (payload != 8)
                for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
                    plain.emplace_back([=] {
                        register_throughput_for<C>(payload, wait, 1, 1,
                                                   std::make_index_sequence<std::size(supported_payloads)>());
                    });
                });
    // Scaling with senders x receivers (spinning members beyond the CPUs are
    // marked oversubscribed; sleeping ones are fair game).
    for (auto wait : {wait_mode::spin, wait_mode::sleep})
        for (std::size_t s : options.senders)
            for (std::size_t r : options.receivers)
                if (s + r > 2 && !options.quick)
                    for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
                        plain.emplace_back([=] { register_throughput<C, 8>(wait, s, r); });
                    });
    for (double fraction : {0.1, 0.5, 0.9}) {
        if (options.quick && fraction != 0.5) continue;
        for (auto wait : {wait_mode::spin, wait_mode::sleep})
            for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
                plain.emplace_back([=] { register_latency<C>(wait, fraction); });
            });
    }
    return plain;
}

void register_all() {
    if (options.only_round <= 0) register_limits();  // once per run, not once per round's process
    std::mt19937_64 order(options.seed);
    auto groups = headline_groups();
    register_spread_over_run(std::move(groups), plain_benchmarks(), order);
}

/// "8,64,512" -> {8, 64, 512}; throws naming the flag on anything else.
std::vector<std::size_t> parse_list(std::string_view flag, std::string_view text) {
    std::vector<std::size_t> values;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string item(text.substr(start, comma - start));
        std::size_t used = 0;
        unsigned long value = 0;
        try {
            value = std::stoul(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || value == 0)
            throw std::invalid_argument(std::string(flag) + ": '" + item + "' is not a positive number");
        values.push_back(value);
        start = comma + 1;
    }
    return values;
}

/// --help: every option parse_options takes, with its default.
constexpr const char* usage_text =
    "usage: shmds_ipc_bench [OPTION...] [Google Benchmark flags]\n"
    "The multi-process benchmarks: throughput, ping-pong and latency under load of every transport,\n"
    "with the hardware's limits measured around every run; Google Benchmark's output formats.\n"
    "\n"
    "  --quick            a smoke run: shorter runs, fewer sizes and ways of waiting, no scaling runs\n"
    "  --no-compare       only the project's structures, not the comparison peers (Boost.Interprocess,\n"
    "                     pipes, UNIX sockets, POSIX message queues; on when they are compiled in)\n"
    "  --histograms=DIR   write every run's latency histogram as JSON into DIR (none written)\n"
    "  --clock=CLOCK      timestamps: auto (the TSC where invariant), tsc or monotonic (auto)\n"
    "  --payloads=LIST    sizes of the throughput sweep, of 8,16,64,256,512,1024,4096,16384,65536\n"
    "                     (8,64,512,4096,65536; --quick: 8)\n"
    "  --senders=LIST     senders of the scaling runs, each with every receivers count\n"
    "                     where the sum exceeds 2 (1,2)\n"
    "  --receivers=LIST   receivers of the scaling runs (1,2)\n"
    "  --scale=F          multiplies every run's length (1)\n"
    "  --pair-rounds=N    rounds of each interleaved group of headline runs, spread over the\n"
    "                     whole run (24; --quick: 2)\n"
    "  --seed=N           the order of the members in each round (from the clock; recorded\n"
    "                     in the context as pair_order_seed)\n"
    "  --only-round=K     only round K (from 0) of the groups and its share of the other runs,\n"
    "                     in the order a whole run with the same --seed has them (all rounds)\n"
    "  -h, --help         this text, then Google Benchmark's flags\n";

/// Takes the flags this program knows out of argv; returns the rest.
std::vector<char*> parse_options(int argc, char** argv) {
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const std::size_t equals = arg.find('=');
        const std::string_view flag = arg.substr(0, equals);
        const std::string value(equals == std::string_view::npos ? "" : arg.substr(equals + 1));
        if (arg == "--help" || arg == "-h") {
            print_help_and_exit(usage_text, argv[0]);
        } else if (arg == "--quick") {
            options.quick = true;
        } else if (arg == "--no-compare") {
            options.compare = false;
        } else if (flag == "--histograms") {
            options.histogram_dir = value;
        } else if (flag == "--clock") {
            options.clock = value;
        } else if (flag == "--payloads") {
            options.payloads = parse_list(flag, value);
        } else if (flag == "--senders") {
            options.senders = parse_list(flag, value);
        } else if (flag == "--receivers") {
            options.receivers = parse_list(flag, value);
        } else if (flag == "--pair-rounds") {
            options.pair_rounds = static_cast<int>(parse_list(flag, value).at(0));
        } else if (flag == "--only-round") {
            char* end = nullptr;
            const unsigned long round = std::strtoul(value.c_str(), &end, 10);
            if (value.empty() || value[0] == '-' || *end != '\0' || round > 1000000)
                throw std::invalid_argument("--only-round: '" + value +
                                            "' is not a round number (0, 1, ...)");
            options.only_round = static_cast<int>(round);
        } else if (flag == "--seed") {
            options.seed = parse_list(flag, value).at(0);
        } else if (flag == "--scale") {
            char* end = nullptr;
            options.scale = std::strtod(value.c_str(), &end);
            if (end == value.c_str() || *end != '\0' || !(options.scale > 0))
                throw std::invalid_argument("--scale: '" + value + "' is not a positive number");
        } else {
            rest.push_back(argv[i]);
        }
    }
    return rest;
}

}  // namespace
}  // namespace shmds_bench

int main(int argc, char** argv) {
    using namespace shmds_bench;
    try {
        std::vector<char*> rest = parse_options(argc, argv);
        select_clock(options.clock);
        if (options.seed == 0)
            options.seed =
                static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        benchmark::AddCustomContext("pair_order_seed", std::to_string(options.seed));
        if (options.only_round >= 0)
            benchmark::AddCustomContext("only_round", std::to_string(options.only_round));
        for (const auto& [key, value] : machine_context()) benchmark::AddCustomContext(key, value);
        benchmark::AddCustomContext("benchmark_library_note",
                                    "Debian's libbenchmark 1.7.1 is a debug build; it says so at start-up. "
                                    "Multi-process runs are timed by their members (manual time).");
        benchmark::AddCustomContext("mode", options.quick ? "quick" : "full");
        benchmark::AddCustomContext("compare", options.compare ? "yes" : "no");
        benchmark::AddCustomContext("transports", transports_for_context());
        register_all();
        return run_with_progress(rest);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmds_ipc_bench: %s\n", e.what());
        return 2;
    }
}
