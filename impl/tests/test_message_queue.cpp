// shm_message_queue: variable-length messages in a byte ring. Its sizes at
// their edges (empty messages, the largest, a ring of exactly two largest
// records), records that wrap, loans (committed short, dropped, refused while
// open), every mismatch at open, the roles, the waiting forms woken by
// another process, and a producer and consumer in two exec()ed programs
// (different mappings) moving messages of random lengths.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "child_process.hpp"
#include "message_pattern.hpp"
#include "support.hpp"

namespace message_queue_tests {

using namespace std::chrono_literals;
using shmds::shm_message_queue;
using shmds_test::message_of;
using shmds_test::spawn;
using shmds_test::unique_segment_name;
using shmds_test::wait_child;

constexpr int killed = 128 + SIGKILL;

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s));
}
std::string text_of(std::span<const std::byte> b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

template <class Call>
shmds::errc code_of(Call&& call) {
    try {
        call();
    } catch (const shmds::error& e) {
        return e.code();
    }
    return shmds::errc{};
}
template <class Call>
std::string message_of_error(Call&& call) {
    try {
        call();
    } catch (const shmds::error& e) {
        return e.what();
    }
    return "(no error)";
}

class MessageQueue : public ::testing::Test {
protected:
    unique_segment_name name_;
    shmds::posix_shm seg_{name_, 1 << 20};
};

TEST_F(MessageQueue, MessagesOfEveryLengthArriveWholeAndInOrder) {
    shm_message_queue q(seg_, "m", 256, 100);
    EXPECT_TRUE(q.created());
    EXPECT_EQ(q.capacity(), 256u);
    EXPECT_EQ(q.max_message_size(), 100u);
    std::vector<std::byte> buffer(100);
    // Every length from 0 to the largest, many laps of a small ring: every
    // padding and every wrap offset comes up.
    std::uint64_t sent = 0, received = 0;
    for (int lap = 0; lap < 30; ++lap) {
        for (std::size_t length = 0; length <= 100; ++length) {
            const std::vector<std::byte> m = message_of(lap, length, 100);
            std::vector<std::byte> exact(m.begin(),
                                         m.begin() + static_cast<long>(std::min(m.size(), length)));
            exact.resize(length, std::byte{7});
            while (!q.try_send(exact)) {
                const std::optional<std::size_t> got = q.try_receive(buffer);
                ASSERT_TRUE(got.has_value()) << "full and empty at once";
                const std::vector<std::byte> expected = [&] {
                    const std::size_t len = received % 101;
                    std::vector<std::byte> e = message_of(received / 101, len, 100);
                    e.resize(std::min(e.size(), len));
                    e.resize(len, std::byte{7});
                    return e;
                }();
                ASSERT_EQ(*got, expected.size()) << "message " << received;
                ASSERT_TRUE(std::equal(expected.begin(), expected.end(), buffer.begin()))
                    << "message " << received;
                ++received;
            }
            ++sent;
        }
    }
    while (q.try_receive(buffer)) ++received;
    EXPECT_EQ(received, sent);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.size_bytes(), 0u);
}

