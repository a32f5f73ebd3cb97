// The process-safe structures across real processes: semantics, blocking
// and timeouts, sleep/wake without lost wake-ups (several sleepers per
// channel, membarrier forbidden), exactly-once delivery with P producers x C
// consumers, SPSC roles, fork() racing with joins, handles that outlive their
// segment handle, and processes killed at random.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "concurrent_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using shmds_test::child_ok;
using shmds_test::shared_block;
using shmds_test::spawn;
using shmds_test::traits;
using shmds_test::unique_segment_name;
using shmds_test::wait_child;
using shmds_test::wait_until;

constexpr shmds::wait_options sleep_only{.strategy = shmds::wait_strategy::sleep};

template <class S>
class Concurrent : public ::testing::Test {
protected:
    unique_segment_name name_;
    shmds::posix_shm seg_{name_, 32 << 20};
};

using structures = ::testing::Types<shmds_test::spsc, shmds_test::mpmc, shmds_test::cstack>;
TYPED_TEST_SUITE(Concurrent, structures);

TYPED_TEST(Concurrent, TryOperationsFollowTheStructuresOrder) {
    TypeParam s(this->seg_, "s", 5);
    EXPECT_EQ(s.capacity(), 5u);
    EXPECT_TRUE(s.empty());
    EXPECT_FALSE(s.try_pop());
    for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(s.try_push(i));
    EXPECT_TRUE(s.full());
    EXPECT_EQ(s.size(), 5u);
    EXPECT_FALSE(s.try_push(99));
    for (std::uint64_t i = 0; i < 5; ++i) {
        auto v = s.try_pop();
        ASSERT_TRUE(v);
        EXPECT_EQ(*v, traits<TypeParam>::fifo ? i : 4 - i);
    }
    EXPECT_TRUE(s.empty());
    // Many laps around a ring (or up and down a stack) keep working.
    for (std::uint64_t i = 0; i < 1000; ++i) {
        ASSERT_TRUE(s.try_push(i));
        ASSERT_TRUE(s.try_push(i + 1));
        auto a = s.try_pop();
        auto b = s.try_pop();
        ASSERT_TRUE(a && b);
        if (traits<TypeParam>::fifo) {
            ASSERT_EQ(*a, i);
            ASSERT_EQ(*b, i + 1);
        } else {
            ASSERT_EQ(*a, i + 1);
            ASSERT_EQ(*b, i);
        }
    }
}

template <class Q>
class ConcurrentQueue : public Concurrent<Q> {};
using queues = ::testing::Types<shmds_test::spsc, shmds_test::mpmc>;
TYPED_TEST_SUITE(ConcurrentQueue, queues);

TYPED_TEST(ConcurrentQueue, BatchesMoveAsManyAsFit) {
    TypeParam q(this->seg_, "q", 10);
    std::vector<std::uint64_t> in(25);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = i;
    EXPECT_EQ(q.try_push_n(in.data(), 7), 7u);
    EXPECT_EQ(q.try_push_n(in.data() + 7, 18), 3u) << "only three more fit";
    EXPECT_EQ(q.try_push_n(in.data(), 1), 0u);
    std::vector<std::uint64_t> out(25);
    EXPECT_EQ(q.try_pop_n(out.data(), 4), 4u);
    EXPECT_EQ(q.try_push_n(in.data() + 10, 15), 4u);  // wraps around
    EXPECT_EQ(q.try_pop_n(out.data() + 4, 25), 10u);
    for (std::size_t i = 0; i < 14; ++i) EXPECT_EQ(out[i], i);
    EXPECT_EQ(q.try_pop_n(out.data(), 5), 0u);
}

TYPED_TEST(Concurrent, DiscoveryAndMismatchesWorkAsForTheCoreStructures) {
    TypeParam created(this->seg_, "s", 64);
    EXPECT_TRUE(created.created());
    TypeParam found(this->seg_, "s");
    EXPECT_FALSE(found.created());
    EXPECT_EQ(found.capacity(), 64u);
    EXPECT_THROW((TypeParam(this->seg_, "s", 65)), shmds::mismatch_error);
    EXPECT_THROW((shmds::shm_queue<std::uint64_t>(this->seg_, "s")), shmds::mismatch_error);
    EXPECT_THROW((TypeParam(this->seg_, "absent")), shmds::not_found_error);
    EXPECT_THROW((TypeParam(this->seg_, "zero", 0)), shmds::invalid_argument_error);
}

