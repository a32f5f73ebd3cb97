// Faults injected into the process-safe structures (SHMDS_FAULT_INJECTION):
// a producer, consumer or lock holder of an SPSC queue, an MPMC queue or a
// concurrent stack, or a sender or receiver of a message queue, killed at
// each step of an operation. The survivors lose
// at most the element the dead process was moving, are never held up by
// its claims, its role or its lock (not even while a child it forked lives
// on), and find the structure consistent.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "fault_injection.hpp"
#include "support.hpp"

namespace {

using namespace shmds_faults;

/// A producer in a child pushes 0, 1 and 2 into the SPSC queue "q", then is
/// killed at fault point `point` while it pushes 3.
void push_three_then_die_pushing_at(const unique_segment_name& name, const char* point) {
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc p(mine, "q");
                  for (std::uint64_t i = 0; i < 3; ++i) CHILD_CHECK(p.try_push(i));
                  arm(point);
                  (void)p.try_push(3);
              })),
              killed);
}

TEST(StructureFaults, SpscProducerKilledBeforePublishingLosesOnlyThatElement) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 16);
    push_three_then_die_pushing_at(name, "spsc.push.written");
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2}));
    ASSERT_TRUE(q.try_push(10)) << "the dead producer's role is free";
    EXPECT_EQ(q.try_pop(), 10u);
}

TEST(StructureFaults, SpscProducerKilledAfterPublishingBeforeCountingIsNotOverwritten) {
    // Killed between the slot's sequence (the publication) and the store of
    // tail: the element was published, and a successor must count it, not
    // write over it.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 4);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc p(mine, "q");
                  CHILD_CHECK(p.try_push(0));
                  arm("spsc.push.published");
                  (void)p.try_push(1);
              })),
              killed);
    {
        spsc successor(seg, "q");
        ASSERT_TRUE(successor.try_push(2));
        ASSERT_TRUE(successor.try_push(3));
        EXPECT_FALSE(successor.try_push(4)) << "four elements in a queue of four";
        EXPECT_EQ(successor.size(), 4u);
    }
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2, 3}));
}

TEST(StructureFaults, SpscBatchPopTakesWhatTailDoesNotCountYet) {
    // A batch pop copies what the producer's tail counts without reading
    // sequences, then goes on by sequences: an element published by a
    // producer killed before it stored tail (and so not counted yet) is
    // taken in the same batch, behind the counted ones, and nothing after it.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 8);
    push_three_then_die_pushing_at(name, "spsc.push.published");
    std::uint64_t out[8] = {};
    ASSERT_EQ(q.try_pop_n(out, 8), 4u) << "three counted by tail, one published beyond it";
    EXPECT_EQ((std::vector<std::uint64_t>(out, out + 4)), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(q.try_pop_n(out, 8), 0u);
    ASSERT_TRUE(q.try_push(4)) << "the dead producer's role is free";
    ASSERT_EQ(q.try_pop_n(out, 2), 1u);
    EXPECT_EQ(out[0], 4u);
}

TEST(StructureFaults, SpscBatchOfAKilledProducerIsAllOrNothing) {
    for (const char* point : {"spsc.push_n.one_written", "spsc.push_n.all_but_first", "spsc.push_n.written",
                              "spsc.push_n.published"}) {
        SCOPED_TRACE(point);
        unique_segment_name name;
        shmds::posix_shm seg(name, 1 << 20);
        spsc q(seg, "q", 8);
        ASSERT_EQ(wait_child(spawn([&] {
                      shmds::posix_shm mine(name.str());
                      spsc p(mine, "q");
                      CHILD_CHECK(p.try_push(100));
                      const std::uint64_t batch[] = {101, 102, 103, 104};
                      arm(point);
                      (void)p.try_push_n(batch, 4);
                  })),
                  killed);
        const bool published = std::string_view(point) == "spsc.push_n.published";
        {
            // The successor writes behind the element 100 (and behind the
            // batch when it was published); sequences an unpublished batch
            // left must not let the consumer read its slots early.
            spsc successor(seg, "q");
            ASSERT_TRUE(successor.try_push(200));
        }
        std::vector<std::uint64_t> expected{100};
        if (published) expected.insert(expected.end(), {101, 102, 103, 104});
        expected.push_back(200);
        EXPECT_EQ(drain(q), expected);
        spsc refill(seg, "q");
        for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(refill.try_push(300 + i)) << "room for " << i;
        for (std::uint64_t i = 0; i < 8; ++i) ASSERT_EQ(q.try_pop(), 300 + i);
    }
}

TEST(StructureFaults, SpscCommitOfAKilledProducerIsAllOrNothing) {
    // A loan's commit publishes as a batch push does: killed before the
    // first slot's sequence, nothing; after it, all, counted by the successor.
    for (const char* point : {"spsc.commit.all_but_first", "spsc.commit.published"}) {
        SCOPED_TRACE(point);
        unique_segment_name name;
        shmds::posix_shm seg(name, 1 << 20);
        spsc q(seg, "q", 8);
        ASSERT_EQ(wait_child(spawn([&] {
                      shmds::posix_shm mine(name.str());
                      spsc p(mine, "q");
                      CHILD_CHECK(p.try_push(100));
                      auto loan = p.try_reserve_n(4);
                      CHILD_CHECK(loan.size() == 4);
                      for (std::size_t i = 0; i < 4; ++i) loan[i] = 101 + i;
                      arm(point);
                      loan.commit();
                  })),
                  killed);
        const bool published = std::string_view(point) == "spsc.commit.published";
        {
            spsc successor(seg, "q");
            ASSERT_TRUE(successor.try_push(200));
        }
        std::vector<std::uint64_t> expected{100};
        if (published) expected.insert(expected.end(), {101, 102, 103, 104});
        expected.push_back(200);
        EXPECT_EQ(drain(q), expected);
    }
}

TEST(StructureFaults, SpscConsumerKilledMidPopLosesNothing) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    {
        spsc producer(seg, "q", 16);
        for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(producer.try_push(i));
    }
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc c(mine, "q");
                  CHILD_CHECK(c.try_pop() == 0u);
                  CHILD_CHECK(c.try_pop() == 1u);
                  arm("spsc.pop.read");
                  (void)c.try_pop();
              })),
              killed);
    spsc q(seg, "q");
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{2, 3, 4})) << "the element being read is still there";
}