TEST_F(MessageQueue, SizesAtTheirEdges) {
    // A ring of exactly two records of the largest message: the smallest
    // allowed. Both fit, whatever the offset the queue has reached.
    shm_message_queue q(seg_, "tight", 2 * shmds::detail::record_bytes(13), 13);
    EXPECT_EQ(q.capacity(), 48u);
    const std::string largest(13, 'x');
    for (int round = 0; round < 5; ++round) {
        ASSERT_TRUE(q.try_send(bytes_of("a")));  // moves the offset, so the largest wraps some rounds
        ASSERT_TRUE(q.try_receive().has_value());
        ASSERT_TRUE(q.try_send(bytes_of(largest))) << "round " << round;
        auto back = q.try_receive();
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(text_of(*back), largest);
    }
    // Two of them fill it from offset 0; past the middle, the second would
    // have to wrap, and waits for the first to go.
    shm_message_queue two(seg_, "two", 48, 13);
    ASSERT_TRUE(two.try_send(bytes_of(largest)));
    ASSERT_TRUE(two.try_send(bytes_of(largest)));
    EXPECT_FALSE(two.try_send({})) << "a third record does not fit, not even an empty message";
    EXPECT_EQ(two.size_bytes(), 48u);
    EXPECT_EQ(two.try_receive()->size(), 13u);
    ASSERT_TRUE(two.try_send({}));  // an 8-byte record at offset 0
    EXPECT_FALSE(two.try_send(bytes_of(largest))) << "16 bytes are free, the record needs 24";
    EXPECT_EQ(two.size_bytes(), 32u);
    EXPECT_EQ(two.try_receive()->size(), 13u);
    EXPECT_EQ(two.try_receive()->size(), 0u) << "an empty message is a message";
    EXPECT_FALSE(two.try_receive().has_value());
    ASSERT_TRUE(two.try_send(bytes_of(largest))) << "drained, the largest fits";
    EXPECT_EQ(two.size_bytes(), 24u);
    EXPECT_EQ(text_of(*two.try_receive()), largest);
    ASSERT_TRUE(two.try_send(bytes_of(largest)))
        << "from offset 32 it wraps: 16 bytes skipped, 24 at the start";
    EXPECT_EQ(two.size_bytes(), 40u) << "the skipped end counts until the record is received";
    EXPECT_EQ(text_of(*two.try_receive()), largest);
    EXPECT_TRUE(two.empty());

    // Refused at creation, each naming what is wrong.
    for (auto [capacity, max, says] : {std::tuple{std::size_t{47}, std::size_t{13}, "not a multiple of 8"},
                                       {40, 13, "less than twice"},
                                       {0, 0, "less than twice"},
                                       {std::size_t{1} << 40, std::size_t{1} << 33, "over the limit"}}) {
        try {
            shm_message_queue bad(seg_, "bad", capacity, max);
            ADD_FAILURE() << capacity << " / " << max << " accepted";
        } catch (const shmds::invalid_argument_error& e) {
            EXPECT_EQ(e.code(), shmds::errc::invalid_size);
            EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
        }
    }
    EXPECT_FALSE(seg_.table().find("bad").has_value()) << "nothing was created";
    shm_message_queue smallest(seg_, "smallest", 16, 0);
    EXPECT_TRUE(smallest.try_send({}));
    EXPECT_TRUE(smallest.try_send({}));
    EXPECT_FALSE(smallest.try_send({}));
}

TEST_F(MessageQueue, AMessageOverTheLargestOrABufferTooSmallIsRefusedAndNothingIsLost) {
    shm_message_queue q(seg_, "m", 256, 20);
    ASSERT_TRUE(q.try_send(bytes_of("kept")));
    const std::string big(21, 'b');
    EXPECT_EQ(code_of([&] { (void)q.try_send(bytes_of(big)); }), shmds::errc::invalid_size);
    EXPECT_NE(message_of_error([&] {
                  (void)q.try_send(bytes_of(big));
              }).find("21-byte message; it takes messages of up to 20"),
              std::string::npos);
    EXPECT_EQ(code_of([&] { (void)q.try_reserve(21); }), shmds::errc::invalid_size);
    EXPECT_EQ(code_of([&] { (void)q.try_send_for(bytes_of(big), 1s); }), shmds::errc::invalid_size)
        << "refused at once, not after waiting for room it can never have";
    std::byte small[3];
    EXPECT_EQ(code_of([&] { (void)q.try_receive(small); }), shmds::errc::invalid_size);
    EXPECT_NE(message_of_error([&] { (void)q.try_receive(small); }).find("has 4 bytes, the buffer 3"),
              std::string::npos);
    std::byte enough[4];
    EXPECT_EQ(q.try_receive(enough), 4u) << "the message stayed at the front";
    EXPECT_EQ(text_of(enough), "kept");
}

TEST_F(MessageQueue, EveryMismatchAtOpenIsRefused) {
    { shm_message_queue q(seg_, "m", 256, 20); }
    EXPECT_EQ(code_of([&] { shm_message_queue q(seg_, "m", 264, 20); }), shmds::errc::capacity_mismatch);
    EXPECT_EQ(code_of([&] { shm_message_queue q(seg_, "m", 256, 21); }), shmds::errc::capacity_mismatch);
    EXPECT_NE(message_of_error([&] {
                  shm_message_queue q(seg_, "m", 256, 24);
              }).find("takes messages of up to 20 bytes, but 24 were requested"),
              std::string::npos);
    EXPECT_EQ(code_of([&] { shm_message_queue q(shmds::create_only, seg_, "m", 256, 20); }),
              shmds::errc::already_exists);
    EXPECT_EQ(code_of([&] { shmds::shm_spsc_queue<std::byte> q(seg_, "m", 256); }),
              shmds::errc::kind_mismatch);
    shmds::shm_spsc_queue<std::uint64_t> other(seg_, "spsc", 4);
    EXPECT_EQ(code_of([&] { shm_message_queue q(seg_, "spsc"); }), shmds::errc::kind_mismatch);
    EXPECT_EQ(code_of([&] { shm_message_queue q(seg_, "absent"); }), shmds::errc::not_found);
    shm_message_queue found(shmds::open_only, seg_, "m");
    EXPECT_FALSE(found.created());
    EXPECT_EQ(found.capacity(), 256u);
    EXPECT_EQ(found.max_message_size(), 20u) << "learnt from the segment";
    const auto info = seg_.table().find("m");
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->kind, shmds::structure_kind::message_queue);
    EXPECT_EQ(info->capacity, 256u);
}

