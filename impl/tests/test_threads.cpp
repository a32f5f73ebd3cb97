// The concurrency tests again, with threads instead of processes, so that
// ThreadSanitizer (which cannot see across processes) checks the memory
// ordering of the process-safe structures. Each thread has its own handles,
// as a process would. Built in every configuration; CI also runs it under
// -fsanitize=thread.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "concurrent_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using shmds_test::traits;
using shmds_test::unique_segment_name;

constexpr std::uint64_t per_producer = 100'000;
constexpr std::size_t max_threads = 4;
using log_type = shmds_test::delivery_log<max_threads, per_producer>;

template <class S>
void exactly_once_with_threads(std::size_t producers, std::size_t consumers, shmds::wait_options wait) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 16 << 20);
    S created(seg, "s", 128, wait);
    auto log = std::make_unique<log_type>();
    const std::uint64_t total = per_producer * producers;
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            S s(shmds::open_only, seg, "s", wait);
            for (std::uint64_t i = 0; i < per_producer; ++i) s.push(shmds_test::element(p, i));
        });
    }
    for (std::size_t c = 0; c < consumers; ++c) {
        threads.emplace_back([&] {
            S s(shmds::open_only, seg, "s", wait);
            std::uint64_t last_seen[max_threads] = {};
            while (log->received.load() < total)
                if (auto v = s.try_pop_for(10ms)) log->record(*v, last_seen, traits<S>::fifo);
        });
    }
    for (auto& t : threads) t.join();
    shmds_test::expect_exactly_once(*log, producers, per_producer, total);
}

TEST(Threads, SpscOneByOne) {
    exactly_once_with_threads<shmds_test::spsc>(1, 1, {});
    exactly_once_with_threads<shmds_test::spsc>(1, 1, {.strategy = shmds::wait_strategy::sleep});
}

TEST(Threads, SpscBatches) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 16 << 20);
    shmds_test::spsc created(seg, "q", 100);
    std::thread producer([&] {
        shmds_test::spsc q(seg, "q");
        std::uint64_t buffer[37];
        for (std::uint64_t next = 0; next < per_producer;) {
            std::size_t n = std::min<std::uint64_t>(37, per_producer - next);
            for (std::size_t k = 0; k < n; ++k) buffer[k] = next + k;
            next += q.try_push_n(buffer, n);
        }
    });
    shmds_test::spsc q(seg, "q");
    std::uint64_t expected = 0;
    std::uint64_t buffer[23];
    while (expected < per_producer) {
        const std::size_t n = q.try_pop_n(buffer, 23);
        for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(buffer[k], expected++);
    }
    producer.join();
}

TEST(Threads, Mpmc2x2) {
    exactly_once_with_threads<shmds_test::mpmc>(2, 2, {});
}
TEST(Threads, Mpmc4x4Sleeping) {
    exactly_once_with_threads<shmds_test::mpmc>(4, 4, {.strategy = shmds::wait_strategy::sleep});
}
TEST(Threads, ConcurrentStack2x2) {
    exactly_once_with_threads<shmds_test::cstack>(2, 2, {});
}
TEST(Threads, ConcurrentStack4x4Sleeping) {
    exactly_once_with_threads<shmds_test::cstack>(4, 4, {.strategy = shmds::wait_strategy::sleep});
}

TEST(Threads, SleepAndWakePingPongLosesNoWakeUp) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    const shmds::wait_options sleepy{.strategy = shmds::wait_strategy::sleep};
    shmds_test::mpmc ping(seg, "ping", 1, sleepy);
    shmds_test::mpmc pong(seg, "pong", 1, sleepy);
    const std::uint64_t lost_before = shmds::detail::recovered_lost_wakeups.load();
    std::thread echo([&] {
        shmds_test::mpmc in(shmds::open_only, seg, "ping", sleepy);
        shmds_test::mpmc out(shmds::open_only, seg, "pong", sleepy);
        for (int i = 0; i < 20000; ++i) out.push(in.pop() + 1);
    });
    for (std::uint64_t i = 0; i < 20000; ++i) {
        ping.push(i);
        ASSERT_EQ(pong.pop(), i + 1);
    }
    echo.join();
    EXPECT_EQ(shmds::detail::recovered_lost_wakeups.load() - lost_before, 0u);
}

}  // namespace
