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

/// Median round trip, in ns, of a cache line written alternately by two
/// processes pinned to `cpu_a` and `cpu_b` (or unpinned, when -1): the floor
/// under any cross-process hand-off.
inline double cacheline_round_trip_ns(int cpu_a, int cpu_b, int round_trips = 100'000) {
    struct alignas(128) line {
        std::atomic<std::uint64_t> value{0};
    };
    struct board {
        line ball;
        alignas(128) std::uint64_t batch_ns[64];
    };
    shared<board> b;
    constexpr int batches = 64;
    const int per_batch = std::max(1, round_trips / batches);
    team t(std::chrono::seconds(60));
    t.spawn("ping", cpu_a, [&] {
        t.arrive_and_wait();
        std::uint64_t v = 0;
        for (int batch = 0; batch < batches; ++batch) {
            const std::uint64_t start = now_ns();
            for (int i = 0; i < per_batch; ++i) {
                b->ball.value.store(++v, std::memory_order_release);
                while (b->ball.value.load(std::memory_order_acquire) != v + 1) {
                }
                ++v;
            }
            b->batch_ns[batch] = (now_ns() - start) / static_cast<std::uint64_t>(per_batch);
        }
    });
    t.spawn("pong", cpu_b, [&] {
        t.arrive_and_wait();
        const std::uint64_t last =
            static_cast<std::uint64_t>(batches) * static_cast<std::uint64_t>(per_batch) * 2;
        for (std::uint64_t v = 1; v < last; v += 2) {
            while (b->ball.value.load(std::memory_order_acquire) != v) {
            }
            b->ball.value.store(v + 1, std::memory_order_release);
        }
    });
    t.run("cache-line ping-pong");
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