TEST_F(MessageQueue, AWriteLoanPublishesWhatItCommitsAndADroppedOneNothing) {
    shm_message_queue q(seg_, "m", 128, 40);
    {
        auto loan = q.try_reserve(40);
        ASSERT_TRUE(loan);
        EXPECT_EQ(loan.size(), 40u);
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(loan.data()) % 8, 0u) << "messages are 8-byte aligned";
        std::memcpy(loan.data(), "dropped", 7);
        EXPECT_EQ(code_of([&] { (void)q.try_send(bytes_of("x")); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_reserve(1); }), shmds::errc::loan_open);
    }
    EXPECT_TRUE(q.empty()) << "a dropped loan publishes nothing";
    auto loan = q.try_reserve(40);
    ASSERT_TRUE(loan);
    std::memcpy(loan.data(), "short", 5);
    EXPECT_EQ(code_of([&] { loan.commit(41); }), shmds::errc::invalid_argument);
    EXPECT_TRUE(loan) << "a refused commit leaves the loan open";
    loan.commit(5);
    EXPECT_FALSE(loan);
    EXPECT_EQ(q.size_bytes(), shmds::detail::record_bytes(5))
        << "the ring holds what was used, not what was reserved";
    EXPECT_EQ(code_of([&] { loan.commit(); }), shmds::errc::invalid_argument) << "a loan commits once";
    auto zero = q.try_reserve(0);
    ASSERT_TRUE(zero) << "an empty message can be lent too";
    zero.commit();
    EXPECT_EQ(text_of(*q.try_receive()), "short");
    EXPECT_EQ(q.try_receive()->size(), 0u);
    EXPECT_FALSE(q.try_receive().has_value());
}

TEST_F(MessageQueue, AReadLoanIsTheMessageInPlaceAndOnlyReleaseRemovesIt) {
    shm_message_queue q(seg_, "m", 128, 40);
    EXPECT_FALSE(q.try_peek()) << "empty";
    // An empty loan's bytes are an empty span (regression: fuzz_structures
    // found data() reading through the null queue of an empty loan).
    EXPECT_TRUE(q.try_peek().bytes().empty());
    EXPECT_EQ(q.try_peek().data(), nullptr);
    EXPECT_TRUE(shm_message_queue::write_loan().bytes().empty());
    ASSERT_TRUE(q.try_send(bytes_of("first")));
    ASSERT_TRUE(q.try_send(bytes_of("second")));
    {
        auto loan = q.try_peek();
        ASSERT_TRUE(loan);
        EXPECT_EQ(text_of(loan.bytes()), "first");
        EXPECT_EQ(code_of([&] { (void)q.try_receive(); }), shmds::errc::loan_open);
        EXPECT_EQ(code_of([&] { (void)q.try_peek(); }), shmds::errc::loan_open);
    }
    auto again = q.try_peek();
    ASSERT_TRUE(again) << "a dropped read loan leaves its message at the front";
    EXPECT_EQ(text_of(again.bytes()), "first");
    again.release();
    EXPECT_FALSE(again);
    EXPECT_EQ(code_of([&] { again.release(); }), shmds::errc::invalid_argument);
    auto moved = q.try_peek();
    shm_message_queue::read_loan holder = std::move(moved);
    EXPECT_FALSE(moved) << "moving a loan empties the source";  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(text_of(holder.bytes()), "second");
    holder.release();
    EXPECT_TRUE(q.empty());
}