TYPED_TEST(Concurrent, TimeoutsReturnAfterTheirTimeout) {
    TypeParam s(this->seg_, "s", 2, sleep_only);
    auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(s.try_pop_for(50ms));
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 50ms);
    EXPECT_LT(waited, 30s) << "returned, not hung";
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    start = std::chrono::steady_clock::now();
    EXPECT_FALSE(s.try_push_for(3, 50ms));
    waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 50ms);
    EXPECT_LT(waited, 30s);
    EXPECT_TRUE(s.try_pop_for(0ms));  // an element is there: no wait at all
    EXPECT_TRUE(s.try_push_for(3, 10ms));
}

TYPED_TEST(Concurrent, ASleepingConsumerWakesOnThePushOfAnotherProcess) {
    TypeParam s(this->seg_, "s", 4, sleep_only);
    auto* control = shmds_test::control_of<TypeParam>(this->seg_, "s");
    shmds_test::process_group group;
    pid_t consumer = group.spawn([&] {
        shmds::posix_shm mine(this->name_.str());
        TypeParam c(shmds::open_only, mine, "s", sleep_only);
        CHILD_CHECK(c.pop() == 42);
    });
    // Push only once the consumer has announced itself asleep.
    ASSERT_TRUE(wait_until([&] { return control->not_empty.anyone_asleep(); }));
    ASSERT_TRUE(s.try_push(42));
    EXPECT_EQ(group.wait(consumer), child_ok);
}

TYPED_TEST(Concurrent, ASleepingProducerWakesOnThePopOfAnotherProcess) {
    TypeParam s(this->seg_, "s", 1, sleep_only);
    {
        TypeParam filler(this->seg_, "s");  // (gives its SPSC producer role back when it goes)
        ASSERT_TRUE(filler.try_push(1));
    }
    auto* control = shmds_test::control_of<TypeParam>(this->seg_, "s");
    shmds_test::process_group group;
    pid_t producer = group.spawn([&] {
        shmds::posix_shm mine(this->name_.str());
        TypeParam p(shmds::open_only, mine, "s", sleep_only);
        p.push(2);
    });
    ASSERT_TRUE(wait_until([&] { return control->not_full.anyone_asleep(); }));
    EXPECT_EQ(s.pop(), 1u);
    EXPECT_EQ(group.wait(producer), child_ok);
    EXPECT_EQ(s.pop(), 2u);
}

/// Two processes bounce a counter through two structures, both sleeping
/// whenever they wait: every hand-off needs a wake-up.
TYPED_TEST(Concurrent, SleepAndWakeAtHighRateLoseNoWakeUp) {
    constexpr std::uint64_t round_trips = 20000;
    shmds::wait_options sleepy{.strategy = shmds::wait_strategy::sleep};
    TypeParam ping(this->seg_, "ping", 1, sleepy);
    TypeParam pong(this->seg_, "pong", 1, sleepy);
    shared_block<std::atomic<std::uint64_t>> child_lost;
    shmds_test::process_group group;
    pid_t child = group.spawn([&] {
        shmds::posix_shm mine(this->name_.str());
        TypeParam in(shmds::open_only, mine, "ping", sleepy);
        TypeParam out(shmds::open_only, mine, "pong", sleepy);
        for (std::uint64_t i = 0; i < round_trips; ++i) out.push(in.pop() + 1);
        *child_lost = shmds::detail::recovered_lost_wakeups.load();
    });
    const std::uint64_t lost_before = shmds::detail::recovered_lost_wakeups.load();
    std::uint64_t value = 0;
    for (std::uint64_t i = 0; i < round_trips; ++i) {
        ping.push(value);
        value = pong.pop();
        ASSERT_EQ(value, i + 1);
    }
    ASSERT_EQ(group.wait(child), child_ok);
    EXPECT_EQ(shmds::detail::recovered_lost_wakeups.load() - lost_before, 0u);
    EXPECT_EQ(child_lost->load(), 0u);
}

