// Wake-ups in the process-safe structures, with faults injected
// (SHMDS_FAULT_INJECTION): a sleeper is woken for every element and every
// free slot without waiting for the safety net, also when the wake-up went
// to the wrong sleeper, a position hint was set back or a dead process's
// claim is released; a burst of elements wakes its sleeper once, not once
// per element, and a sleeper whose wake-up someone else used is woken by the
// next; a poll never announces a sleeper; a waker fences for a
// sleeper that cannot use membarrier; MPMC batches cut short by an error
// report and wake for what they moved.
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "fault_injection.hpp"
#include "support.hpp"

namespace {

using namespace shmds_faults;

// ---- wake-ups that must not wait for the safety net --------------------------------------------

/// The MPMC control block of queue `q` in `seg`.
shmds::detail::mpmc_control* mpmc_control_of(shmds::posix_shm& seg) {
    return reinterpret_cast<shmds::detail::mpmc_control*>(static_cast<std::byte*>(seg.base()) +
                                                          seg.table().find("q")->offset);
}

/// How the wake-up tests' handles wait: asleep at once, with the safety net
/// a minute away, so that a wake-up they wait for is never found by it.
const shmds::wait_options patient{.strategy = shmds::wait_strategy::sleep, .recheck_after = 60s};

int sleepers_on(const shmds::detail::wait_channel& channel) {
    return std::popcount(channel.sleepers[0].load()) + std::popcount(channel.sleepers[1].load());
}

/// Two consumers sleep on an MPMC queue. Producer A claims position 0 and
/// stalls at `point`; producer B pushes position 1 and wakes one consumer,
/// which finds 0 still being written and sleeps again. When A goes on, both
/// elements must reach the two consumers without waiting for the safety
/// net, which is a minute away: the consumers have 20 s.
void expect_consumers_woken_out_of_order_both_served(const char* point) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8, patient);
    auto* control = mpmc_control_of(seg);
    shared_block<std::atomic<int>> a_stalled;
    shmds_test::process_group group;
    std::vector<pid_t> consumers;
    consumers.reserve(2);
    for (int c = 0; c < 2; ++c) {
        consumers.push_back(group.spawn([&] {
            shmds::posix_shm mine(name.str());
            mpmc in(shmds::open_only, mine, "q", patient);
            const std::uint64_t v = in.pop();
            CHILD_CHECK(v == 100 || v == 200);
        }));
    }
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_empty) == 2; }));
    pid_t a = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc out(mine, "q");
        arm(point, true, 500ms, &*a_stalled);
        CHILD_CHECK(out.try_push(100));
    });
    ASSERT_TRUE(wait_until([&] { return a_stalled->load() == 1; }));
    ASSERT_TRUE(q.try_push(200));  // producer B
    EXPECT_EQ(group.wait(a), child_ok);
    for (pid_t c : consumers) EXPECT_EQ(group.wait(c, std::chrono::seconds(20)), child_ok);
}

TEST(StructureFaults, ConsumersWokenOutOfOrderPassTheWakeUpOn) {
    // A stalls between its claim and moving the tail hint on.
    expect_consumers_woken_out_of_order_both_served("mpmc.push.claimed");
}

TEST(StructureFaults, MpmcConsumersAreWokenForEveryElementWhenTheTailHintIsSetBack) {
    // A finds the tail hint at 0 and stalls before storing 1: B moves it to
    // 2 meanwhile, and A then sets it back to 1. Whoever takes 0 must wake
    // the other consumer for 1, whatever the hints say.
    expect_consumers_woken_out_of_order_both_served("mpmc.push.hint_checked");
}

TEST(StructureFaults, MpmcProducersAreWokenForEveryFreeSlotWhenTheHeadHintIsSetBack) {
    // The mirror image: consumer A claims position 0 of a full queue of two,
    // finds the head hint at 0 and stalls; consumer B walks past it, takes
    // position 1 and wakes one sleeping producer, which finds slot 0 still
    // being read and sleeps again. A sets the head hint back to 1, frees slot
    // 0 and wakes one producer. Whoever fills slot 0 must wake the other for
    // slot 1.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 2, patient);
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_push(2));
    auto* control = mpmc_control_of(seg);
    shared_block<std::atomic<int>> a_stalled;
    shmds_test::process_group group;
    std::vector<pid_t> producers;
    producers.reserve(2);
    for (std::uint64_t p = 0; p < 2; ++p) {
        producers.push_back(group.spawn([&, p] {
            shmds::posix_shm mine(name.str());
            mpmc out(shmds::open_only, mine, "q", patient);
            out.push(10 + p);
        }));
    }
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_full) == 2; }));
    pid_t a = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc in(mine, "q");
        arm("mpmc.pop.hint_checked", true, 500ms, &*a_stalled);
        CHILD_CHECK(in.try_pop() == 1u);
    });
    ASSERT_TRUE(wait_until([&] { return a_stalled->load() == 1; }));
    ASSERT_EQ(q.try_pop(), 2u);  // consumer B
    EXPECT_EQ(group.wait(a), child_ok);
    for (pid_t p : producers) EXPECT_EQ(group.wait(p, std::chrono::seconds(20)), child_ok);
    std::vector<std::uint64_t> rest = drain(q);
    std::sort(rest.begin(), rest.end());
    EXPECT_EQ(rest, (std::vector<std::uint64_t>{10, 11}));
}

