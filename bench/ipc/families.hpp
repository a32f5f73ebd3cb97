// bench/ipc/families.hpp: the benchmark families of shmds_ipc_bench, each a
// function that registers one benchmark (a transport, a way of waiting, a
// shape, the slot it runs in). Names, arguments and counters are what
// scripts/results.py reads: change them only together with it. Which
// families run, and in what order, is schedule.cpp's business, not theirs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include <benchmark/benchmark.h>

#include "ipc/runs.hpp"
#include "workloads/false_sharing.hpp"
#include "workloads/inprocess_ring.hpp"
#include "workloads/scenarios.hpp"

namespace shmds_bench::ipc {

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
                    channel_config timed{.payload = 8, .capacity = 64, .wait = wait};
                    timed.round_trip = true;  // checked as run_ping_pong carries it
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

void register_limits();

/// Each iteration times the layout and, right after, the 128-byte layout on
/// the same CPUs: factor = layout / 128 apart (1 = no false sharing).
void register_false_sharing_counters(counter_layout layout, const slot& where);

/// The SPSC ring with its head and tail on one line, and 128 bytes apart;
/// factor = this layout / the padded one, timed right after.
void register_false_sharing_rings();

/// An in-process yardstick for SPSC throughput (see inprocess_ring.hpp),
/// interleaved with the SPSC queue's own 8-byte runs.
void register_inprocess_ring(ring_design design, const std::string& name, const slot& where);

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

}  // namespace shmds_bench::ipc