// ---- many sleepers per channel, no safety net ----------------------------------------------------

/// Starts `producers` processes that attach to segment `name` by name and
/// push elements (p, 0), (p, 1), ... (p, per_producer - 1) into structure
/// "s", waiting as `wait` says, then run `after`. Returns their pids.
template <class S>
std::vector<pid_t> start_producers(
    shmds_test::process_group& group, const std::string& name, std::size_t producers,
    std::uint64_t per_producer, const shmds::wait_options& wait, const std::function<void()>& after = [] {}) {
    std::vector<pid_t> pids;
    pids.reserve(producers);
    for (std::size_t p = 0; p < producers; ++p) {
        pids.push_back(group.spawn([&, p] {
            shmds::posix_shm mine(name);
            S s(shmds::open_only, mine, "s", wait);
            for (std::uint64_t i = 0; i < per_producer; ++i) s.push(shmds_test::element(p, i));
            after();
        }));
    }
    return pids;
}

/// P producers x C consumers over a structure of capacity 2, everyone
/// sleeping whenever it waits, so that nearly every hand-off needs a wake-up
/// and each channel has several sleepers at once. The safety-net recheck is
/// ten minutes away and the run has a minute: a lost wake-up shows as a
/// sleeper that is never woken (for the last elements, when nothing else
/// comes along to wake it), and in the lost-wake-up counter of every process.
template <class S>
void run_sleepers(std::size_t producers, std::size_t consumers) {
    constexpr std::uint64_t total_elements_here = 24000;
    constexpr std::uint64_t stop = ~std::uint64_t{0};
    const shmds::wait_options asleep{.strategy = shmds::wait_strategy::sleep, .recheck_after = 600s};
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    S created(seg, "s", 2, asleep);
    struct board {
        shmds_test::delivery_log<4, total_elements_here> log;
        std::atomic<std::uint64_t> lost_wakeups;
    };
    shared_block<board> b;
    const std::uint64_t per_producer = total_elements_here / producers;
    const std::uint64_t total = per_producer * producers;
    shmds_test::process_group group;
    std::vector<pid_t> children = start_producers<S>(group, name.str(), producers, per_producer, asleep, [&] {
        b->lost_wakeups += shmds::detail::recovered_lost_wakeups.load();
    });
    for (std::size_t c = 0; c < consumers; ++c) {
        children.push_back(group.spawn([&] {
            shmds::posix_shm mine(name.str());
            S s(shmds::open_only, mine, "s", asleep);
            std::uint64_t last_seen[4] = {};
            for (;;) {
                const std::uint64_t v = s.pop();
                if (v == stop) break;
                b->log.record(v, last_seen, traits<S>::fifo);
            }
            b->lost_wakeups += shmds::detail::recovered_lost_wakeups.load();
        }));
    }
    // Everything delivered within the budget, or a sleeper was left asleep.
    const bool delivered = wait_until([&] { return b->log.received.load() == total; }, 60s);
    EXPECT_TRUE(delivered) << b->log.received.load() << " of " << total
                           << " delivered: a sleeper waits for a wake-up that never came";
    for (std::size_t c = 0; c < consumers && delivered; ++c) created.push(stop);
    for (pid_t child : children) EXPECT_EQ(group.wait(child, delivered ? 60s : 1s), child_ok);
    EXPECT_EQ(b->lost_wakeups.load(), 0u) << "sleepers rescued by the safety net";
    EXPECT_EQ(b->log.duplicates.load(), 0u);
    EXPECT_EQ(b->log.out_of_order.load(), 0u);
    for (std::size_t p = 0; p < producers; ++p) EXPECT_TRUE(b->log.complete(p, per_producer)) << p;
}

class ManySleepers : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {};

TEST_P(ManySleepers, Mpmc) {
    auto [producers, consumers] = GetParam();
    run_sleepers<shmds_test::mpmc>(producers, consumers);
}

TEST_P(ManySleepers, ConcurrentStack) {
    auto [producers, consumers] = GetParam();
    run_sleepers<shmds_test::cstack>(producers, consumers);
}

