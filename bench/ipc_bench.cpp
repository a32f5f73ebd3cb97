// bench/ipc_bench.cpp: the multi-process benchmarks, run through Google
// Benchmark so that results share its JSON format (context, repetitions,
// aggregates) with the microbenchmarks. Each benchmark iteration is one whole
// multi-process run timed by its members (manual time). Around every run the
// cache-line round trip between the CPUs used is measured again; a figure is
// also reported as a fraction of that limit (or of memcpy bandwidth).
//
//   shmds_ipc_bench [--quick] [--histograms=DIR] [Google Benchmark flags]
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include "adapters/shmds_channels.hpp"
#include "harness/limits.hpp"
#include "harness/machine.hpp"
#include "workloads/false_sharing.hpp"
#include "workloads/scenarios.hpp"

namespace shmds_bench {
namespace {

struct settings {
    bool quick = false;
    std::string histogram_dir;
} options;

std::string unique_tag() {
    static std::atomic<unsigned> counter{0};
    return std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

/// The cache-line round trip between the two CPUs the runs use.
double limit_round_trip_ns() {
    const auto where = placement::for_members(2);
    return cacheline_round_trip_ns(where.cpus[0], where.cpus[1], options.quick ? 20'000 : 100'000);
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

/// Writes the full histogram of one repetition of `name` beside the summary.
void write_histogram(const std::string& name, const latency_histogram& h) {
    if (options.histogram_dir.empty()) return;
    static std::map<std::string, int> repetitions;
    std::string file = name + "/repetition:" + std::to_string(repetitions[name]++);
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
                    double limit_ns) {
    state.SetIterationTime(r.seconds);
    state.SetItemsProcessed(static_cast<std::int64_t>(r.messages));
    const auto& h = r.histogram;
    state.counters["p50_ns"] = static_cast<double>(h.percentile(50));
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
    write_histogram(name, h);
}

template <template <std::size_t> class Channel, std::size_t Payload>
void register_throughput(shmds::wait_strategy wait, std::size_t senders, std::size_t receivers) {
    const std::string name = "ipc/throughput/" + Channel<Payload>::name() +
                             "/payload:" + std::to_string(Payload) + "/senders:" + std::to_string(senders) +
                             "/receivers:" + std::to_string(receivers) + "/wait:" + to_string(wait);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [=](benchmark::State& state) {
            const std::uint64_t messages =
                (options.quick ? 200'000 : 2'000'000) / std::max<std::size_t>(1, Payload / 64);
            for (auto _ : state) {
                throughput_result r;
                with_limits(state, [&] {
                    r = run_throughput<Channel<Payload>>({unique_tag(), Payload, 1024, wait}, senders,
                                                         receivers, std::max<std::uint64_t>(messages, 2000));
                });
                state.SetIterationTime(r.seconds);
                state.SetItemsProcessed(static_cast<std::int64_t>(r.messages));
                state.SetBytesProcessed(static_cast<std::int64_t>(r.messages * Payload));
                const double bytes_per_second = static_cast<double>(r.messages * Payload) / r.seconds;
                state.counters["fraction_of_memcpy"] = bytes_per_second / memcpy_limit();
                state.counters["oversubscribed"] = r.oversubscribed ? 1 : 0;
                const bool spinning = wait != shmds::wait_strategy::sleep;
                if (r.oversubscribed && spinning)
                    state.SetLabel("oversubscribed: spinning processes share CPUs");
            }
        })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

template <template <std::size_t> class Channel>
void register_ping_pong(shmds::wait_strategy wait) {
    const std::string name = "ipc/ping_pong/" + Channel<8>::name() + "/payload:8/wait:" + to_string(wait);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [=](benchmark::State& state) {
            const std::uint64_t round_trips = wait == shmds::wait_strategy::spin
                                                  ? (options.quick ? 20'000 : 200'000)
                                                  : (options.quick ? 2'000 : 20'000);
            for (auto _ : state) {
                latency_result r;
                double limit = 0;
                with_limits(state, [&] {
                    r = run_ping_pong<Channel<8>>({unique_tag(), 8, 64, wait}, round_trips);
                });
                limit = state.counters["limit_rtt_before_ns"];
                report_latency(state, name, r, limit);
            }
        })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

/// Latency at `fraction` of the channel's measured peak throughput.
template <template <std::size_t> class Channel>
void register_latency(shmds::wait_strategy wait, double fraction) {
    const std::string name = "ipc/latency/" + Channel<8>::name() +
                             "/payload:8/load:" + std::to_string(static_cast<int>(fraction * 100)) +
                             "%/wait:" + to_string(wait);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [=](benchmark::State& state) {
            static std::map<std::string, double> peak;  // messages/s, measured once per channel and wait
            const std::string key = Channel<8>::name() + to_string(wait);
            if (!peak.count(key)) {
                const auto r = run_throughput<Channel<8>>({unique_tag(), 8, 1024, wait}, 1, 1,
                                                          options.quick ? 100'000 : 1'000'000);
                peak[key] = static_cast<double>(r.messages) / r.seconds;
            }
            const double rate = std::min(fraction * peak[key], 20e6);
            const auto messages = static_cast<std::uint64_t>(std::clamp(
                rate * (options.quick ? 0.2 : 1.0), 2'000.0, options.quick ? 100'000.0 : 1'000'000.0));
            for (auto _ : state) {
                latency_result r;
                with_limits(state, [&] {
                    r = run_latency<Channel<8>>({unique_tag(), 8, 1024, wait}, rate, messages);
                });
                state.counters["offered_rate_per_second"] = rate;
                state.counters["peak_rate_per_second"] = peak[key];
                report_latency(state, name, r, state.counters["limit_rtt_before_ns"] / 2);
            }
        })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

void register_limits() {
    benchmark::RegisterBenchmark("limits/cacheline_round_trip",
                                 [](benchmark::State& state) {
                                     for (auto _ : state) {
                                         const double ns = limit_round_trip_ns();
                                         state.SetIterationTime(ns * 1e-9);
                                         state.counters["round_trip_ns"] = ns;
                                     }
                                 })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kNanosecond);
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

/// Each iteration times the layout and, right after, the 128-byte layout on
/// the same CPUs: factor = layout / 128 apart (1 = no false sharing).
void register_false_sharing() {
    const std::size_t members = std::max<std::size_t>(2, std::min<std::size_t>(4, allowed_cpus().size()));
    for (auto layout : {counter_layout::packed, counter_layout::line_64, counter_layout::allocator,
                        counter_layout::line_128}) {
        const std::string name = std::string("false_sharing/counters/layout:") + to_string(layout) +
                                 "/processes:" + std::to_string(members);
        benchmark::RegisterBenchmark(
            name.c_str(),
            [=](benchmark::State& state) {
                const std::uint64_t increments = options.quick ? 1'000'000 : 5'000'000;
                for (auto _ : state) {
                    const double seconds = time_counters(layout, members, increments, unique_tag());
                    const double widest =
                        time_counters(counter_layout::line_128, members, increments, unique_tag());
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
    auto ring = [](const char* name, auto time_this) {
        benchmark::RegisterBenchmark(name,
                                     [=](benchmark::State& state) {
                                         const std::uint64_t messages =
                                             options.quick ? 1'000'000 : 10'000'000;
                                         for (auto _ : state) {
                                             const double seconds = time_this(messages);
                                             const double padded = time_ring<128>(messages);
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

template <template <std::size_t> class Channel>
void register_payload_sweep(shmds::wait_strategy wait) {
    register_throughput<Channel, 8>(wait, 1, 1);
    if (options.quick) return;
    register_throughput<Channel, 64>(wait, 1, 1);
    register_throughput<Channel, 512>(wait, 1, 1);
    register_throughput<Channel, 4096>(wait, 1, 1);
    register_throughput<Channel, 65536>(wait, 1, 1);
}

void register_all() {
    using shmds::wait_strategy;
    register_limits();
    register_false_sharing();
    for (auto wait : {wait_strategy::spin, wait_strategy::spin_then_sleep, wait_strategy::sleep}) {
        if (options.quick && wait == wait_strategy::spin_then_sleep) continue;
        register_payload_sweep<shmds_spsc>(wait);
        register_payload_sweep<shmds_mpmc>(wait);
        register_throughput<shmds_stack, 8>(wait, 1, 1);
        register_ping_pong<shmds_spsc>(wait);
        register_ping_pong<shmds_mpmc>(wait);
        register_ping_pong<shmds_stack>(wait);
    }
    // Scaling with senders x receivers (spinning members beyond the CPUs are
    // marked oversubscribed; sleeping ones are fair game).
    for (auto wait : {wait_strategy::spin, wait_strategy::sleep})
        for (std::size_t s : {1u, 2u})
            for (std::size_t r : {1u, 2u})
                if (s + r > 2 && !options.quick) {
                    register_throughput<shmds_mpmc, 8>(wait, s, r);
                    register_throughput<shmds_stack, 8>(wait, s, r);
                }
    for (double fraction : {0.1, 0.5, 0.9}) {
        if (options.quick && fraction != 0.5) continue;
        register_latency<shmds_spsc>(wait_strategy::spin, fraction);
        register_latency<shmds_mpmc>(wait_strategy::spin, fraction);
        if (!options.quick) register_latency<shmds_spsc>(wait_strategy::sleep, fraction);
    }
}

}  // namespace
}  // namespace shmds_bench

int main(int argc, char** argv) {
    // Our own flags first; the rest go to Google Benchmark.
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--quick")
            shmds_bench::options.quick = true;
        else if (arg.rfind("--histograms=", 0) == 0)
            shmds_bench::options.histogram_dir = std::string(arg.substr(13));
        else
            rest.push_back(argv[i]);
    }
    int rest_count = static_cast<int>(rest.size());
    for (const auto& [key, value] : shmds_bench::machine_context()) benchmark::AddCustomContext(key, value);
    benchmark::AddCustomContext("benchmark_library_note",
                                "Debian's libbenchmark 1.7.1 is a debug build; it says so at start-up. "
                                "Multi-process runs are timed by their members (manual time).");
    benchmark::AddCustomContext("mode", shmds_bench::options.quick ? "quick" : "full");
    shmds_bench::register_all();
    benchmark::Initialize(&rest_count, rest.data());
    if (benchmark::ReportUnrecognizedArguments(rest_count, rest.data())) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
