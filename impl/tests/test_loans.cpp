// Loans on the process-safe queues: slots written in place and published
// by commit(), elements read in place and removed by release(). What a
// dropped loan does, batches across the ring's wrap, the calls a handle
// refuses while its loan is open, the waiting forms, and loans between real
// processes (a forked producer and consumer; a child killed mid-loan).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "child_process.hpp"
#include "concurrent_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using shmds_test::mpmc;
using shmds_test::spawn;
using shmds_test::spsc;
using shmds_test::unique_segment_name;
using shmds_test::wait_child;

constexpr int killed = 128 + SIGKILL;

template <class Q>
std::vector<std::uint64_t> drain(Q& q) {
    std::vector<std::uint64_t> out;
    std::uint64_t v = 0;
    while (q.try_pop(v)) out.push_back(v);
    return out;
}

template <class Q>
shmds::errc code_of(Q&& call) {
    try {
        call();
    } catch (const shmds::error& e) {
        return e.code();
    }
    return shmds::errc{};
}

// ---- both queues ------------------------------------------------------------------------------

template <class Q>
class Loans : public ::testing::Test {};
using queues = ::testing::Types<spsc, mpmc>;
TYPED_TEST_SUITE(Loans, queues);

TYPED_TEST(Loans, ACommittedSlotIsPublishedAndNothingBefore) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam producer(seg, "q", 4);
    TypeParam consumer(seg, "q");
    auto loan = producer.try_reserve();
    ASSERT_TRUE(loan);
    ASSERT_EQ(loan.size(), 1u);
    *loan = 41;
    std::uint64_t out = 0;
    EXPECT_FALSE(consumer.try_pop(out)) << "written but not committed";
    loan.commit();
    EXPECT_FALSE(loan) << "a committed loan is empty";
    ASSERT_TRUE(consumer.try_pop(out));
    EXPECT_EQ(out, 41u);
    loan.commit();  // an ended loan commits nothing
    EXPECT_FALSE(consumer.try_pop(out));
}

TYPED_TEST(Loans, ADroppedWriteLoanPublishesNothing) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 4);
    {
        auto loan = q.try_reserve_n(3);
        ASSERT_EQ(loan.size(), 3u);
        for (std::size_t i = 0; i < loan.size(); ++i) loan[i] = 100 + i;
    }
    ASSERT_TRUE(q.try_push(1));
    {
        auto loan = q.try_reserve();
        *loan = 2;
        auto moved = std::move(loan);
        // A moved-from loan is empty: its destructor must not drop the slot again.
        EXPECT_FALSE(loan) << "moved from";  // NOLINT(bugprone-use-after-move)
        ASSERT_TRUE(moved);
        moved = {};  // assigned over: dropped
    }
    ASSERT_TRUE(q.try_push(3));
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{1, 3}));
    for (std::uint64_t i = 0; i < 4; ++i)
        ASSERT_TRUE(q.try_push(10 + i)) << "every slot is usable again: " << i;
    EXPECT_FALSE(q.try_push(14));
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{10, 11, 12, 13}));
}

TYPED_TEST(Loans, CommitOfKPublishesTheFirstKInOrderAcrossTheWrap) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 8);
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(q.try_push(i));
    EXPECT_EQ(drain(q).size(), 6u);  // the next slot is the seventh of eight
    auto loan = q.try_reserve_n(7);
    ASSERT_EQ(loan.size(), 7u) << "wraps past the last slot";
    for (std::size_t i = 0; i < loan.size(); ++i) loan[i] = 200 + i;
    EXPECT_EQ(code_of([&] { loan.commit(8); }), shmds::errc::invalid_argument);
    ASSERT_TRUE(loan) << "a refused commit leaves the loan open";
    loan.commit(5);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{200, 201, 202, 203, 204}));
    EXPECT_FALSE(q.try_reserve_n(0)) << "nothing asked, nothing lent";
}