INSTANTIATE_TEST_SUITE_P(ProducersByConsumers, ManySleepers,
                         ::testing::Values(std::tuple<std::size_t, std::size_t>{2, 2},
                                           std::tuple<std::size_t, std::size_t>{1, 3},
                                           std::tuple<std::size_t, std::size_t>{3, 1}),
                         [](const auto& param_info) {
                             return std::to_string(std::get<0>(param_info.param)) + "x" +
                                    std::to_string(std::get<1>(param_info.param));
                         });

TEST(LostWakeups, ATimerRescueIsCountedEvenWhenTheSequenceMovedForAnotherSleeper) {
    // The counter of lost wake-ups must count every sleeper that only its
    // safety-net timer woke although what it waited for was there before: here
    // the futex sequence moves (as for a wake-up meant for another sleeper,
    // which this one did not get) and an element appears without any wake-up.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    const shmds::wait_options short_net{.strategy = shmds::wait_strategy::sleep, .recheck_after = 300ms};
    shmds_test::mpmc q(seg, "q", 4, short_net);
    auto* control = shmds_test::control_of<shmds_test::mpmc>(seg, "q");
    shared_block<std::atomic<std::uint64_t>> counted;
    shmds_test::process_group group;
    pid_t sleeper = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        shmds_test::mpmc in(shmds::open_only, mine, "q", short_net);
        CHILD_CHECK(in.pop() == 42);
        *counted = shmds::detail::recovered_lost_wakeups.load();
    });
    ASSERT_TRUE(wait_until([&] { return control->not_empty.anyone_asleep(); }));
    std::this_thread::sleep_for(100ms);        // well inside futex_wait by now
    control->not_empty.sequence.fetch_add(1);  // moved, but nobody woken
    // Position 0 published behind the queue's back: no wake-up at all.
    using layout = shmds::detail::mpmc_layout<std::uint64_t>;
    auto* block = reinterpret_cast<std::byte*>(control);
    *layout::slot_value(block, 0) = 42;
    layout::slot_word(block, 0)->store(shmds::detail::mpmc_word::make(0, shmds::detail::mpmc_word::full));
    control->tail.store(1);
    ASSERT_EQ(group.wait(sleeper, 20s), child_ok);
    EXPECT_EQ(counted->load(), 1u) << "the timer's rescue went uncounted";
}

// ---- fork() in one thread while another joins ------------------------------------------------

TEST(ForkRaces, ForkingInALoopWhileJoiningNeverLeavesARoleWithAChild) {
    // One thread forks short-lived children (each lives 200 ms, as a helper
    // might) as fast as it can while another takes and gives back the SPSC
    // producer role through two handles in turn. A child forked while a role
    // lock was being taken or given back must not keep it: the other handle
    // must always get the role at once.
    unique_segment_name name;
    shared_block<std::atomic<std::uint64_t>> refused;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str(), 1 << 20);
                  shmds_test::spsc a(mine, "q", 4);
                  shmds_test::spsc b(mine, "q");
                  std::atomic<bool> stop{false};
                  std::thread forker([&] {
                      std::vector<pid_t> children;
                      while (!stop.load()) {
                          const pid_t child = shmds_test::fork_idle_helper(200ms);
                          if (child > 0) children.push_back(child);
                          std::erase_if(children,
                                        [](pid_t c) { return ::waitpid(c, nullptr, WNOHANG) == c; });
                      }
                      for (pid_t c : children) ::waitpid(c, nullptr, 0);
                  });
                  for (int round = 0; round < 3000; ++round) {
                      shmds_test::spsc& taker = round % 2 == 0 ? a : b;
                      try {
                          (void)taker.try_push(1);
                          (void)taker.try_pop();
                      } catch (const shmds::role_error& e) {
                          if (refused->load() == 0) std::fprintf(stderr, "[child] refused: %s\n", e.what());
                          ++*refused;
                      }
                      taker.release_roles();
                  }
                  stop = true;
                  forker.join();
              })),
              child_ok);
    EXPECT_EQ(refused->load(), 0u) << "a role lock stayed with a forked child";
}

// ---- handles that outlive their segment handle ---------------------------------------------