TEST_F(MessageQueue, OneProducerAndOneConsumerAtATime) {
    shm_message_queue q(seg_, "m", 128, 40);
    shm_message_queue other(seg_, "m");
    ASSERT_TRUE(q.try_send(bytes_of("a")));
    EXPECT_TRUE(q.is_producer());
    EXPECT_EQ(code_of([&] { (void)other.try_send(bytes_of("b")); }), shmds::errc::role_taken);
    ASSERT_TRUE(other.try_receive().has_value());
    EXPECT_TRUE(other.is_consumer());
    EXPECT_EQ(code_of([&] { (void)q.try_peek(); }), shmds::errc::role_taken);
    q.release_roles();
    ASSERT_TRUE(other.try_send(bytes_of("c"))) << "a released role can be taken";
    EXPECT_EQ(text_of(*other.try_receive()), "c");
}

TEST_F(MessageQueue, WaitingFormsAreWokenByAnotherProcessAndTimedOnesTimeOut) {
    shm_message_queue q(seg_, "m", 64, 16);
    std::byte buffer[16];
    const auto started = std::chrono::steady_clock::now();
    EXPECT_FALSE(q.try_receive_for(buffer, 30ms).has_value());
    EXPECT_FALSE(q.try_peek_for(1ms));
    EXPECT_GE(std::chrono::steady_clock::now() - started, 30ms);
    // A consumer asleep with no safety net worth the name: only the
    // producer's wake-up can end its wait in time.
    q.set_wait_options({.strategy = shmds::wait_strategy::sleep, .recheck_after = 600s});
    const pid_t producer = spawn([&] {
        shmds::posix_shm mine(name_.str());
        shm_message_queue p(mine, "m");
        std::this_thread::sleep_for(50ms);
        for (int i = 0; i < 200; ++i) p.send(bytes_of("message " + std::to_string(i)));
    });
    for (int i = 0; i < 200; ++i) {
        std::optional<std::size_t> got;
        if (i % 2 == 0) {
            got = q.receive(buffer);
        } else {
            auto loan = q.try_peek_for(60s);
            ASSERT_TRUE(loan) << "message " << i;
            got = loan.size();
            std::memcpy(buffer, loan.data(), loan.size());
            loan.release();
        }
        ASSERT_EQ(text_of(std::span(buffer, *got)), "message " + std::to_string(i));
    }
    EXPECT_EQ(wait_child(producer), 0);
    EXPECT_EQ(shmds::detail::recovered_lost_wakeups.load(), 0u);

    // The producer side: full, then woken by a consumer in another process.
    shm_message_queue p(seg_, "full", 64, 16);
    p.set_wait_options({.strategy = shmds::wait_strategy::sleep, .recheck_after = 600s});
    while (p.try_send(bytes_of("0123456789"))) {
    }
    EXPECT_FALSE(p.try_send_for(bytes_of("0123456789"), 20ms));
    EXPECT_FALSE(p.try_reserve_for(10, 1ms));
    const pid_t consumer = spawn([&] {
        shmds::posix_shm mine(name_.str());
        shm_message_queue c(mine, "full");
        std::this_thread::sleep_for(50ms);
        for (int i = 0; i < 2 + 97; ++i)
            CHILD_CHECK(c.try_receive_for(std::span<std::byte>(buffer), 60s).has_value());
    });
    for (int i = 0; i < 97; ++i) {
        auto loan = p.reserve(10);
        std::memcpy(loan.data(), "abcdefghij", 10);
        loan.commit();
    }
    EXPECT_EQ(wait_child(consumer), 0);
    EXPECT_EQ(shmds::detail::recovered_lost_wakeups.load(), 0u);
}

TEST_F(MessageQueue, AProducerKilledHoldingALoanLosesOnlyThatMessage) {
    shm_message_queue q(seg_, "m", 256, 40);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name_.str());
                  shm_message_queue p(mine, "m");
                  CHILD_CHECK(p.try_send(bytes_of("before")));
                  auto loan = p.try_reserve(30);
                  CHILD_CHECK(loan.size() == 30);
                  std::memset(loan.data(), 'z', 30);
                  ::raise(SIGKILL);
              })),
              killed);
    EXPECT_EQ(text_of(*q.try_receive()), "before");
    EXPECT_FALSE(q.try_receive().has_value()) << "the dead loan published nothing";
    ASSERT_TRUE(q.try_send(bytes_of("after"))) << "the dead producer's role is free";
    EXPECT_EQ(text_of(*q.try_receive()), "after");
}

