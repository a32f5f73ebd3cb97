// Q-010 and STK-005: a pop synchronises with the push whose element it
// returns. Threads of one process share one attachment of the segment, each
// with handles of its own (as processes would have), so that
// ThreadSanitizer, which sees memory by address and cannot see across
// processes, sees both sides of every hand-over. Each pusher writes a plain
// (non-atomic) side record for an element before pushing it, and whoever
// pops the element reads that record: without a release/acquire pair (or
// stronger) between the push and the pop, that read races with the write,
// which ThreadSanitizer reports, whatever the memory model of the machine
// the suite runs on (x86-64 would not show the stale value itself).
//
// A separate program from the rest of the suite (shmconf_<name>_threads):
// conformance/run.py runs it from a ThreadSanitizer build (--tsan-build) and
// counts a report as a failure. Built without ThreadSanitizer, the tests
// still check every value and end UNRESOLVED: the ordering was not judged.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

#if defined(__SANITIZE_THREAD__)
#define SHMCONF_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMCONF_UNDER_TSAN 1
#endif
#endif
#ifndef SHMCONF_UNDER_TSAN
#define SHMCONF_UNDER_TSAN 0
#endif

namespace {

using shmconf_tests::fresh_segment;
using shmconf_tests::impl;

/// What a popper may find wrong, counted by every popping thread.
struct tally {
    std::atomic<std::uint64_t> popped{0};
    std::atomic<std::uint64_t> wrong_record{0};  ///< the side record is not what the pusher wrote
    std::atomic<std::uint64_t> foreign{0};       ///< a value nobody pushed
    std::atomic<std::uint64_t> out_of_order{0};  ///< a producer's later element before an earlier one
};

constexpr std::uint64_t record_of(std::uint64_t value) {
    return value * 0x9e3779b97f4a7c15u + 1;
}

/// Pushes `value` (spinning, yielding), by try_push_n every other time when
/// the handle has batch forms, so that both paths hand over.
template <class S>
void push_one(S& s, std::uint64_t value) {
    if constexpr (shmconf::batch_handle<S, std::uint64_t>) {
        if (value % 2 == 1) {
            while (s.try_push_n(&value, 1) == 0) std::this_thread::yield();
            return;
        }
    }
    while (!s.try_push(value)) std::this_thread::yield();
}

/// One popped value, or nothing; by try_pop_n every other call when the
/// handle has batch forms.
template <class S>
std::optional<std::uint64_t> pop_one(S& s, std::uint64_t& calls) {
    if constexpr (shmconf::batch_handle<S, std::uint64_t>) {
        if (++calls % 2 == 0) {
            std::uint64_t v = 0;
            if (s.try_pop_n(&v, 1) == 1) return v;
            return std::nullopt;
        }
    }
    return s.try_pop();
}

/// `pushers` threads push `per_pusher` elements each ((id << 32) | i), each
/// after writing the element's side record; `poppers` threads pop until all
/// are taken and check each one's record (and, for a FIFO, each pusher's
/// order as one popper sees it).
template <class S>
void hand_over_between_threads(std::size_t capacity, int pushers, int poppers, bool fifo) {
    const auto per_pusher = shmconf_tests::by_profile<std::uint64_t>(20'000, 200'000);
    const std::uint64_t total = per_pusher * static_cast<std::uint64_t>(pushers);
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    (void)impl::template make<S>(seg, "q", capacity);  // created; each thread finds it
    // Plain memory, written by pushers and read by poppers: the record the
    // structure's hand-over must carry with the element.
    std::vector<std::unique_ptr<std::uint64_t[]>> records(static_cast<std::size_t>(pushers));
    for (auto& r : records) r = std::make_unique<std::uint64_t[]>(per_pusher);
    tally t;
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(pushers) + static_cast<std::size_t>(poppers));
    for (int p = 0; p < pushers; ++p)
        threads.emplace_back([&, p] {
            S s = impl::template find<S>(seg, "q");
            for (std::uint64_t i = 0; i < per_pusher; ++i) {
                const std::uint64_t value = (static_cast<std::uint64_t>(p) << 32) | i;
                records[p][i] = record_of(value);
                push_one(s, value);
            }
        });
    for (int c = 0; c < poppers; ++c)
        threads.emplace_back([&] {
            S s = impl::template find<S>(seg, "q");
            std::vector<std::int64_t> last(static_cast<std::size_t>(pushers), -1);
            std::uint64_t calls = 0;
            while (t.popped.load() < total) {
                const std::optional<std::uint64_t> v = pop_one(s, calls);
                if (!v) {
                    std::this_thread::yield();
                    continue;
                }
                t.popped.fetch_add(1);
                const std::uint64_t p = *v >> 32, i = *v & 0xffffffffu;
                if (p >= static_cast<std::uint64_t>(pushers) || i >= per_pusher) {
                    t.foreign.fetch_add(1);
                    continue;
                }
                if (records[p][i] != record_of(*v)) t.wrong_record.fetch_add(1);
                if (fifo && static_cast<std::int64_t>(i) <= last[p]) t.out_of_order.fetch_add(1);
                last[p] = static_cast<std::int64_t>(i);
            }
        });
    for (std::thread& th : threads) th.join();
    EXPECT_EQ(t.popped.load(), total);
    EXPECT_EQ(t.foreign.load(), 0u) << "values nobody pushed were popped";
    EXPECT_EQ(t.wrong_record.load(), 0u)
        << "a popper read the pusher's side record of an element and found another value: "
           "the pop did not see what was written before the push";
    EXPECT_EQ(t.out_of_order.load(), 0u);
    if (!::testing::Test::HasFailure() && !SHMCONF_UNDER_TSAN)
        SHMCONF_SKIP_AS("UNRESOLVED",
                        "every value was right, but the ordering is judged only in a "
                        "ThreadSanitizer build (conformance/run.py --tsan-build)");
}

TEST(Threads, SpscQueuePopSeesWhatWasWrittenBeforeThePush) {
    CHECKS_REQUIREMENTS("Q-010");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    hand_over_between_threads<impl::spsc_queue<std::uint64_t>>(8, 1, 1, true);
}

TEST(Threads, MpmcQueuePopSeesWhatWasWrittenBeforeThePush) {
    CHECKS_REQUIREMENTS("Q-010");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    hand_over_between_threads<impl::mpmc_queue<std::uint64_t>>(8, 2, 2, true);
}

TEST(Threads, ConcurrentStackPopSeesWhatWasWrittenBeforeThePush) {
    CHECKS_REQUIREMENTS("STK-005");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    hand_over_between_threads<impl::concurrent_stack<std::uint64_t>>(8, 2, 2, false);
}

}  // namespace