template <class S>
void use_after_segment_handle_is_gone(const std::string& name) {
    std::optional<S> s;
    {
        shmds::posix_shm seg(name, 1 << 20);
        s.emplace(seg, "s", 4);
        CHILD_CHECK(s->try_push(1));
    }
    // The segment handle is gone; the structure handle keeps the mapping.
    CHILD_CHECK(shmds_test::shm_name_exists(name));
    CHILD_CHECK(s->try_push(2));
    CHILD_CHECK(s->try_pop().has_value());
    CHILD_CHECK(s->try_pop().has_value());
    s.reset();  // its destructor writes into the segment (roles, participant marks)
    CHILD_CHECK(!shmds_test::shm_name_exists(name));  // the last attacher removed the name
}

TEST(HandleLifetime, ProcessSafeHandlesOutlivingTheirSegmentHandleKeepTheMapping) {
    unique_segment_name spsc_name;
    unique_segment_name mpmc_name;
    unique_segment_name stack_name;
    EXPECT_EQ(wait_child(spawn([&] { use_after_segment_handle_is_gone<shmds_test::spsc>(spsc_name.str()); })),
              child_ok);
    EXPECT_EQ(wait_child(spawn([&] { use_after_segment_handle_is_gone<shmds_test::mpmc>(mpmc_name.str()); })),
              child_ok);
    EXPECT_EQ(
        wait_child(spawn([&] { use_after_segment_handle_is_gone<shmds_test::cstack>(stack_name.str()); })),
        child_ok);
}

// ---- membarrier forbidden ------------------------------------------------------------------------

TEST(MembarrierForbidden, SleepersThatCannotUseItLoseNoWakeUp) {
    // The child registered for membarrier (inherited from this process) and
    // then loses it: its sleeps fall back to full fences, so the processes
    // that wake it must fence too. Round trips through sleeping processes,
    // with the safety net ten minutes away and a minute to finish.
    constexpr std::uint64_t round_trips = 20000;
    const shmds::wait_options asleep{.strategy = shmds::wait_strategy::sleep, .recheck_after = 600s};
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::mpmc ping(seg, "ping", 1, asleep);
    shmds_test::mpmc pong(seg, "pong", 1, asleep);
    (void)ping.try_pop();  // registers this process for membarrier before the fork
    auto* ping_control = shmds_test::control_of<shmds_test::mpmc>(seg, "ping");
    ASSERT_FALSE(ping_control->not_empty.wakers_must_fence());
    shared_block<std::atomic<int>> forbidden;  // 1: membarrier forbidden, 2: no seccomp here
    shmds_test::process_group group;
    pid_t child = group.spawn([&] {
        if (!shmds_test::forbid_membarrier()) {
            *forbidden = 2;
            ::_exit(shmds_test::child_unsupported);
        }
        CHILD_CHECK(::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) == -1 && errno == EPERM);
        *forbidden = 1;
        shmds::posix_shm mine(name.str());
        shmds_test::mpmc in(shmds::open_only, mine, "ping", asleep);
        shmds_test::mpmc out(shmds::open_only, mine, "pong", asleep);
        for (std::uint64_t i = 0; i < round_trips; ++i) out.push(in.pop() + 1);
        CHILD_CHECK(shmds::detail::recovered_lost_wakeups.load() == 0);
    });
    // Known before the round trips, which would otherwise wait out their minute.
    ASSERT_TRUE(wait_until([&] { return forbidden->load() != 0; }));
    if (forbidden->load() == 2) {
        EXPECT_EQ(group.wait(child, 5s), shmds_test::child_unsupported);
        GTEST_SKIP() << shmds_test::unresolved(
            "no seccomp here to forbid membarrier (PR_SET_SECCOMP refused)");
    }
    std::uint64_t value = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (std::uint64_t i = 0; i < round_trips && std::chrono::steady_clock::now() < deadline; ++i) {
        ping.push(value);
        auto answer = pong.try_pop_for(deadline - std::chrono::steady_clock::now());
        if (!answer) break;
        value = *answer;
    }
    const int status = group.wait(child, 5s);
    EXPECT_EQ(forbidden->load(), 1);
    EXPECT_EQ(value, round_trips) << "a wake-up was lost: the round trips stopped at " << value;
    EXPECT_TRUE(ping_control->not_empty.wakers_must_fence()) << "the channel the child slept on";
    EXPECT_FALSE(ping_control->not_empty.anyone_asleep()) << "the fence bit is nobody's sleep";
    EXPECT_EQ(status, child_ok);
    EXPECT_EQ(shmds::detail::recovered_lost_wakeups.load(), 0u);
}

