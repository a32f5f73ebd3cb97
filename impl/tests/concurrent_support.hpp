// Shared by the tests of the process-safe structures: what differs between
// them (order, producer count, batches), a checker for exactly-once,
// per-producer-ordered delivery that consumers in several processes (or
// threads) fill in through shared memory, its checks, and producer
// processes that feed it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "child_process.hpp"

namespace shmds_test {

using spsc = shmds::shm_spsc_queue<std::uint64_t>;
using mpmc = shmds::shm_mpmc_queue<std::uint64_t>;
using cstack = shmds::shm_concurrent_stack<std::uint64_t>;

template <class S>
struct traits;

template <>
struct traits<spsc> {
    using control = shmds::detail::spsc_control;
    static constexpr bool fifo = true;
    static constexpr bool many_producers = false;
    static constexpr bool batches = true;
};
template <>
struct traits<mpmc> {
    using control = shmds::detail::mpmc_control;
    static constexpr bool fifo = true;
    static constexpr bool many_producers = true;
    static constexpr bool batches = true;
};
template <>
struct traits<cstack> {
    using control = shmds::detail::concurrent_stack_control;
    static constexpr bool fifo = false;
    static constexpr bool many_producers = true;
    static constexpr bool batches = false;
};

/// The control block of structure `name`, for tests that watch its wait
/// channels.
template <class S>
typename traits<S>::control* control_of(shmds::posix_shm& seg, const std::string& name) {
    auto info = seg.table().find(name);
    return reinterpret_cast<typename traits<S>::control*>(static_cast<std::byte*>(seg.base()) + info->offset);
}

/// Element values: producer number in the high bits, its sequence number in
/// the low 40.
constexpr std::uint64_t element(std::uint64_t producer, std::uint64_t sequence) {
    return (producer << 40) | sequence;
}
constexpr std::uint64_t producer_of(std::uint64_t value) {
    return value >> 40;
}
constexpr std::uint64_t sequence_of(std::uint64_t value) {
    return value & ((std::uint64_t{1} << 40) - 1);
}

/// Lives in shared memory (MAP_SHARED | MAP_ANONYMOUS, or a thread's heap):
/// one bit per (producer, sequence), set by whichever consumer receives it.
template <std::size_t MaxProducers, std::size_t MaxPerProducer>
struct delivery_log {
    std::atomic<std::uint64_t> bits[MaxProducers][(MaxPerProducer + 63) / 64];
    std::atomic<std::uint64_t> received;
    std::atomic<std::uint64_t> duplicates;
    std::atomic<std::uint64_t> out_of_order;
    std::atomic<std::uint64_t> foreign;

    /// Records `value`; `last_seen` is the consumer's own array of the last
    /// sequence it saw from each producer (+1), for the order check.
    void record(std::uint64_t value, std::uint64_t* last_seen, bool fifo) {
        const std::uint64_t p = producer_of(value);
        const std::uint64_t s = sequence_of(value);
        if (p >= MaxProducers || s >= MaxPerProducer) {
            foreign.fetch_add(1);
            return;
        }
        const std::uint64_t bit = std::uint64_t{1} << (s % 64);
        if (bits[p][s / 64].fetch_or(bit) & bit) duplicates.fetch_add(1);
        if (fifo) {
            if (s + 1 <= last_seen[p]) out_of_order.fetch_add(1);
            last_seen[p] = s + 1;
        }
        received.fetch_add(1);
    }

    /// True when sequences [0, count) of producer `p` all arrived.
    bool complete(std::size_t p, std::uint64_t count) const {
        for (std::uint64_t s = 0; s < count; ++s)
            if ((bits[p][s / 64].load() & (std::uint64_t{1} << (s % 64))) == 0) return false;
        return true;
    }
    bool has(std::size_t p, std::uint64_t s) const {
        return (bits[p][s / 64].load() & (std::uint64_t{1} << (s % 64))) != 0;
    }
};

/// The checks of an exactly-once run, as GoogleTest expectations: `log`
/// received `total` elements, none twice, none foreign, none out of order,
/// and sequences [0, per_producer) of each of the first `producers`.
template <std::size_t MaxProducers, std::size_t MaxPerProducer>
void expect_exactly_once(const delivery_log<MaxProducers, MaxPerProducer>& log, std::size_t producers,
                         std::uint64_t per_producer, std::uint64_t total) {
    EXPECT_EQ(log.received.load(), total);
    EXPECT_EQ(log.duplicates.load(), 0u);
    EXPECT_EQ(log.foreign.load(), 0u);
    EXPECT_EQ(log.out_of_order.load(), 0u);
    for (std::size_t p = 0; p < producers; ++p)
        EXPECT_TRUE(log.complete(p, per_producer)) << "producer " << p;
}

/// Starts `producers` processes that attach to segment `name` by name and
/// push elements (p, 0), (p, 1), ... (p, per_producer - 1) into structure
/// "s", waiting as `wait` says, then run `after`. Returns their pids.
template <class S>
std::vector<pid_t> start_producers(
    process_group& group, const std::string& name, std::size_t producers, std::uint64_t per_producer,
    const shmds::wait_options& wait, const std::function<void()>& after = [] {}) {
    std::vector<pid_t> pids;
    pids.reserve(producers);
    for (std::size_t p = 0; p < producers; ++p) {
        pids.push_back(group.spawn([&, p] {
            shmds::posix_shm mine(name);
            S s(shmds::open_only, mine, "s", wait);
            for (std::uint64_t i = 0; i < per_producer; ++i) s.push(element(p, i));
            after();
        }));
    }
    return pids;
}

}  // namespace shmds_test