TYPED_TEST(Loans, AFullQueueLendsNothingAndAnEmptyOneLendsNothingToRead) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 2);
    EXPECT_FALSE(q.try_peek());
    EXPECT_FALSE(q.try_peek_for(20ms));
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_push(2));
    auto loan = q.try_reserve();
    EXPECT_FALSE(loan);
    EXPECT_EQ(loan.size(), 0u);
    EXPECT_FALSE(q.try_reserve_for(20ms));
    EXPECT_FALSE(q.try_reserve_n_for(2, 0ms));
    auto read = q.try_peek_n(5);
    ASSERT_EQ(read.size(), 2u);
    EXPECT_EQ(read[0], 1u);
    EXPECT_EQ(read[1], 2u);
    EXPECT_EQ(*read, 1u);
    read.release();
    EXPECT_FALSE(read);
    EXPECT_EQ(q.try_reserve_n(5).size(), 2u);
}

TYPED_TEST(Loans, AReleasedReadLoanFreesItsSlots) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 4);
    for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(q.try_push(i));
    ASSERT_FALSE(q.try_push(4));
    auto read = q.try_peek_n(3);
    ASSERT_EQ(read.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(read[i], i);
    read.release();
    for (std::uint64_t i = 4; i < 7; ++i) ASSERT_TRUE(q.try_push(i)) << "room for " << i;
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{3, 4, 5, 6}));
}

/// Sleep at once, and never look again unless woken: a wake-up that a loan's
/// end fails to send stops the other side, and its budget below runs out.
const shmds::wait_options sleep_until_woken{.strategy = shmds::wait_strategy::sleep,
                                            .recheck_after = std::chrono::seconds(30)};

TYPED_TEST(Loans, LoansPassEveryElementBetweenProcessesInOrder) {
    // A forked producer writes in place in batches of up to 5, a consumer
    // reads in place in batches of up to 3 (the MPMC queue lends at most
    // max_lent at once): every element, once, in order, through a ring of 8.
    // Both sleep when they must wait, so each commit must wake the consumer
    // and each release the producer.
    constexpr std::uint64_t count = 20000;
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam consumer(seg, "q", 8, sleep_until_woken);
    const pid_t producer = spawn([&] {
        shmds::posix_shm mine(name.str());
        TypeParam q(shmds::open_only, mine, "q", sleep_until_woken);
        std::uint64_t next = 0;
        while (next < count) {
            auto loan = q.reserve_n(std::min<std::uint64_t>(5, count - next));
            for (std::size_t i = 0; i < loan.size(); ++i) loan[i] = next + i;
            next += loan.size();
            loan.commit();
        }
    });
    std::uint64_t expected = 0;
    while (expected < count) {
        auto read = consumer.try_peek_n_for(3, 10s);
        ASSERT_TRUE(read) << "nothing for 10 s after " << expected;
        for (std::size_t i = 0; i < read.size(); ++i) ASSERT_EQ(read[i], expected + i);
        expected += read.size();
        read.release();
    }
    EXPECT_EQ(wait_child(producer), shmds_test::child_ok);
    EXPECT_FALSE(consumer.try_peek());
}

TYPED_TEST(Loans, AWaitingPeekIsWokenByACommitInAnotherProcess) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 4, sleep_until_woken);
    const pid_t producer = spawn([&] {
        shmds::posix_shm mine(name.str());
        TypeParam p(mine, "q");
        std::this_thread::sleep_for(100ms);
        auto loan = p.try_reserve();
        CHILD_CHECK(loan);
        *loan = 9;
        loan.commit();
    });
    const auto start = std::chrono::steady_clock::now();
    auto front = q.try_peek_for(20s);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(front);
    EXPECT_EQ(*front, 9u);
    EXPECT_LT(waited, 10s) << "woken by the commit, not by a recheck";
    front.release();
    EXPECT_EQ(wait_child(producer), shmds_test::child_ok);
}

TYPED_TEST(Loans, AWaitingReservationIsWokenByAPopInAnotherProcess) {
    // Woken by the pop, though the safety-net recheck comes only after 30 s.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 1, sleep_until_woken);
    ASSERT_TRUE(q.try_push(7));
    const pid_t consumer = spawn([&] {
        shmds::posix_shm mine(name.str());
        TypeParam c(mine, "q");
        std::this_thread::sleep_for(100ms);
        std::uint64_t v = 0;
        CHILD_CHECK(c.try_pop(v) && v == 7);
    });
    const auto start = std::chrono::steady_clock::now();
    auto loan = q.try_reserve_for(20s);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(loan);
    EXPECT_LT(waited, 10s) << "woken by the pop, not by a recheck";
    *loan = 8;
    loan.commit();
    EXPECT_EQ(wait_child(consumer), shmds_test::child_ok);
}