// ---- P producers x C consumers, exactly once ----------------------------------------------

constexpr std::uint64_t total_elements = 1'000'000;
constexpr std::size_t max_producers = 4;
using log_type = shmds_test::delivery_log<max_producers, total_elements>;
static_assert(100000 <= total_elements, "the random-kill test's producers fit the log");

/// Runs `producers` x `consumers` processes over structure S; returns the log.
template <class S>
void run_exactly_once(std::size_t producers, std::size_t consumers, const shmds::wait_options& wait) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 32 << 20);
    S created(seg, "s", 1024, wait);
    shared_block<log_type> log;
    const std::uint64_t per_producer = total_elements / producers;
    const std::uint64_t total = per_producer * producers;
    shmds_test::process_group group;
    std::vector<pid_t> children = start_producers<S>(group, name.str(), producers, per_producer, wait);
    for (std::size_t c = 0; c < consumers; ++c) {
        children.push_back(group.spawn([&] {
            shmds::posix_shm mine(name.str());
            S s(shmds::open_only, mine, "s", wait);
            std::uint64_t last_seen[max_producers] = {};
            while (log->received.load() < total) {
                if (auto v = s.try_pop_for(20ms)) log->record(*v, last_seen, traits<S>::fifo);
            }
        }));
    }
    for (pid_t child : children) ASSERT_EQ(group.wait(child), child_ok);
    EXPECT_EQ(log->received.load(), total);
    EXPECT_EQ(log->duplicates.load(), 0u);
    EXPECT_EQ(log->foreign.load(), 0u);
    EXPECT_EQ(log->out_of_order.load(), 0u);
    for (std::size_t p = 0; p < producers; ++p)
        EXPECT_TRUE(log->complete(p, per_producer)) << "producer " << p;
    EXPECT_TRUE(created.empty());
}

class ExactlyOnce : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {};

TEST_P(ExactlyOnce, Mpmc) {
    auto [producers, consumers] = GetParam();
    run_exactly_once<shmds_test::mpmc>(producers, consumers, {});
}

TEST_P(ExactlyOnce, ConcurrentStack) {
    auto [producers, consumers] = GetParam();
    run_exactly_once<shmds_test::cstack>(producers, consumers, {});
}

INSTANTIATE_TEST_SUITE_P(ProducersByConsumers, ExactlyOnce,
                         ::testing::Combine(::testing::Values(1u, 2u, 4u), ::testing::Values(1u, 2u, 4u)),
                         [](const auto& param_info) {
                             return std::to_string(std::get<0>(param_info.param)) + "x" +
                                    std::to_string(std::get<1>(param_info.param));
                         });

TEST(ExactlyOnceSpsc, OneByOneWithEachWaitStrategy) {
    for (auto strategy :
         {shmds::wait_strategy::spin, shmds::wait_strategy::spin_then_sleep, shmds::wait_strategy::sleep}) {
        SCOPED_TRACE(static_cast<int>(strategy));
        run_exactly_once<shmds_test::spsc>(1, 1, {.strategy = strategy});
    }
}

// ---- SPSC roles --------------------------------------------------------------------------------

TEST(SpscRoles, ASecondLiveProducerIsRefusedNamingTheHolder) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc q(seg, "q", 16);
    ASSERT_TRUE(q.try_push(1));  // takes the producer role
    EXPECT_TRUE(q.is_producer());
    EXPECT_EQ(
        wait_child(spawn([&] {
            shmds::posix_shm mine(name.str());
            shmds_test::spsc other(mine, "q");
            try {
                (void)other.try_push(2);
                CHILD_CHECK(!"a second producer was accepted");
            } catch (const shmds::role_error& e) {
                CHILD_CHECK(e.code() == shmds::errc::role_taken);
                CHILD_CHECK(std::string(e.what()).find(std::to_string(::getppid())) != std::string::npos);
            }
            CHILD_CHECK(other.try_pop() == 1u);  // the consumer role is free
        })),
        child_ok);
    shmds_test::spsc same_process(seg, "q");
    EXPECT_THROW((void)same_process.try_push(3), shmds::role_error) << "a second handle in the same process";
    EXPECT_FALSE(same_process.try_pop())
        << "the dead child's consumer role is free again; the queue is empty";
}

