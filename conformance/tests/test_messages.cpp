// Message queues (MSG-001..006), for any implementation that claims them
// (shmconf::has_message_queues): messages of every length whole and in
// order across many wraps of the storage (MSG-001), a message over the
// largest refused with nothing lost (MSG-002), room counted in bytes
// (MSG-003), exec()ed sender and receiver (MSG-004), a sender held still
// just after each message became visible, and senders and receivers killed
// mid-stream (MSG-005), and every mismatch at open (MSG-006).
#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "messages_support.hpp"
#include "process_support.hpp"
#include "support.hpp"

namespace shmconf_message_tests {

using shmconf::error_category;
using shmconf_process_tests::actor;
using shmconf_tests::fresh_segment;
using shmconf_tests::impl;
using shmconf_tests::numbered_message;

// Each test's body is a template over the adapter, so that an adapter
// without message queues compiles (the body is discarded) and reports
// UNSUPPORTED.
#define MESSAGE_QUEUES_OR_UNSUPPORTED()                                                   \
    do {                                                                                  \
        UNSUPPORTED_UNLESS(impl::caps.message_queue, "message queues are not claimed");   \
        UNSUPPORTED_UNLESS(shmconf::has_message_queues<impl>,                             \
                           "the adapter has no make_message_queue / find_message_queue"); \
    } while (0)

std::span<const std::byte> bytes_of(const std::vector<std::byte>& m) {
    return {m.data(), m.size()};
}

/// Every length from 0 to the largest, sent and received through a queue
/// of room for only a few, many times round: every padding and wrap point
/// an implementation may have comes up.
template <class A>
void every_length_arrives_whole_in_order_and_once() {
    if constexpr (shmconf::has_message_queues<A>) {
        for (std::size_t largest : {std::size_t{1}, std::size_t{13}, std::size_t{200}}) {
            SCOPED_TRACE("largest " + std::to_string(largest));
            fresh_segment name;
            auto seg = A::create(name.name(), 4 << 20);
            auto q = A::make_message_queue(seg, "m", 4 * (largest + 64), largest);
            ASSERT_EQ(q.max_message_size(), largest);
            std::uint64_t sent = 0, received = 0;
            const auto receive_one = [&] {
                const std::optional<std::vector<std::byte>> m = q.try_receive();
                if (!m) return false;
                const std::vector<std::byte> expected =
                    numbered_message(received % (largest + 1), received, 5);
                EXPECT_EQ(*m, expected) << "message " << received << " (" << expected.size() << " bytes)";
                ++received;
                return true;
            };
            for (int lap = 0; lap < 40; ++lap) {
                for (std::size_t k = 0; k <= largest; ++k) {
                    const std::vector<std::byte> m = numbered_message(sent % (largest + 1), sent, 5);
                    while (!q.try_send(bytes_of(m)))
                        ASSERT_TRUE(receive_one()) << "message " << sent << " refused by an empty queue";
                    ++sent;
                }
            }
            while (receive_one()) {
            }
            EXPECT_EQ(received, sent) << "every message once";
            EXPECT_FALSE(q.try_receive().has_value());
        }
    }
}
TEST(Messages, EveryLengthArrivesWholeInOrderAndOnce) {
    CHECKS_REQUIREMENTS("MSG-001");
    MESSAGE_QUEUES_OR_UNSUPPORTED();
    every_length_arrives_whole_in_order_and_once<impl>();
}

template <class A>
void a_message_over_the_largest_is_refused_and_nothing_is_lost() {
    if constexpr (shmconf::has_message_queues<A>) {
        fresh_segment name;
        auto seg = A::create(name.name(), 1 << 20);
        auto q = A::make_message_queue(seg, "m", 4 * (32 + 64), 32);
        const std::vector<std::byte> kept = numbered_message(32, 1, 0), over = numbered_message(33, 2, 0);
        ASSERT_TRUE(q.try_send(bytes_of(kept)));
        EXPECT_EQ(shmconf::category_of<A>([&] { (void)q.try_send(bytes_of(over)); }),
                  error_category::invalid_size);
        const std::vector<std::byte> far_over(4096, std::byte{9});
        EXPECT_EQ(shmconf::category_of<A>([&] { (void)q.try_send(bytes_of(far_over)); }),
                  error_category::invalid_size);
        EXPECT_EQ(q.try_receive(), kept) << "the message stored before is intact";
        EXPECT_FALSE(q.try_receive().has_value()) << "nothing of the refused messages was stored";
        ASSERT_TRUE(q.try_send(bytes_of(kept))) << "the queue still works";
        EXPECT_EQ(q.try_receive(), kept);
    }
}
TEST(Messages, AMessageOverTheLargestIsRefusedAndNothingIsLost) {
    CHECKS_REQUIREMENTS("MSG-002");
    MESSAGE_QUEUES_OR_UNSUPPORTED();
    a_message_over_the_largest_is_refused_and_nothing_is_lost<impl>();
}

/// Room is counted in bytes: many short messages fit where few long ones
/// do, the queue refuses (false, not an error) when full, holds no more
/// bytes of messages than its capacity, and takes the largest message again
/// once drained.
template <class A>
void room_is_counted_in_bytes() {
    if constexpr (shmconf::has_message_queues<A>) {
        constexpr std::size_t largest = 512, capacity = 4 * (largest + 64);
        fresh_segment name;
        auto seg = A::create(name.name(), 1 << 20);
        auto q = A::make_message_queue(seg, "m", capacity, largest);
        for (int round = 0; round < 3; ++round) {
            SCOPED_TRACE("round " + std::to_string(round));
            std::size_t long_ones = 0, short_ones = 0;
            const std::vector<std::byte> long_message(largest, std::byte{1}), short_message(8, std::byte{2});
            while (q.try_send(bytes_of(long_message))) ASSERT_LE(++long_ones, capacity / largest);
            EXPECT_GE(long_ones, 1u) << "an empty queue takes a message of the largest size";
            EXPECT_EQ(shmconf::category_of<A>([&] { (void)q.try_send(bytes_of(long_message)); }),
                      error_category::none)
                << "full is an answer (false), not an error";
            while (q.try_receive()) {
            }
            while (q.try_send(bytes_of(short_message))) ASSERT_LE(++short_ones, capacity / 8);
            EXPECT_GT(short_ones, 2 * long_ones) << "short messages take less room than long ones";
            std::size_t received = 0;
            while (auto m = q.try_receive()) {
                EXPECT_EQ(*m, short_message);
                ++received;
            }
            EXPECT_EQ(received, short_ones);
        }
    }
}
TEST(Messages, RoomIsCountedInBytes) {
    CHECKS_REQUIREMENTS("MSG-003");
    MESSAGE_QUEUES_OR_UNSUPPORTED();
    room_is_counted_in_bytes<impl>();
}

template <class A>
void every_mismatch_at_open_is_refused() {
    if constexpr (shmconf::has_message_queues<A>) {
        fresh_segment name;
        auto seg = A::create(name.name(), 1 << 20);
        {
            auto q = A::make_message_queue(seg, "m", 4096, 100);
            ASSERT_TRUE(q.try_send(bytes_of(numbered_message(100, 7, 1))));
        }
        EXPECT_EQ(shmconf::category_of<A>([&] { (void)A::make_message_queue(seg, "m", 8192, 100); }),
                  error_category::mismatch)
            << "another capacity";
        EXPECT_EQ(shmconf::category_of<A>([&] { (void)A::make_message_queue(seg, "m", 4096, 101); }),
                  error_category::mismatch)
            << "a larger largest message";
        EXPECT_EQ(shmconf::category_of<A>([&] { (void)A::make_message_queue(seg, "m", 4096, 99); }),
                  error_category::mismatch)
            << "a smaller largest message";
        EXPECT_EQ(shmconf::category_of<A>([&] { (void)A::find_message_queue(seg, "absent"); }),
                  error_category::not_found);
        auto found = A::find_message_queue(seg, "m");
        EXPECT_EQ(found.max_message_size(), 100u) << "learnt from the segment";
        EXPECT_EQ(found.try_receive(), numbered_message(100, 7, 1)) << "the message is still there";
    }
}
TEST(Messages, EveryMismatchAtOpenIsRefused) {
    CHECKS_REQUIREMENTS("MSG-006");
    MESSAGE_QUEUES_OR_UNSUPPORTED();
    every_mismatch_at_open_is_refused<impl>();
}

/// A sender and a receiver exec()ed (the segment maps at addresses of their
/// own in each), messages of random lengths, each checked by the receiver.
template <class A>
void execed_sender_and_receiver_move_messages_whole() {
    if constexpr (shmconf::has_message_queues<A>) {
        constexpr std::size_t largest = 700;
        const std::string count = "4000";
        fresh_segment name;
        auto seg = A::create(name.name(), 4 << 20);
        auto q = A::make_message_queue(seg, "m", 4 * (largest + 64), largest);
        actor receiver({name.name(), "receive-messages", "m", count, "11"});
        actor sender({name.name(), "send-messages", "m", count, "11"});
        EXPECT_EQ(sender.wait(), 0);
        EXPECT_EQ(receiver.line(), "received " + count + " in order")
            << "the receiver found a damaged message";
        EXPECT_EQ(receiver.wait(), 0);
        EXPECT_FALSE(q.try_receive().has_value());
    }
}
TEST(Messages, ExecedSenderAndReceiverMoveMessagesWhole) {
    CHECKS_REQUIREMENTS("MSG-004");
    MESSAGE_QUEUES_OR_UNSUPPORTED();
    execed_sender_and_receiver_move_messages_whole<impl>();
}

/// A sender held still just after each message became visible (with an
/// adapter that can hold it there): the receiver finds each one whole.
/// Then a sender killed at a random moment of a stream, round after round: what
/// arrives is whole, in order, without gaps; at most the message it was
/// sending is lost (it is never seen half-written); a successor sends on.
/// Then a receiver killed mid-stream: the next receiver goes on where it
/// stopped, missing at most the message it was taking.
template <class A>
void killed_senders_and_receivers_lose_at_most_their_message() {
    if constexpr (shmconf::has_message_queues<A>) {
        constexpr std::size_t largest = 300;
        fresh_segment name;
        auto seg = A::create(name.name(), 4 << 20);
        { auto created = A::make_message_queue(seg, "m", 4 * (largest + 64), largest); }
        std::uint64_t next = 0;  // the number of the next message to expect
        // First a sender held still right after each message became visible
        // (where the adapter can hold it): a receiver polling meanwhile must
        // find the message whole, already written.
        if (shmconf_process_tests::stall_here<A>("send.published", std::chrono::milliseconds(0))) {
            constexpr std::uint64_t held = 40;
            std::fflush(nullptr);
            const pid_t sender = ::fork();
            ASSERT_GE(sender, 0);
            if (sender == 0) {
                auto mine = A::open(name.name());
                auto c = A::find_message_queue(mine, "m");
                (void)shmconf_process_tests::stall_here<A>("send.published", std::chrono::milliseconds(2));
                for (std::uint64_t i = 0; i < held; ++i) {
                    const auto m = numbered_message(largest - i % 8, i, 3);
                    while (!c.try_send(bytes_of(m))) {
                    }
                }
                ::_exit(0);
            }
            // Killed however this phase ends (a failed check returns early,
            // and a sender left behind would spin on a full queue for ever).
            struct kill_at_exit {
                pid_t pid;
                ~kill_at_exit() {
                    ::kill(pid, SIGKILL);
                    ::waitpid(pid, nullptr, 0);
                }
            };
            auto q = A::find_message_queue(seg, "m");
            const kill_at_exit guard{sender};
            for (; next < held; ++next) {
                std::optional<std::vector<std::byte>> m;
                while (!(m = q.try_receive())) {
                }
                ASSERT_EQ(*m, numbered_message(largest - next % 8, next, 3))
                    << "message " << next << " was received before its sender had written it";
            }
        }
        std::mt19937_64 rng(5);
        for (int round = 0; round < 12; ++round) {
            SCOPED_TRACE("round " + std::to_string(round));
            const bool kill_sender = round % 2 == 0;
            // This round's handle: its roles (if the implementation has
            // any) end with the round, so that the next child can take them.
            auto q = A::find_message_queue(seg, "m");
            const std::uint64_t from = next;
            std::fflush(nullptr);
            const pid_t child = ::fork();
            ASSERT_GE(child, 0);
            if (child == 0) {
                auto mine = A::open(name.name());
                auto c = A::find_message_queue(mine, "m");
                for (std::uint64_t i = from;; ++i) {
                    if (kill_sender) {
                        const auto m = numbered_message(i % (largest + 1), i, 3);
                        while (!c.try_send(bytes_of(m))) {
                        }
                    } else {
                        while (!c.try_receive()) {
                        }
                    }
                }
            }
            const auto killed_after = std::chrono::microseconds(200 + rng() % 3000);
            if (kill_sender) {
                // Receive while it sends, then kill it mid-stream.
                const auto until = std::chrono::steady_clock::now() + killed_after;
                while (std::chrono::steady_clock::now() < until) {
                    if (auto m = q.try_receive()) {
                        ASSERT_EQ(*m, numbered_message(next % (largest + 1), next, 3)) << "message " << next;
                        ++next;
                    }
                }
                ::kill(child, SIGKILL);
                ::waitpid(child, nullptr, 0);
                while (auto m = q.try_receive()) {
                    ASSERT_EQ(*m, numbered_message(next % (largest + 1), next, 3)) << "message " << next;
                    ++next;
                }
                // A successor sends the next numbers: the one the dead
                // sender was sending (never seen) is skipped only if it was lost.
                const auto m = numbered_message(next % (largest + 1), next, 3);
                ASSERT_TRUE(q.try_send(bytes_of(m))) << "the dead sender holds nobody up";
                ASSERT_EQ(q.try_receive(), m);
                ++next;
            } else {
                // Fill the queue, let the child receive for a while, kill it.
                std::uint64_t sent = next;
                for (;; ++sent) {
                    const auto m = numbered_message(sent % (largest + 1), sent, 3);
                    if (!q.try_send(bytes_of(m))) break;
                }
                const auto until = std::chrono::steady_clock::now() + killed_after;
                while (std::chrono::steady_clock::now() < until) {
                    const auto m = numbered_message(sent % (largest + 1), sent, 3);
                    if (q.try_send(bytes_of(m))) ++sent;
                }
                ::kill(child, SIGKILL);
                ::waitpid(child, nullptr, 0);
                // The child took some from the front; what is left is the
                // rest, in order, possibly with the message it was taking
                // still there.
                std::optional<std::uint64_t> first;
                while (auto m = q.try_receive()) {
                    if (!first) {
                        for (std::uint64_t k = next; k < sent; ++k)
                            if (*m == numbered_message(k % (largest + 1), k, 3)) first = k;
                        ASSERT_TRUE(first.has_value()) << "the front is none of the messages sent";
                        next = *first;
                    }
                    ASSERT_EQ(*m, numbered_message(next % (largest + 1), next, 3)) << "message " << next;
                    ++next;
                }
                ASSERT_EQ(next, first ? sent : next) << "everything after the front arrived";
                next = sent;
            }
        }
    }
}
TEST(Messages, KilledSendersAndReceiversLoseAtMostTheirMessage) {
    CHECKS_REQUIREMENTS("MSG-005");
    MESSAGE_QUEUES_OR_UNSUPPORTED();
    killed_senders_and_receivers_lose_at_most_their_message<impl>();
}

}  // namespace shmconf_message_tests