TEST(StructureFaults, MpmcProducerKilledAfterClaimingASlotHoldsNobodyUp) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    ASSERT_FALSE(q.try_pop());  // joins first: the dead producer's id stays unused, so only
                                // the liveness check can release its claim
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  CHILD_CHECK(p.try_push(0));
                  CHILD_CHECK(p.try_push(1));
                  arm("mpmc.push.claimed");
                  (void)p.try_push(2);
              })),
              killed);
    ASSERT_TRUE(q.try_push(3));
    ASSERT_TRUE(q.try_push(4));
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 3, 4}))
        << "only the dead producer's element is lost";
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << "no slot stays lost: " << i;
    EXPECT_FALSE(q.try_push(8));
    EXPECT_EQ(drain(q).size(), 8u);
}

TEST(StructureFaults, MpmcNextHolderOfADeadParticipantsIdReleasesItsClaims) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    auto* control = reinterpret_cast<shmds::detail::mpmc_control*>(static_cast<std::byte*>(seg.base()) +
                                                                   seg.table().find("q")->offset);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");  // participant 0
                  arm("mpmc.push.claimed");
                  (void)p.try_push(1);
              })),
              killed);
    EXPECT_EQ(control->head.load(), 0u);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  CHILD_CHECK(p.capacity() == 8);
                  (void)p.size_estimate();
                  CHILD_CHECK(!p.try_pop());  // joins as participant 0, the dead one's id
              })),
              child_ok);
    EXPECT_EQ(control->head.load(), 1u) << "joining as the dead participant released its claim at once";
}

TEST(StructureFaults, MpmcProducersAloneGetPastADeadProducersClaim) {
    // No consumer runs: the producers themselves must find and release the
    // dead claim when their ring comes round to it.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 4);
    ASSERT_FALSE(q.try_pop());  // joins first, so the dead producer's id is not ours to clean up
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  arm("mpmc.push.claimed");
                  (void)p.try_push(99);
              })),
              killed);
    for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << i;
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2, 3}));
}

TEST(StructureFaults, MpmcConsumerKilledAfterClaimingAnElementHoldsNobodyUp) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(q.try_push(i));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc c(mine, "q");
                  CHILD_CHECK(c.try_pop() == 0u);
                  arm("mpmc.pop.claimed");
                  (void)c.try_pop();
              })),
              killed);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{2, 3, 4, 5})) << "only the element being taken is lost";
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << "no slot stays lost: " << i;
    EXPECT_FALSE(q.try_push(8));
}

TEST(StructureFaults, StackLockHolderKilledMidPushLeavesItConsistent) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  cstack c(mine, "s");
                  arm("stack.push.written");
                  (void)c.try_push(3);
              })),
              killed);
    ASSERT_TRUE(s.try_push(4)) << "the lock was recovered";
    EXPECT_EQ(s.lock_recoveries(), 1u);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{4, 2, 1})) << "the unfinished push never counted";
}

