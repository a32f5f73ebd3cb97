// Every comparison peer delivers every message once, whole and in order,
// for every way of waiting it supports and for every shape (senders x
// receivers) it claims, small and large payloads: the same check the
// benchmark runs before timing it, here as a test so that a broken adapter
// fails CI rather than showing up as a flattering (or damning) number.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include "peers/boost_channels.hpp"
#include "peers/kernel_channels.hpp"
#include "workloads/scenarios.hpp"
#if SHMDS_WITH_MESSAGING
#include "peers/nng_channels.hpp"
#include "peers/zeromq_channels.hpp"
#endif

namespace {

using shmds_bench::wait_mode;

std::string tag(const char* what) {
    static int counter = 0;
    return std::string("test-peer-") + what + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter++);
}

template <template <std::size_t> class Channel>
void check_every_way(const char* what) {
    for (auto wait : {wait_mode::spin, wait_mode::spin_then_sleep, wait_mode::sleep}) {
        if constexpr (requires { Channel<8>::supports(wait); }) {
            if (!Channel<8>::supports(wait)) continue;
        }
        SCOPED_TRACE(std::string(what) + " waiting by " + shmds_bench::to_string(wait));
        EXPECT_NO_THROW(shmds_bench::check_delivery<Channel<8>>(
            {.tag = tag(what), .payload = 8, .capacity = 64, .wait = wait}, 1, 1, 2000));
        // As one direction of the ping-pong workload's round trips (which
        // some peers carry over another socket type).
        EXPECT_NO_THROW(shmds_bench::check_delivery<Channel<8>>(
            {.tag = tag(what), .payload = 8, .capacity = 64, .wait = wait, .round_trip = true}, 1, 1, 2000));
        // Several senders, several receivers, as far as the peer takes them.
        const std::size_t senders = std::min<std::size_t>(Channel<8>::max_senders, 2);
        const std::size_t receivers = std::min<std::size_t>(Channel<8>::max_receivers, 2);
        if (senders * receivers > 1) {
            EXPECT_NO_THROW(shmds_bench::check_delivery<Channel<8>>(
                {.tag = tag(what), .payload = 8, .capacity = 64, .wait = wait}, senders, receivers, 2000));
        }
        if constexpr (requires { Channel<65536>::unavailable(); }) {
            if (const std::string why = Channel<65536>::unavailable(); !why.empty()) {
                // The kernel's own limit, not the adapter's fault: check the
                // largest size it takes instead, and say so.
                std::printf("note: %s; checking 4096-byte messages instead\n", why.c_str());
                EXPECT_NO_THROW(shmds_bench::check_delivery<Channel<4096>>(
                    {.tag = tag(what), .payload = 4096, .capacity = 16, .wait = wait}, 1, 1, 200));
                continue;
            }
        }
        EXPECT_NO_THROW(shmds_bench::check_delivery<Channel<65536>>(
            {.tag = tag(what), .payload = 65536, .capacity = 16, .wait = wait}, 1, 1, 200));
    }
}

TEST(Peers, PipeDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::pipe_channel>("pipe");
}
TEST(Peers, UnixSocketDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::unix_socket_channel>("socket");
}
TEST(Peers, PosixMessageQueueDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::posix_mq_channel>("mq");
}
TEST(Peers, BoostMessageQueueDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::boost_message_queue>("bmq");
}
TEST(Peers, BoostLockedRingDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::boost_locked_ring>("bring");
}
TEST(Peers, BoostLockfreeSpscDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::boost_lockfree_spsc>("blf");
}

#if SHMDS_WITH_MESSAGING  // (not in the ARM64 stage: compare/CMakeLists.txt)
TEST(Peers, ZeroMQDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::zeromq_channel>("zmq");
}
TEST(Peers, NngDeliversEverythingOnceInOrder) {
    check_every_way<shmds_compare::nng_channel>("nng");
}
#endif

/// The ping-pong workload over a peer: every round trip comes back, for
/// every way of waiting (ZeroMQ and NNG carry them over PAIR sockets).
template <template <std::size_t> class Channel>
void check_round_trips(const char* what) {
    constexpr std::uint64_t round_trips = 500;
    for (auto wait : {wait_mode::spin, wait_mode::spin_then_sleep, wait_mode::sleep}) {
        SCOPED_TRACE(std::string(what) + " waiting by " + shmds_bench::to_string(wait));
        shmds_bench::latency_result r;
        ASSERT_NO_THROW(r = shmds_bench::run_ping_pong<Channel<8>>(
                            {.tag = tag(what), .payload = 8, .capacity = 64, .wait = wait}, round_trips));
        EXPECT_EQ(r.messages, round_trips);
        EXPECT_EQ(r.histogram.count(), round_trips);
    }
}

#if SHMDS_WITH_MESSAGING
TEST(Peers, ZeroMQBouncesEveryRoundTrip) {
    check_round_trips<shmds_compare::zeromq_channel>("zmq-pp");
}
TEST(Peers, NngBouncesEveryRoundTrip) {
    check_round_trips<shmds_compare::nng_channel>("nng-pp");
}

TEST(Peers, MessagingLibrariesTakeManySendersButOneReceiver) {
    // A PULL (pull0) fair-queues its senders; several receivers as well
    // would need a broker, so the harness is told to refuse them.
    EXPECT_EQ(shmds_compare::zeromq_channel<8>::max_senders, 64U);
    EXPECT_EQ(shmds_compare::zeromq_channel<8>::max_receivers, 1U);
    EXPECT_EQ(shmds_compare::nng_channel<8>::max_senders, 64U);
    EXPECT_EQ(shmds_compare::nng_channel<8>::max_receivers, 1U);
    EXPECT_THROW(shmds_bench::run_throughput<shmds_compare::zeromq_channel<8>>(
                     {.tag = tag("zmq"), .payload = 8, .capacity = 64}, 1, 2, std::chrono::milliseconds(10)),
                 std::invalid_argument);
}
#endif

TEST(Peers, APeerThatCannotSleepSaysSo) {
    EXPECT_FALSE(shmds_compare::boost_lockfree_spsc<8>::supports(wait_mode::sleep));
    EXPECT_THROW((shmds_compare::boost_lockfree_spsc<8>(
                     {.tag = tag("blf"), .payload = 8, .capacity = 64, .wait = wait_mode::sleep})),
                 std::invalid_argument);
}

}  // namespace