TYPED_TEST(Loans, AProducerKilledHoldingALoanLosesOnlyTheLentElements) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 8);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  TypeParam p(mine, "q");
                  CHILD_CHECK(p.try_push(1));
                  auto loan = p.try_reserve_n(3);
                  CHILD_CHECK(loan.size() == 3);
                  for (std::size_t i = 0; i < 3; ++i) loan[i] = 50 + i;
                  ::raise(SIGKILL);
              })),
              killed);
    std::uint64_t out = 0;
    ASSERT_TRUE(q.try_pop_for(out, 10s));
    EXPECT_EQ(out, 1u);
    ASSERT_TRUE(q.try_push_for(2, 10s)) << "the dead producer's role or claims hold nobody up";
    ASSERT_TRUE(q.try_pop_for(out, 10s)) << "no consumer waits for the dead loan's slots";
    EXPECT_EQ(out, 2u);
    EXPECT_FALSE(q.try_pop(out)) << "nothing of the loan was published";
    for (std::uint64_t i = 0; i < 8; ++i)
        ASSERT_TRUE(q.try_push_for(10 + i, 10s)) << "no slot stays lent: " << i;
}

TYPED_TEST(Loans, ACommitFromAForkedChildsCopyIsRefused) {
    // The child's copy of the handle holds neither the role nor the claims:
    // publishing from it would race the parent, who still owns the loan.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    TypeParam q(seg, "q", 4);
    auto loan = q.try_reserve();
    ASSERT_TRUE(loan);
    *loan = 5;
    ASSERT_EQ(
        wait_child(spawn([&] { CHILD_CHECK(code_of([&] { loan.commit(); }) == shmds::errc::role_taken); })),
        shmds_test::child_ok);
    loan.commit();
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{5}));
}

// ---- the SPSC queue: one loan per side, the front left in place ----------------------------------

TEST(SpscLoans, ADroppedReadLoanLeavesItsElementsAtTheFront) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 4);
    for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(q.try_push(i));
    {
        auto read = q.try_peek_n(2);
        ASSERT_EQ(read.size(), 2u);
    }
    {
        auto read = q.try_peek_n(3);
        ASSERT_EQ(read.size(), 3u);
        read.release(1);
        EXPECT_EQ(code_of([&] { read.release(1); }), shmds::errc::invalid_argument)
            << "an ended loan has nothing more to release";
    }
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{1, 2}));
}

TEST(SpscLoans, ASideWithAnOpenLoanRefusesItsOtherCalls) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 8);
    const std::uint64_t batch[] = {1, 2};
    std::uint64_t out[2] = {};
    {
        auto loan = q.try_reserve();
        ASSERT_TRUE(loan);
        EXPECT_EQ(code_of([&] { (void)q.try_push(1); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { q.push(1); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_push_n(batch, 2); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_reserve(); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_push_for(1, 10ms); }), shmds::errc::loan_open);
        *loan = 9;
        loan.commit();
    }
    ASSERT_TRUE(q.try_push(10)) << "after the commit, pushes go on";
    {
        auto read = q.try_peek();
        ASSERT_TRUE(read);
        EXPECT_EQ(*read, 9u);
        EXPECT_EQ(code_of([&] { (void)q.try_pop(); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_pop(out[0]); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_pop_n(out, 2); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_peek(); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.pop(); }), shmds::errc::loan_open);
        EXPECT_TRUE(q.try_push(11)) << "the other side is not held up";
    }
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{9, 10, 11}));
}

TEST(SpscLoans, AWriteLoanOfTheLastFreeSlotStillRefusesAPush) {
    // The refusal comes from try_push's "full?" branch: it must not be
    // taken for a full queue (false) when the queue does have room after
    // the loan, nor let the push through when the loan holds the last slot.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 2);
    ASSERT_TRUE(q.try_push(1));
    auto loan = q.try_reserve();
    ASSERT_TRUE(loan);
    EXPECT_EQ(code_of([&] { (void)q.try_push(2); }), shmds::errc::loan_open);
    loan = {};
    EXPECT_TRUE(q.try_push(2)) << "the dropped loan's slot is free again";
    EXPECT_FALSE(q.try_push(3));
}

