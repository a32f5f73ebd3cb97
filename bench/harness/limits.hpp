// bench/harness/limits.hpp: the hardware's own limits, measured on the CPUs
// a benchmark uses, right before and after it: the round trip of one cache
// line bounced between two processes, and memcpy bandwidth. Every figure is
// reported beside them and as a fraction of them.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "harness/machine.hpp"
#include "harness/team.hpp"

namespace shmds_bench {

/// Median round trip, in ns, between two processes pinned to `cpu_a` and
/// `cpu_b` (or unpinned, when -1) that hand a counter back and forth through
/// `lines` cache lines:
///   1  one line written alternately by both: the floor under any
///      cross-process hand-off (the "bare cache-line ping-pong");
///   2  one line each way, each written by one side only: the floor under
///      any pair of one-way channels (a ping-pong over two queues). On
///      some VM placements it is twice the one-line figure.
inline double cacheline_round_trip_ns(int cpu_a, int cpu_b, int round_trips = 100'000, int lines = 1) {
    struct alignas(128) line {
        std::atomic<std::uint64_t> value{0};
    };
    constexpr int batches = 64;  // ping times each; pong answers batches * per_batch round trips
    struct board {
        line there;
        line back;  // used when lines == 2
        alignas(128) std::uint64_t batch_ns[batches];
    };
    shared<board> b;
    std::atomic<std::uint64_t>& there = b->there.value;
    std::atomic<std::uint64_t>& back = lines == 2 ? b->back.value : b->there.value;
    // One line: ping writes odd values and pong even ones. Two lines: each
    // side writes the round trip's number into its own line.
    const std::uint64_t step = lines == 2 ? 1 : 2;
    const std::uint64_t echo = lines == 2 ? 0 : 1;
    const int per_batch = std::max(1, round_trips / batches);
    team t(std::chrono::seconds(60));
    t.spawn("ping", cpu_a, [&] {
        t.arrive_and_wait();
        std::uint64_t v = 1;
        for (std::uint64_t& batch_ns : b->batch_ns) {
            const std::uint64_t start = now_ns();
            for (int i = 0; i < per_batch; ++i, v += step) {
                there.store(v, std::memory_order_release);
                while (back.load(std::memory_order_acquire) != v + echo) {
                }
            }
            batch_ns = (now_ns() - start) / static_cast<std::uint64_t>(per_batch);
        }
    });
    t.spawn("pong", cpu_b, [&] {
        t.arrive_and_wait();
        const std::uint64_t total =
            static_cast<std::uint64_t>(batches) * static_cast<std::uint64_t>(per_batch);
        std::uint64_t v = 1;
        for (std::uint64_t i = 0; i < total; ++i, v += step) {
            while (there.load(std::memory_order_acquire) != v) {
            }
            back.store(v + echo, std::memory_order_release);
        }
    });
    t.run(lines == 2 ? "two-line ping-pong" : "cache-line ping-pong");
    std::vector<std::uint64_t> samples(b->batch_ns, b->batch_ns + batches);
    std::nth_element(samples.begin(), samples.begin() + batches / 2, samples.end());
    return static_cast<double>(samples[batches / 2]);
}

/// Median memcpy bandwidth in bytes per second over a buffer of `bytes`
/// (large enough to leave the caches), in this process.
inline double memcpy_bytes_per_second(std::size_t bytes = 64u << 20, int repeats = 7) {
    std::unique_ptr<char[]> from(new char[bytes]);
    std::unique_ptr<char[]> to(new char[bytes]);
    std::memset(from.get(), 1, bytes);
    std::memset(to.get(), 2, bytes);
    std::vector<double> rates;
    for (int r = 0; r < repeats; ++r) {
        const std::uint64_t start = now_ns();
        std::memcpy(to.get(), from.get(), bytes);
        const std::uint64_t elapsed = std::max<std::uint64_t>(1, now_ns() - start);
        asm volatile("" ::"r"(to.get()) : "memory");
        rates.push_back(static_cast<double>(bytes) * 1e9 / static_cast<double>(elapsed));
    }
    std::nth_element(rates.begin(), rates.begin() + repeats / 2, rates.end());
    return rates[static_cast<std::size_t>(repeats / 2)];
}

}  // namespace shmds_bench