/// Forks a participant of the MPMC queue "q" in `segment` that takes a claim
/// at `point` ("mpmc.push.claimed": pushing 100; "mpmc.pop.claimed": popping)
/// and holds it until it is killed. Returns once the claim is taken.
pid_t spawn_claim_holder(shmds_test::process_group& group, const std::string& segment, const char* point) {
    shared_block<std::atomic<int>> claimed;
    shared_block<std::atomic<int>> never;
    const pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(segment);
        mpmc handle(mine, "q");
        arm_until(point, &*claimed, &*never);
        if (std::strcmp(point, "mpmc.push.claimed") == 0)
            (void)handle.try_push(100);
        else
            (void)handle.try_pop();
    });
    EXPECT_TRUE(wait_until([&] { return claimed->load() == 1; })) << "no claim taken at " << point;
    return holder;
}

/// A dead participant's claim, released by someone who is not the sleeper
/// held up behind it, must wake that sleeper: nothing else will (it checked
/// the claim's owner before it slept, and the owner was alive then). The
/// sleepers' safety net is a minute away and they have 10 s.
TEST(StructureFaults, MpmcConsumerAsleepBehindADeadProducersClaimIsWokenByItsRelease) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8, patient);
    ASSERT_FALSE(q.try_pop());  // joins first: the dead producer's id stays unused
    auto* control = mpmc_control_of(seg);
    shmds_test::process_group group;
    const pid_t producer = spawn_claim_holder(group, name.str(), "mpmc.push.claimed");  // position 0
    ASSERT_TRUE(q.try_push(200));  // positions 1 and 2, behind the claim
    ASSERT_TRUE(q.try_push(300));
    shared_block<std::atomic<std::uint64_t>> got;
    pid_t consumer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc in(shmds::open_only, mine, "q", patient);
        *got = in.pop();  // position 0 is being written by a live producer: sleeps
    });
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_empty) == 1; }));
    group.kill(producer);
    // This process, a consumer that joined long ago, meets the dead claim
    // first and releases it; it takes one element, the sleeper the other.
    const auto mine = q.try_pop_for(5s);
    ASSERT_TRUE(mine.has_value());
    EXPECT_EQ(group.wait(consumer, std::chrono::seconds(10)), child_ok)
        << "the consumer asleep behind the dead claim was not woken by its release";
    EXPECT_EQ(*mine + got->load(), 500u) << "each took one of 200 and 300: " << *mine << ", " << got->load();
}

TEST(StructureFaults, MpmcProducerAsleepBehindADeadConsumersClaimIsWokenByItsRelease) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 2, patient);
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_push(2));
    auto* control = mpmc_control_of(seg);
    shmds_test::process_group group;
    const pid_t consumer = spawn_claim_holder(group, name.str(), "mpmc.pop.claimed");  // position 0
    ASSERT_EQ(q.try_pop(), 2u);  // walks past the claim: slot 1 is free, but position 2 comes first
    pid_t producer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc out(shmds::open_only, mine, "q", patient);
        out.push(10);  // position 2's slot is still being read by a live consumer: sleeps
    });
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_full) == 1; }));
    group.kill(consumer);
    // This process meets the dead claim as a consumer (nothing to take yet)
    // and releases it; only that release can wake the producer.
    const auto taken = q.try_pop_for(5s);
    EXPECT_EQ(group.wait(producer, std::chrono::seconds(10)), child_ok)
        << "the producer asleep behind the dead claim was not woken by its release";
    std::vector<std::uint64_t> rest = drain(q);
    if (taken) rest.insert(rest.begin(), *taken);
    EXPECT_EQ(rest, (std::vector<std::uint64_t>{10})) << "the dead consumer's element is the only one lost";
}