TEST(SpscRoles, RolesAreReleasedByDestructionAndByDeath) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    {
        shmds_test::spsc first(seg, "q", 16);
        ASSERT_TRUE(first.try_push(1));
    }
    shmds_test::spsc second(seg, "q");
    ASSERT_TRUE(second.try_push(2)) << "destroying the first handle released the role";
    second.release_roles();
    shared_block<std::atomic<int>> holding;
    shmds_test::process_group group;
    pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        shmds_test::spsc q(mine, "q");
        CHILD_CHECK(q.try_push(3));
        *holding = 1;
        for (;;) ::pause();
    });
    ASSERT_TRUE(wait_until([&] { return holding->load() == 1; }));
    EXPECT_THROW((void)second.try_push(4), shmds::role_error);
    ::kill(holder, SIGKILL);
    EXPECT_EQ(group.wait(holder), 128 + SIGKILL);
    EXPECT_TRUE(second.try_push(4)) << "the dead process's role was released by the kernel";
    for (std::uint64_t expected : {1u, 2u, 3u, 4u}) EXPECT_EQ(second.try_pop(), expected);
}

TEST(SpscRoles, AMovedFromHandleHoldsNoRole) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc first(seg, "q", 16);
    ASSERT_TRUE(first.try_push(1));
    shmds_test::spsc second(std::move(first));
    // Using the moved-from handle is the point of this test.
    // NOLINTBEGIN(bugprone-use-after-move)
    EXPECT_FALSE(first.is_producer());
    EXPECT_TRUE(second.is_producer());
    EXPECT_THROW((void)first.try_push(2), shmds::role_error) << "two producers on one ring";
    // NOLINTEND(bugprone-use-after-move)
    EXPECT_TRUE(second.try_push(2));
    EXPECT_EQ(second.try_pop(), 1u);
}

TEST(SpscRoles, AHandleCopiedByForkDoesNotActForItsParent) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc q(seg, "q", 16);
    ASSERT_TRUE(q.try_push(1));
    EXPECT_EQ(wait_child(spawn([&] {
                  CHILD_CHECK(!q.is_producer());
                  try {
                      (void)q.try_push(2);
                      CHILD_CHECK(!"the child pushed under its parent's role");
                  } catch (const shmds::role_error&) {
                  }
              })),
              child_ok);
    EXPECT_TRUE(q.try_push(2)) << "the parent keeps its role";
    EXPECT_EQ(q.size(), 2u);
}

// ---- processes killed at random moments ------------------------------------------------------