// ---- the MPMC queue: claims, never a held handle ------------------------------------------------

TEST(MpmcLoans, AnOpenWriteLoanHoldsConsumersAtItsPositionUntilCommitted) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    auto loan = q.try_reserve();
    ASSERT_TRUE(loan);
    ASSERT_TRUE(q.try_push(2)) << "the same handle pushes on behind its loan";
    std::uint64_t out = 0;
    EXPECT_FALSE(q.try_pop(out)) << "the element behind the loan waits for it";
    *loan = 1;
    loan.commit();
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{1, 2}));
}

TEST(MpmcLoans, ADroppedWriteLoanIsSkippedNotWaitedFor) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    auto loan = q.try_reserve_n(2);
    ASSERT_EQ(loan.size(), 2u);
    ASSERT_TRUE(q.try_push(3));
    loan[0] = 1;
    loan.commit(1);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{1, 3})) << "the uncommitted position is skipped";
}

TEST(MpmcLoans, ASlotGivenUpTwiceDoesNotHideTheElementBehindIt) {
    // Capacity 2: element 0 pushed, position 1 dropped (its slot freed for
    // position 3), element 0 popped (consumers now at position 1), element 1
    // pushed at position 2, position 3 dropped (the slot freed for position
    // 5). A consumer at position 1 finds that slot two laps ahead while the
    // element at position 2 waits: only a jump to at most "two laps before
    // the slot's position" finds it; a one-lap jump skipped and stranded it.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 2);
    std::uint64_t out = 0;
    ASSERT_TRUE(q.try_push(0));
    ASSERT_TRUE(q.try_reserve());  // dropped at once
    ASSERT_TRUE(q.try_pop(out));
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_reserve());
    ASSERT_TRUE(q.try_pop(out)) << "the element behind a slot given up twice";
    EXPECT_EQ(out, 1u);
    for (std::uint64_t i = 0; i < 2; ++i)
        ASSERT_TRUE(q.try_push(10 + i)) << "the whole capacity again: " << i;
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{10, 11}));
}

TEST(MpmcLoans, AReadLoanRemovesItsElementsWhenItEnds) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 64);
    for (std::uint64_t i = 0; i < 40; ++i) ASSERT_TRUE(q.try_push(i));
    {
        auto read = q.try_peek_n(40);
        ASSERT_EQ(read.size(), mpmc::max_lent) << "at most max_lent at once";
        for (std::size_t i = 0; i < read.size(); ++i) EXPECT_EQ(read[i], i);
        std::uint64_t out = 0;
        ASSERT_TRUE(q.try_pop(out)) << "the same handle pops on past its loan";
        EXPECT_EQ(out, mpmc::max_lent);
    }
    const auto rest = drain(q);
    ASSERT_EQ(rest.size(), 40 - mpmc::max_lent - 1);
    EXPECT_EQ(rest.front(), mpmc::max_lent + 1);
}

TEST(MpmcLoans, AConsumerKilledHoldingAReadLoanHoldsNobodyUp) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 4);
    for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(q.try_push(i));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc c(mine, "q");
                  auto read = c.try_peek_n(2);
                  CHILD_CHECK(read.size() == 2 && read[0] == 0 && read[1] == 1);
                  ::raise(SIGKILL);
              })),
              killed);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{2, 3}));
    for (std::uint64_t i = 0; i < 4; ++i)
        ASSERT_TRUE(q.try_push_for(10 + i, 10s)) << "its slots come back: " << i;
    std::vector<std::uint64_t> got;
    std::uint64_t out = 0;
    while (q.try_pop_for(out, 100ms)) got.push_back(out);
    EXPECT_EQ(got, (std::vector<std::uint64_t>{10, 11, 12, 13}));
}

TEST(SpscLoans, AConsumerKilledHoldingAReadLoanLosesNothing) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    {
        spsc p(seg, "q", 4);
        for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(p.try_push(i));
    }
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc c(mine, "q");
                  auto read = c.try_peek_n(2);
                  CHILD_CHECK(read.size() == 2);
                  ::raise(SIGKILL);
              })),
              killed);
    spsc q(seg, "q");
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2}));
}

}  // namespace