TEST_F(MessageQueue, AConsumerKilledHoldingAPeekLosesNothing) {
    shm_message_queue q(seg_, "m", 256, 40);
    ASSERT_TRUE(q.try_send(bytes_of("one")));
    ASSERT_TRUE(q.try_send(bytes_of("two")));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name_.str());
                  shm_message_queue c(mine, "m");
                  auto loan = c.try_peek();
                  CHILD_CHECK(loan && loan.size() == 3);
                  ::raise(SIGKILL);
              })),
              killed);
    EXPECT_EQ(text_of(*q.try_receive()), "one");
    EXPECT_EQ(text_of(*q.try_receive()), "two");
}

TEST_F(MessageQueue, ExecedProgramsMoveMessagesOfRandomLengthsWhole) {
    // Both ends exec()ed: the segment maps at different addresses in each,
    // and every message is checked by the receiver against its number.
    constexpr std::size_t max = 3000;
    constexpr int count = 20000;
    shm_message_queue q(seg_, "m", 16384, max);
    const std::string n = std::to_string(count);
    const pid_t consumer = shmds_test::exec_child(
        shmds_test::program_command(SHMDS_TEST_PEER, {"receive-messages", name_.str(), "m", n, "7"}), -1, -1);
    const pid_t producer = shmds_test::exec_child(
        shmds_test::program_command(SHMDS_TEST_PEER, {"send-messages", name_.str(), "m", n, "7"}), -1, -1);
    EXPECT_EQ(wait_child(producer), 0);
    EXPECT_EQ(wait_child(consumer), 0) << "the receiver found a message out of order or damaged (exit 6)";
    EXPECT_TRUE(q.empty());
}

TEST_F(MessageQueue, AHostileHeaderIsReportedAndNeverLeadsOutsideTheRing) {
    // Another process writes over the record headers: every kind of bad
    // header is a corrupted_error naming the offset, and the queue's
    // positions stay where they were.
    namespace d = shmds::detail;
    shm_message_queue q(seg_, "m", 128, 40);
    const auto info = seg_.table().find("m");
    ASSERT_TRUE(info.has_value());
    std::byte* const ring =
        static_cast<std::byte*>(seg_.base()) + info->offset + d::message_layout::elements_offset;
    auto poke = [&](std::uint64_t offset, std::uint32_t type, std::uint64_t length) {
        const std::uint64_t word = d::header_word(type, length);
        std::memcpy(ring + offset, &word, 8);
    };
    const std::string m(16, 'm');
    ASSERT_TRUE(q.try_send(bytes_of(m)));  // one record of 24 bytes at offset 0
    struct bad {
        std::uint32_t type;
        std::uint64_t length;
        const char* what;
    };
    for (const bad& b : {bad{0, 16, "unknown record type"}, bad{d::record_message, 41, "largest message"},
                         bad{d::record_message, 24, "published bytes"}, bad{d::record_wrap, 0, "wrap record"},
                         bad{d::record_message, 0xffff'ffff, "largest message"}}) {
        poke(0, b.type, b.length);
        std::byte buffer[64];
        try {
            (void)q.try_receive(buffer);
            ADD_FAILURE() << "header type " << b.type << " length " << b.length << " accepted";
        } catch (const shmds::corrupted_error& e) {
            EXPECT_NE(std::string(e.what()).find(b.what), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("ring offset 0"), std::string::npos) << e.what();
        }
        EXPECT_EQ(q.size_bytes(), 24u) << "nothing moved";
    }
    poke(0, d::record_message, 16);
    EXPECT_EQ(text_of(*q.try_receive()), m) << "mended, the message is there";

    // A tail pushed past the ring, or misaligned, is refused by the consumer.
    auto& control = *reinterpret_cast<d::message_control*>(ring - d::message_layout::elements_offset);
    const std::uint64_t tail = control.tail.load();
    for (std::uint64_t hostile : {tail + 136, tail + 4}) {
        control.tail.store(hostile);
        EXPECT_EQ(code_of([&] { (void)q.try_receive(); }), shmds::errc::corrupted) << hostile;
    }
    control.tail.store(tail);
    // ... and a head moved by another writer, by the producer.
    const std::uint64_t head = control.head.load();
    control.head.store(head + 1000);
    EXPECT_EQ(code_of([&] {
                  shm_message_queue fresh(seg_, "m");
                  (void)fresh;
              }),
              shmds::errc::corrupted)
        << "an opener checks the positions";
    control.head.store(head);
    EXPECT_FALSE(q.try_receive().has_value());
}

}  // namespace message_queue_tests
