// The process-safe structures across real processes: semantics, blocking
// and timeouts, sleep/wake without lost wake-ups (several sleepers per
// channel, membarrier forbidden). Exactly-once delivery and processes
// killed at random are tested in test_concurrent_delivery.cpp; SPSC roles,
// fork() racing with joins and handles that outlive their segment handle in
// test_concurrent_roles.cpp.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "concurrent_support.hpp"
#include "support.hpp"
namespace {

using namespace std::chrono_literals;
using namespace shmds_test;

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
    EXPECT_EQ(shmds::element_count(s), 5u);
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

TYPED_TEST(Concurrent, PoppingIntoAVariableLeavesItAloneWhenEmpty) {
    TypeParam s(this->seg_, "s", 3, sleep_only);
    std::uint64_t out = 77;
    EXPECT_FALSE(s.try_pop(out));
    EXPECT_FALSE(s.try_pop_for(out, 0ms)) << "a poll";
    EXPECT_FALSE(s.try_pop_for(out, 2ms)) << "a wait that times out";
    EXPECT_EQ(out, 77u) << "a pop that found nothing wrote into its variable";
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    ASSERT_TRUE(s.try_push(3));
    EXPECT_TRUE(s.try_pop(out));
    EXPECT_EQ(out, traits<TypeParam>::fifo ? 1u : 3u);
    EXPECT_TRUE(s.try_pop_for(out, 0ms));
    EXPECT_EQ(out, 2u);
    EXPECT_TRUE(s.try_pop_for(out, 1s));
    EXPECT_EQ(out, traits<TypeParam>::fifo ? 3u : 1u);
    EXPECT_EQ(shmds::element_count(s), 0u);
    EXPECT_TRUE(s.try_push(4)) << "the pops into a variable gave their slots back";
    out = 0;
    EXPECT_TRUE(s.try_pop_for(out, 1s));
    EXPECT_EQ(out, 4u);
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

// Every mix of single and batch operations, at every offset of the ring and
// for batches that cross its end, against a model: a batch is two runs of
// slots (up to the last, then from the first), and each run's edges must
// hold.
TYPED_TEST(ConcurrentQueue, SinglesAndBatchesAgreeWithAModelAcrossTheRingsEnd) {
    for (std::uint64_t capacity : {1u, 2u, 3u, 7u, 10u}) {
        SCOPED_TRACE("capacity " + std::to_string(capacity));
        TypeParam q(this->seg_, "model" + std::to_string(capacity), capacity);
        std::deque<std::uint64_t> model;
        std::mt19937 rng(static_cast<std::uint32_t>(capacity));
        std::uint64_t next = 0;
        std::vector<std::uint64_t> buffer(2 * capacity + 2);
        for (int step = 0; step < 4000; ++step) {
            const auto batch = static_cast<std::size_t>(rng() % (capacity + 3));  // 0 to capacity + 2
            switch (rng() % 5) {
                case 0: {
                    const bool pushed = q.try_push(next);
                    ASSERT_EQ(pushed, model.size() < capacity) << "step " << step;
                    if (pushed) model.push_back(next++);
                    break;
                }
                case 1: {
                    for (std::size_t i = 0; i < batch; ++i) buffer[i] = next + i;
                    const std::size_t n = q.try_push_n(buffer.data(), batch);
                    ASSERT_EQ(n, std::min<std::size_t>(batch, capacity - model.size())) << "step " << step;
                    for (std::size_t i = 0; i < n; ++i) model.push_back(next++);
                    break;
                }
                case 2: {
                    std::uint64_t out = ~std::uint64_t{0};
                    ASSERT_EQ(q.try_pop(out), !model.empty()) << "step " << step;
                    if (model.empty()) break;
                    ASSERT_EQ(out, model.front()) << "step " << step;
                    model.pop_front();
                    break;
                }
                case 3: {
                    const auto v = q.try_pop();
                    ASSERT_EQ(v.has_value(), !model.empty()) << "step " << step;
                    if (!v) break;
                    ASSERT_EQ(*v, model.front()) << "step " << step;
                    model.pop_front();
                    break;
                }
                default: {
                    std::fill(buffer.begin(), buffer.end(), ~std::uint64_t{0});
                    const std::size_t n = q.try_pop_n(buffer.data(), batch);
                    ASSERT_EQ(n, std::min(batch, model.size())) << "step " << step;
                    for (std::size_t i = 0; i < n; ++i) {
                        ASSERT_EQ(buffer[i], model.front()) << "step " << step << ", element " << i;
                        model.pop_front();
                    }
                    ASSERT_EQ(buffer[n], ~std::uint64_t{0}) << "a batch pop wrote past what it took";
                }
            }
            ASSERT_EQ(shmds::element_count(q), model.size()) << "step " << step;
        }
    }
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

// ---- membarrier forbidden ------------------------------------------------------------------------

TEST(SpscBystander, OpensAndReadsTheSizeMidStreamWithoutSeeingDamage) {
    // A process with neither role opens the queue (the open checks its
    // positions) and reads its size, again and again, while two others
    // stream elements through a queue of one. A reader held up between its
    // loads of tail and head finds the head past the tail it read, by as
    // many elements as went through meanwhile: no damage. (Here only a
    // preemption at that instruction shows it; the weak-memory model,
    // WeakMemory.SpscObserverHeldUpBetweenItsLoadsSeesNoDamage, makes it
    // happen every time. Before the fix both reported a damaged queue.)
    constexpr std::uint64_t elements = 200000;
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc created(seg, "q", 1);
    shared_block<std::atomic<bool>> consumed;
    shmds_test::process_group group;
    pid_t producer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        shmds_test::spsc q(shmds::open_only, mine, "q");
        for (std::uint64_t i = 0; i < elements; ++i) q.push(i);
    });
    pid_t consumer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        shmds_test::spsc q(shmds::open_only, mine, "q");
        for (std::uint64_t i = 0; i < elements; ++i) CHILD_CHECK(q.pop() == i);
        consumed->store(true);
    });
    std::uint64_t looks = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!consumed->load() && std::chrono::steady_clock::now() < deadline) {
        shmds_test::spsc bystander(shmds::open_only, seg, "q");
        for (int k = 0; k < 100; ++k, ++looks) ASSERT_LE(bystander.size(), 1u);
    }
    EXPECT_EQ(group.wait(producer), child_ok);
    EXPECT_EQ(group.wait(consumer), child_ok);
    EXPECT_GT(looks, 0u);
}