TEST(StructureFaults, StackLockHolderKilledMidPopLeavesItConsistent) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  cstack c(mine, "s");
                  arm("stack.pop.read");
                  (void)c.try_pop();
              })),
              killed);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{2, 1})) << "the unfinished pop never uncounted";
    EXPECT_EQ(s.lock_recoveries(), 1u);
}

TEST(StructureFaults, AForkedChildDoesNotKeepADeadParentsClaimOrRoleAlive) {
    // The dead process forked a long-lived helper after joining: the helper's
    // copies of its participant locks must not make it look alive.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    shared_block<pid_t> helpers(2);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  spsc roles(mine, "roles", 4);
                  CHILD_CHECK(p.try_push(0));
                  CHILD_CHECK(roles.try_push(0));  // holds the SPSC producer role
                  for (std::size_t h = 0; h < 2; ++h) helpers[h] = shmds_test::fork_idle_helper(60s);
                  arm("mpmc.push.claimed");
                  (void)p.try_push(1);
              })),
              killed);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0})) << "the claim was released although helpers live on";
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << i;
    spsc roles(seg, "roles");
    EXPECT_TRUE(roles.try_push(1)) << "the dead process's role is free although its helpers live on";
    for (std::size_t h = 0; h < 2; ++h) shmds_test::kill_and_reap(helpers[h]);
}

// ---- the message queue: a killed sender or receiver at each step ------------------------------

std::string text_of(const std::optional<std::vector<std::byte>>& m) {
    return m ? std::string(reinterpret_cast<const char*>(m->data()), m->size()) : "(none)";
}

/// A producer in a child sends "zero" and a message that wraps the ring
/// ("long message, wrapped"), then is killed at `point` while it sends one
/// more ("lost?").
void send_then_die_sending_at(const unique_segment_name& name, const char* point) {
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  shmds::shm_message_queue p(mine, "m");
                  const std::string zero = "zero", wrapped = "long message, wrapped", lost = "lost?";
                  CHILD_CHECK(p.try_send(std::as_bytes(std::span(zero))));
                  CHILD_CHECK(p.try_send(std::as_bytes(std::span(wrapped))));
                  arm(point);
                  (void)p.try_send(std::as_bytes(std::span(lost)));
              })),
              killed);
}

TEST(StructureFaults, MessageSenderKilledBeforePublishingLosesOnlyThatMessage) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_message_queue q(seg, "m", 80, 24);
    // Offset 48 to start with: "zero" (16 bytes) ends at 64, and the wrapped
    // record skips the last 16 bytes.
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(q.try_send(std::as_bytes(std::span("0123456", 7))));
        ASSERT_TRUE(q.try_receive().has_value());
    }
    q.release_roles();  // the child produces
    send_then_die_sending_at(name, "message.send.written");
    EXPECT_EQ(text_of(q.try_receive()), "zero");
    EXPECT_EQ(text_of(q.try_receive()), "long message, wrapped");
    EXPECT_FALSE(q.try_receive().has_value()) << "the unpublished record is not delivered";
    shmds::shm_message_queue successor(seg, "m");
    const std::string next = "next";
    ASSERT_TRUE(successor.try_send(std::as_bytes(std::span(next)))) << "the dead sender's role is free";
    EXPECT_EQ(text_of(q.try_receive()), "next") << "the successor writes where the dead one did not publish";
}

TEST(StructureFaults, MessageSenderKilledAfterPublishingHasSentIt) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_message_queue q(seg, "m", 80, 24);
    send_then_die_sending_at(name, "message.send.published");
    EXPECT_EQ(text_of(q.try_receive()), "zero");
    EXPECT_EQ(text_of(q.try_receive()), "long message, wrapped");
    shmds::shm_message_queue successor(seg, "m");
    const std::string next = "next";
    ASSERT_TRUE(successor.try_send(std::as_bytes(std::span(next))));
    EXPECT_EQ(text_of(q.try_receive()), "lost?") << "published by its one store of tail: not overwritten";
    EXPECT_EQ(text_of(q.try_receive()), "next");
}

TEST(StructureFaults, MessageReceiverKilledMidReceiveLosesNothing) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_message_queue q(seg, "m", 80, 24);
    const std::string one = "one", two = "two";
    ASSERT_TRUE(q.try_send(std::as_bytes(std::span(one))));
    ASSERT_TRUE(q.try_send(std::as_bytes(std::span(two))));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  shmds::shm_message_queue c(mine, "m");
                  arm("message.receive.read");
                  (void)c.try_receive();
              })),
              killed);
    shmds::shm_message_queue successor(seg, "m");
    EXPECT_EQ(text_of(successor.try_receive()), "one") << "read but not freed: delivered again";
    EXPECT_EQ(text_of(successor.try_receive()), "two");
}

}  // namespace