/// Counts the sleepers' announcements in this process (the fault point
/// "wait.announced": a sleeper about to pay for a system-wide barrier).
std::atomic<int> announcements{0};
void count_announcements(const char* point) {
    if (std::strcmp(point, "wait.announced") == 0) ++announcements;
}

template <class S>
void expect_polls_never_announce(const shmds::wait_options& wait) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    S s(seg, "s", 2, wait);
    shmds::detail::fault_hook = count_announcements;
    announcements = 0;
    EXPECT_FALSE(s.try_pop_for(0ms));
    EXPECT_FALSE(s.try_pop_for(-5ms));
    EXPECT_FALSE(s.try_pop_for(std::chrono::nanoseconds::min()));
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    EXPECT_FALSE(s.try_push_for(3, 0ms));
    EXPECT_FALSE(s.try_push_for(3, -1s));
    EXPECT_EQ(s.try_pop_for(0ms), 2u - (std::is_same_v<S, cstack> ? 0u : 1u)) << "an element ready is taken";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(announcements.load(), 0) << "a poll with no time to wait announced itself as a sleeper";
    // A real wait still announces (the counter works).
    shmds::detail::fault_hook = count_announcements;
    EXPECT_TRUE(s.try_pop_for(0ms));
    EXPECT_FALSE(s.try_pop_for(1ms));
    shmds::detail::fault_hook = nullptr;
    EXPECT_GE(announcements.load(), wait.strategy == shmds::wait_strategy::spin ? 0 : 1);
}

TEST(StructureFaults, PollingWithAZeroOrExpiredTimeoutNeverAnnouncesASleeper) {
    for (auto strategy :
         {shmds::wait_strategy::spin, shmds::wait_strategy::spin_then_sleep, shmds::wait_strategy::sleep}) {
        SCOPED_TRACE(static_cast<int>(strategy));
        const shmds::wait_options wait{.strategy = strategy, .spin_for = 100us};
        expect_polls_never_announce<spsc>(wait);
        expect_polls_never_announce<mpmc>(wait);
        expect_polls_never_announce<cstack>(wait);
    }
}

/// Counts the wake-ups this process sends (the fault point "wake.sending").
std::atomic<int> wakeups_sent{0};
void count_wakeups(const char* point) {
    if (std::strcmp(point, "wake.sending") == 0) ++wakeups_sent;
}

/// The flags of a child held at its first announcement as a sleeper.
struct sleeper_hold {
    shared_block<std::atomic<int>> announced;
    shared_block<std::atomic<int>> release;  ///< set to 1 to let it go on
};

/// Starts a child that opens structure "s" of segment `segment` (waiting
/// patiently) and runs `body` on it, held at its first announcement as a
/// sleeper (the fault point "wait.announced") until `hold.release` is 1;
/// returns once it is held there.
template <class S, class Body>
pid_t spawn_held_sleeper(shmds_test::process_group& group, const std::string& segment, sleeper_hold& hold,
                         Body&& body) {
    const pid_t child = group.spawn([&] {
        shmds::posix_shm mine(segment);
        S other(shmds::open_only, mine, "s", patient);
        arm_until("wait.announced", &*hold.announced, &*hold.release);
        body(other);
    });
    EXPECT_TRUE(wait_until([&] { return hold.announced->load() == 1; }))
        << "the sleeper never announced itself";
    return child;
}

/// A sleeper announces itself and is held there (the fault point
/// "wait.announced"), asleep as far as the others can tell, while this
/// process moves `burst` elements its way: pushes for a sleeping consumer
/// (`consumer_sleeps`), or pops for a sleeping producer. The first of them
/// must wake it and the rest must not: the sleeper drains (or fills) what it
/// finds once it goes on, and a waker that woke it again for every element
/// would pay a system call per element of a stream.
template <class S>
void expect_one_wakeup_for_a_burst(bool consumer_sleeps) {
    constexpr std::uint64_t burst = 50;
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    S s(seg, "s", burst, patient);
    sleeper_hold hold;
    shared_block<std::atomic<std::uint64_t>> moved_by_sleeper;
    shmds_test::process_group group;
    if (!consumer_sleeps) {  // full, through a handle that gives the producer's role back
        S filler(seg, "s");
        for (std::uint64_t i = 0; i < burst; ++i) ASSERT_TRUE(filler.try_push(i));
    }
    const pid_t sleeper = spawn_held_sleeper<S>(group, name.str(), hold, [&](S& other) {
        std::uint64_t moved = 1;
        if (consumer_sleeps) {
            (void)other.pop();  // sleeps, held at its announcement until the burst is in
            shmds::detail::fault_hook = nullptr;
            for (std::uint64_t v = 0; other.try_pop(v);) ++moved;
        } else {
            other.push(1000);  // full: sleeps, held until the burst is out
            shmds::detail::fault_hook = nullptr;
            while (other.try_push(1000 + moved)) ++moved;
        }
        moved_by_sleeper->store(moved);
    });
    shmds::detail::fault_hook = count_wakeups;
    wakeups_sent = 0;
    for (std::uint64_t i = 0; i < burst; ++i) {
        if (consumer_sleeps)
            ASSERT_TRUE(s.try_push(i));
        else
            ASSERT_TRUE(s.try_pop());
    }
    shmds::detail::fault_hook = nullptr;
    hold.release->store(1);
    EXPECT_EQ(group.wait(sleeper, std::chrono::seconds(20)), child_ok);
    EXPECT_EQ(moved_by_sleeper->load(), burst) << "the woken sleeper did not find the whole burst";
    EXPECT_EQ(wakeups_sent.load(), 1)
        << "a burst of " << burst << " elements sent " << wakeups_sent.load() << " wake-ups to one sleeper";
}

