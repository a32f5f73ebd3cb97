// bench/ipc/families.cpp: the benchmark families that are not templates
// over a transport: the limits on their own, false sharing, and the
// in-process yardstick rings.
#include "ipc/families.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

#include "adapters/shmds_counters.hpp"
#include "harness/limits.hpp"
#include "harness/team.hpp"

namespace shmds_bench::ipc {
namespace {

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

}  // namespace

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

}  // namespace shmds_bench::ipc
