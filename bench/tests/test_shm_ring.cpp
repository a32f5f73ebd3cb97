// The cross-process yardstick rings (adapters/shm_ring_channel.hpp): each
// delivers every message once, whole and in order, between processes (the
// MPMC ring also with two senders and two receivers),
// at every capacity it rounds up to and at large payloads, and leaves no
// segment behind; it says it can only spin. A yardstick that lost messages
// would make the library look slow for the wrong reason.
#include <chrono>
#include <cstddef>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "adapters/shm_ring_channel.hpp"
#include "workloads/scenarios.hpp"

namespace {

using shmds_bench::shm_mpmc_ring;
using shmds_bench::shm_spsc_ring;
using shmds_bench::wait_mode;

std::string tag(const char* what) {
    static int counter = 0;
    return std::string("test-ring-") + what + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter++);
}

bool segment_exists(const std::string& name) {
    struct stat st {};
    return ::stat(("/dev/shm" + name).c_str(), &st) == 0;
}

TEST(Yardstick, TheSharedRingDeliversEverythingOnceInOrderAcrossProcesses) {
    for (std::size_t capacity : {2, 3, 64, 100}) {  // (3 and 100 round up to 4 and 128)
        SCOPED_TRACE("capacity " + std::to_string(capacity));
        EXPECT_NO_THROW(shmds_bench::check_delivery<shm_spsc_ring<8>>(
            {.tag = tag("small"), .payload = 8, .capacity = capacity, .wait = wait_mode::spin}, 1, 1, 4000));
    }
    EXPECT_NO_THROW(shmds_bench::check_delivery<shm_spsc_ring<4096>>(
        {.tag = tag("page"), .payload = 4096, .capacity = 16, .wait = wait_mode::spin}, 1, 1, 500));
    EXPECT_NO_THROW(shmds_bench::check_delivery<shm_spsc_ring<65536>>(
        {.tag = tag("large"), .payload = 65536, .capacity = 4, .wait = wait_mode::spin}, 1, 1, 100));
}

TEST(Yardstick, TheSharedRingTimesOutWhenNothingComes) {
    shm_spsc_ring<8> ring({.tag = tag("empty"), .capacity = 8});
    auto receiver = ring.open_receiver();
    std::byte bytes[8];
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(receiver.receive_for(bytes, std::chrono::milliseconds(20)));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
}

TEST(Yardstick, TheSharedRingOnlySpinsAndLeavesNoSegment) {
    EXPECT_TRUE(shm_spsc_ring<8>::supports(wait_mode::spin));
    EXPECT_FALSE(shm_spsc_ring<8>::supports(wait_mode::spin_then_sleep));
    EXPECT_FALSE(shm_spsc_ring<8>::supports(wait_mode::sleep));
    EXPECT_EQ(shm_spsc_ring<8>::max_senders, 1u);
    EXPECT_EQ(shm_spsc_ring<8>::max_receivers, 1u);
    const std::string name = "/shmds-bench-ring-" + tag("gone");
    {
        shm_spsc_ring<8> ring({.tag = name.substr(std::string("/shmds-bench-ring-").size()), .capacity = 8});
        EXPECT_TRUE(segment_exists(name));
    }
    EXPECT_FALSE(segment_exists(name));
}

TEST(Yardstick, TheSharedMpmcRingDeliversEverythingOnceInEachSendersOrder) {
    for (std::size_t capacity : {2, 3, 64, 100}) {  // (3 and 100 round up to 4 and 128)
        SCOPED_TRACE("capacity " + std::to_string(capacity));
        EXPECT_NO_THROW(shmds_bench::check_delivery<shm_mpmc_ring<8>>(
            {.tag = tag("mpmc-small"), .payload = 8, .capacity = capacity, .wait = wait_mode::spin}, 1, 1,
            4000));
    }
    // Two of each side, on two CPUs: spinning members beyond them slow the
    // run down but cannot change what is delivered.
    EXPECT_NO_THROW(shmds_bench::check_delivery<shm_mpmc_ring<8>>(
        {.tag = tag("mpmc-2x2"), .payload = 8, .capacity = 16, .wait = wait_mode::spin}, 2, 2, 2000));
    EXPECT_NO_THROW(shmds_bench::check_delivery<shm_mpmc_ring<4096>>(
        {.tag = tag("mpmc-page"), .payload = 4096, .capacity = 16, .wait = wait_mode::spin}, 1, 1, 500));
}

TEST(Yardstick, TheSharedMpmcRingTimesOutWhenNothingComesAndOnlySpins) {
    {
        shm_mpmc_ring<8> ring({.tag = tag("mpmc-empty"), .capacity = 8});
        auto receiver = ring.open_receiver();
        std::byte bytes[8];
        const auto start = std::chrono::steady_clock::now();
        EXPECT_FALSE(receiver.receive_for(bytes, std::chrono::milliseconds(20)));
        EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(shm_mpmc_ring<8>::supports(wait_mode::spin));
    EXPECT_FALSE(shm_mpmc_ring<8>::supports(wait_mode::spin_then_sleep));
    EXPECT_FALSE(shm_mpmc_ring<8>::supports(wait_mode::sleep));
    const std::string prefix = "/shmds-bench-mpmc-ring-";
    const std::string name = prefix + tag("mpmc-gone");
    {
        shm_mpmc_ring<8> ring({.tag = name.substr(prefix.size()), .capacity = 8});
        EXPECT_TRUE(segment_exists(name));
    }
    EXPECT_FALSE(segment_exists(name));
}

}  // namespace