TEST(StructureFaults, ABurstWakesItsSleeperOnceNotOncePerElement) {
    for (bool consumer_sleeps : {true, false}) {
        SCOPED_TRACE(consumer_sleeps ? "a consumer sleeps" : "a producer sleeps");
        expect_one_wakeup_for_a_burst<spsc>(consumer_sleeps);
        expect_one_wakeup_for_a_burst<mpmc>(consumer_sleeps);
        expect_one_wakeup_for_a_burst<cstack>(consumer_sleeps);
    }
}

/// A sleeper is held at its announcement while this process sends it a
/// wake-up (taking it out of the sleeper set) and then takes back what the
/// wake-up was for: the element (`consumer_sleeps`), or the room. Let go,
/// the sleeper finds the wake-up was for nothing and must sleep again
/// announced: the next element (or room) must wake it well within the
/// budget, the safety net being a minute away.
template <class S>
void expect_a_sleeper_robbed_of_its_wakeup_is_woken_by_the_next(bool consumer_sleeps) {
    constexpr std::uint64_t capacity = 4;
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    S s(seg, "s", capacity, patient);
    sleeper_hold hold;
    if (!consumer_sleeps) {
        for (std::uint64_t i = 0; i < capacity; ++i) ASSERT_TRUE(s.try_push(i));
    }
    shmds_test::process_group group;
    const pid_t sleeper = spawn_held_sleeper<S>(group, name.str(), hold, [&](S& other) {
        if (consumer_sleeps)
            CHILD_CHECK(other.pop() == 200);  // 100 is taken back before it can have it
        else
            other.push(300);  // the room made for it is filled again first
    });
    if (consumer_sleeps) {
        ASSERT_TRUE(s.try_push(100));  // wakes the sleeper, taking it out of the set
        ASSERT_EQ(s.try_pop(), std::optional<std::uint64_t>(100));
    } else {
        ASSERT_TRUE(s.try_pop());  // room: wakes the sleeper
        ASSERT_TRUE(s.try_push(100));
    }
    hold.release->store(1);
    // Let the sleeper find nothing and go back to sleep (it must not be
    // asleep unannounced), then give it what it waits for.
    std::this_thread::sleep_for(100ms);
    if (consumer_sleeps)
        ASSERT_TRUE(s.try_push(200));
    else
        ASSERT_TRUE(s.try_pop());
    EXPECT_EQ(group.wait(sleeper, std::chrono::seconds(20)), child_ok)
        << "a sleeper whose wake-up was taken from it slept on without being woken again";
}

TEST(StructureFaults, ASleeperRobbedOfItsWakeUpIsWokenByTheNext) {
    for (bool consumer_sleeps : {true, false}) {
        SCOPED_TRACE(consumer_sleeps ? "a consumer sleeps" : "a producer sleeps");
        expect_a_sleeper_robbed_of_its_wakeup_is_woken_by_the_next<mpmc>(consumer_sleeps);
        expect_a_sleeper_robbed_of_its_wakeup_is_woken_by_the_next<cstack>(consumer_sleeps);
    }
}

/// Counts, in this process, the wakers that fenced for real because a
/// sleeper could not use membarrier (the fault point "wake.fenced").
std::atomic<int> fenced_wakes{0};
void count_fenced_wakes(const char* point) {
    if (std::strcmp(point, "wake.fenced") == 0) ++fenced_wakes;
}