/// Producers push (p, seq) and record, after each push returns, how many of
/// theirs have completed; the parent kills producers and consumers at random
/// and starts replacements. Every completed element must arrive exactly
/// once, in order per producer; an element whose push was cut short may be
/// lost (at most one per killed producer), and an element a killed consumer
/// had taken may be lost (at most one per killed consumer).
template <class S>
void run_with_random_kills(std::size_t producer_slots, std::size_t consumer_slots) {
    constexpr std::uint64_t per_producer = 100000;
    unique_segment_name name;
    shmds::posix_shm seg(name, 32 << 20);
    S created(seg, "s", 256);
    struct board {
        log_type log;
        std::atomic<std::uint64_t> completed[max_producers];  // pushes that returned
        std::atomic<std::uint64_t> next[max_producers];       // where a replacement starts
    };
    shared_block<board> b;
    shmds_test::process_group group;
    auto start_producer = [&](std::size_t p) {
        return group.spawn([&, p] {
            shmds::posix_shm mine(name.str());
            S s(shmds::open_only, mine, "s", shmds::wait_options{});
            for (std::uint64_t i = b->next[p].load(); i < per_producer; ++i) {
                b->next[p] = i + 1;  // a replacement never reuses a number this one may have pushed
                s.push(shmds_test::element(p, i));
                b->completed[p] = i + 1;
                // Paced, so that kills land mid-stream however fast the build.
                if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
            }
        });
    };
    auto start_consumer = [&] {
        return group.spawn([&] {
            shmds::posix_shm mine(name.str());
            S s(shmds::open_only, mine, "s", shmds::wait_options{});
            std::uint64_t last_seen[max_producers] = {};
            for (;;) {
                if (auto v = s.try_pop_for(20ms)) b->log.record(*v, last_seen, traits<S>::fifo);
            }
        });
    };
    std::vector<pid_t> producers(producer_slots);
    std::vector<pid_t> consumers(consumer_slots);
    for (std::size_t p = 0; p < producer_slots; ++p) producers[p] = start_producer(p);
    for (auto& c : consumers) c = start_consumer();

    // Kill a random producer or consumer every few milliseconds for as long
    // as the producers have work left (at most 40 kills), replacing each.
    std::mt19937 rng(20261129);
    int kills = 0;
    int producer_kills_mid_stream = 0;
    auto producers_busy = [&] {
        for (std::size_t p = 0; p < producer_slots; ++p)
            if (b->next[p].load() < per_producer) return true;
        return false;
    };
    while (kills < 40 && producers_busy()) {
        std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 5000));
        // The first kills alternate, so that producers are killed while
        // certainly mid-stream even when a loaded machine lets the stream
        // finish after a handful of kills; the rest are random.
        const bool kill_producer = kills < 6 ? kills % 2 == 0 : rng() % 2 == 0;
        auto& victims = kill_producer ? producers : consumers;
        const std::size_t i = rng() % victims.size();
        if (kill_producer && b->next[i].load() < per_producer) ++producer_kills_mid_stream;
        group.kill(victims[i]);
        ++kills;
        victims[i] = kill_producer ? start_producer(i) : start_consumer();
    }
    ::testing::Test::RecordProperty("kills", kills);
    ::testing::Test::RecordProperty("producer_kills_mid_stream", producer_kills_mid_stream);
    EXPECT_GE(producer_kills_mid_stream, 3) << "the test must kill producers while they are pushing";
    for (pid_t p : producers) ASSERT_EQ(group.wait(p), child_ok);
    // Every completed element must arrive (less one per kill at most); then
    // the consumers can go.
    std::uint64_t completed_total = 0;
    for (std::size_t p = 0; p < producer_slots; ++p) completed_total += b->completed[p].load();
    EXPECT_TRUE(wait_until(
        [&] {
            return b->log.received.load() + static_cast<std::uint64_t>(kills) >= completed_total &&
                   created.empty();
        },
        std::chrono::seconds(120)));
    std::this_thread::sleep_for(100ms);
    for (pid_t c : consumers) group.kill(c);
    EXPECT_EQ(b->log.duplicates.load(), 0u);
    EXPECT_EQ(b->log.foreign.load(), 0u);
    EXPECT_EQ(b->log.out_of_order.load(), 0u);
    // Lost: completed elements that never arrived. Each kill may cost one
    // (the element a killed consumer was taking); never more.
    std::uint64_t lost = 0;
    for (std::size_t p = 0; p < producer_slots; ++p)
        for (std::uint64_t s = 0; s < per_producer; ++s)
            if (b->completed[p].load() > s && !b->log.has(p, s)) ++lost;
    EXPECT_LE(lost, static_cast<std::uint64_t>(kills)) << kills << " kills";
    // Survivors carry on: the structure is whole and usable afterwards.
    // (The consumers were just killed, perhaps mid-pop: claims they left
    // are found and released by whoever they hold up.)
    S after(seg, "s");
    while (after.try_pop_for(50ms)) {
    }
    for (std::uint64_t i = 0; i < after.capacity(); ++i)
        ASSERT_TRUE(after.try_push_for(i, 10s)) << "slot " << i;
    EXPECT_FALSE(after.try_push(0));
}

// A worker killed while it holds the table's (or the stack's) robust mutex
// leaves it to the kernel to release: not under qemu-user.
TEST(RandomKills, Mpmc2x2) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    run_with_random_kills<shmds_test::mpmc>(2, 2);
}
TEST(RandomKills, ConcurrentStack2x2) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    run_with_random_kills<shmds_test::cstack>(2, 2);
}
TEST(RandomKills, Spsc1x1) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    run_with_random_kills<shmds_test::spsc>(1, 1);
}

}  // namespace