TEST(MembarrierForbidden, AProcessThatCannotRegisterMakesItsWakersFence) {
    // A process started (exec'd: nothing inherited) under a policy that
    // forbids membarrier never registers, so no sleeper's membarrier reaches
    // it, and its light fences are compiler barriers only. It must set the
    // fence bit of each structure's channels when it joins, before it first
    // publishes: then its wake-ups of this process, which sleeps with
    // membarrier and never sets the bit itself, take the fenced path. Round
    // trips through sleeping processes, the safety net ten minutes away.
    constexpr std::uint64_t round_trips = 20000;
    const shmds::wait_options asleep{.strategy = shmds::wait_strategy::sleep, .recheck_after = 600s};
    shmds_test::process_group probe;  // seccomp may be unavailable (qemu-user refuses it)
    if (probe.wait(probe.spawn([] {
            if (!shmds_test::forbid_membarrier()) ::_exit(shmds_test::child_unsupported);
        })) != child_ok)
        GTEST_SKIP() << shmds_test::unresolved(
            "no seccomp here to forbid membarrier (PR_SET_SECCOMP refused)");
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::mpmc ping(seg, "ping", 1, asleep);
    shmds_test::mpmc pong(seg, "pong", 1, asleep);
    (void)pong.try_pop();  // this process joins (and registers) first
    auto* pong_control = shmds_test::control_of<shmds_test::mpmc>(seg, "pong");
    ASSERT_FALSE(pong_control->not_empty.wakers_must_fence());
    std::vector<std::string> command = shmds_test::program_command(
        SHMDS_TEST_PEER, {"echo-mpmc", name.str(), "ping", "pong", std::to_string(round_trips)});
    std::vector<char*> argv = shmds_test::argv_of(command);
    std::fflush(nullptr);
    const pid_t peer = ::fork();
    if (peer == 0) {
        if (!shmds_test::forbid_membarrier()) ::_exit(shmds_test::child_unsupported);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ASSERT_GT(peer, 0);
    std::uint64_t value = 0;
    bool fenced_before_first_answer = false;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (std::uint64_t i = 0; i < round_trips && std::chrono::steady_clock::now() < deadline; ++i) {
        ping.push(value);
        auto answer = pong.try_pop_for(deadline - std::chrono::steady_clock::now());
        if (!answer) break;
        if (i == 0) fenced_before_first_answer = pong_control->not_empty.wakers_must_fence();
        value = *answer;
    }
    const int status = shmds_test::wait_child(peer, std::chrono::seconds(5));
    EXPECT_TRUE(fenced_before_first_answer) << "the peer pushed its first answer before it set the fence bit";
    EXPECT_EQ(value, round_trips) << "a wake-up was lost: the round trips stopped at " << value;
    EXPECT_EQ(status, child_ok) << "5: the peer was rescued by its safety net";
    EXPECT_EQ(shmds::detail::recovered_lost_wakeups.load(), 0u);
}

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

}  // namespace