TEST(StructureFaults, WakersFenceForASleeperThatCannotUseMembarrier) {
    // This process can use membarrier, so as a waker it pays only a compiler
    // barrier. The child cannot (a seccomp policy refuses it after it
    // registered): its sleep fences only itself, so its wakers must fence
    // for real from then on, on that channel and no other.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 4, patient);
    mpmc other(seg, "other", 4, patient);
    (void)q.try_pop();  // registers this process (and the child, by inheritance) for membarrier
    auto* control = mpmc_control_of(seg);
    shared_block<std::atomic<int>> seccomp;  // 1: membarrier forbidden, 2: no seccomp here
    shmds_test::process_group group;
    pid_t sleeper = group.spawn([&] {
        if (!shmds_test::forbid_membarrier()) {
            *seccomp = 2;
            ::_exit(shmds_test::child_unsupported);
        }
        *seccomp = 1;
        shmds::posix_shm mine(name.str());
        mpmc in(shmds::open_only, mine, "q", patient);
        CHILD_CHECK(in.pop() == 7u);
    });
    ASSERT_TRUE(wait_until([&] { return seccomp->load() != 0; }));
    if (seccomp->load() == 2)
        GTEST_SKIP() << shmds_test::unresolved(
            "no seccomp here to forbid membarrier (PR_SET_SECCOMP refused)");
    // Participants 0..63 sleep in the first word of the set (the fence bit is
    // the last of the second); then give the sleeper time to reach its futex.
    ASSERT_TRUE(wait_until([&] { return control->not_empty.sleepers[0].load() != 0; }));
    std::this_thread::sleep_for(100ms);
    shmds::detail::fault_hook = count_fenced_wakes;
    fenced_wakes = 0;
    ASSERT_TRUE(other.try_push(1));
    EXPECT_EQ(fenced_wakes.load(), 0) << "a channel nobody fenceless sleeps on costs its wakers no fence";
    ASSERT_TRUE(q.try_push(7));
    EXPECT_GE(fenced_wakes.load(), 1) << "the waker did not fence for a sleeper that could not reach it";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(group.wait(sleeper, std::chrono::seconds(20)), child_ok) << "the sleeper was not woken";
}

// ---- MPMC batches cut short by an error ---------------------------------------------------------

/// Throws corrupted_error, as a walk that meets a damaged slot does, the
/// `nth` time `point` is reached in this process.
struct throw_plan {
    const char* point = nullptr;
    int nth = 0;
    int seen = 0;
} thrower;

void throwing_hook(const char* point) {
    if (thrower.point && std::strcmp(point, thrower.point) == 0 && ++thrower.seen == thrower.nth)
        throw shmds::corrupted_error("(test) a damaged slot met by the walk");
}

void throw_at(const char* point, int nth) {
    thrower = {point, nth, 0};
    shmds::detail::fault_hook = throwing_hook;
}

TEST(StructureFaults, MpmcBatchesCutShortByAnErrorReportAndWakeForWhatTheyMoved) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8, patient);
    auto* control = mpmc_control_of(seg);
    shmds_test::process_group group;
    pid_t consumer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc in(shmds::open_only, mine, "q", patient);
        CHILD_CHECK(in.pop() == 1u);
        CHILD_CHECK(in.pop() == 2u);
    });
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_empty) == 1; }));
    const std::uint64_t items[] = {1, 2, 3, 4};
    throw_at("mpmc.push.walk", 3);
    EXPECT_EQ(q.try_push_n(items, 4), 2u) << "the two pushed before the error are reported, not thrown away";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(group.wait(consumer, std::chrono::seconds(20)), child_ok)
        << "nobody woke the sleeping consumer";

    ASSERT_EQ(q.try_push_n(items, 3), 3u);
    std::uint64_t out[4] = {};
    throw_at("mpmc.pop.walk", 3);
    EXPECT_EQ(q.try_pop_n(out, 4), 2u) << "the two taken before the error are returned, not lost";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(out[0], 1u);
    EXPECT_EQ(out[1], 2u);
    EXPECT_EQ(q.try_pop(), 3u);

    throw_at("mpmc.push.walk", 1);
    EXPECT_THROW((void)q.try_push_n(items, 4), shmds::corrupted_error)
        << "an error before any move is thrown";
    throw_at("mpmc.pop.walk", 1);
    EXPECT_THROW((void)q.try_pop_n(out, 4), shmds::corrupted_error);
    shmds::detail::fault_hook = nullptr;
    EXPECT_TRUE(q.empty());
}

}  // namespace
