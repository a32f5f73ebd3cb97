// The multi-process harness: a member that crashes, throws or hangs fails
// the run with a message naming it, and nothing is left behind (no child, no
// zombie, no segment). Each case runs inside a forked "parent" so that its
// children can be counted without the test runner's own.
#include <array>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "adapters/shmds_channels.hpp"
#include "harness/team.hpp"
#include "workloads/scenarios.hpp"

namespace {

using namespace std::chrono_literals;
using shmds_bench::team;

/// Runs `body` in a forked process and returns what it wrote to `report`
/// (an empty string means the checks inside passed).
std::string in_isolated_parent(const std::function<std::string()>& body) {
    int out[2];
    if (::pipe(out) != 0) return "pipe failed";
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(out[0]);
        std::string result;
        try {
            result = body();
        } catch (const std::exception& e) {
            result = std::string("threw: ") + e.what();
        }
        // Nothing of the run may be left: no child, running or zombie.
        int status = 0;
        if (::waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD) result += " | a child was left behind";
        (void)!::write(out[1], result.data(), result.size());
        ::_exit(0);
    }
    ::close(out[1]);
    std::string result;
    char buffer[512];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;)
        result.append(buffer, static_cast<std::size_t>(n));
    ::close(out[0]);
    ::waitpid(pid, nullptr, 0);
    return result;
}

TEST(Team, ACrashedMemberFailsTheRunByNameAndTheOthersAreKilled) {
    const std::string result = in_isolated_parent([] {
        std::string failure;
        {
            team t(60s);
            t.spawn("steady consumer", -1, [&] {
                t.arrive_and_wait();
                for (;;) ::pause();  // never finishes on its own
            });
            t.spawn("doomed producer", -1, [&] {
                t.arrive_and_wait();
                ::raise(SIGKILL);
            });
            if (!t.release_when_all_arrived()) return std::string("did not start");
            failure = t.wait();
        }
        if (failure.find("'doomed producer'") == std::string::npos ||
            failure.find("signal 9") == std::string::npos)
            return "unexpected report: " + failure;
        return std::string();
    });
    EXPECT_EQ(result, "");
}

TEST(Team, AThrowingMemberReportsItsMessage) {
    const std::string result = in_isolated_parent([] {
        team t(60s);
        t.spawn("thrower", -1, [&] {
            t.arrive_and_wait();
            throw std::runtime_error("the queue said no");
        });
        t.spawn("waiter", -1, [&] { t.arrive_and_wait(); });
        t.release_when_all_arrived();
        const std::string failure = t.wait();
        if (failure.find("'thrower'") == std::string::npos ||
            failure.find("the queue said no") == std::string::npos)
            return "unexpected report: " + failure;
        return std::string();
    });
    EXPECT_EQ(result, "");
}

TEST(Team, AMemberThatNeverArrivesOrHangsIsKilledAtTheDeadline) {
    const std::string result = in_isolated_parent([] {
        team t(1s);
        t.spawn("sleeper", -1, [&] { std::this_thread::sleep_for(1h); });
        if (t.release_when_all_arrived()) return std::string("released although a member never arrived");
        const std::string failure = t.wait();
        if (failure.find("timed out") == std::string::npos) return "unexpected report: " + failure;
        return std::string();
    });
    EXPECT_EQ(result, "");
}

/// A channel whose receivers die: the scenario must fail cleanly and the
/// channel's segment must be gone afterwards.
template <std::size_t N>
struct dying_channel : shmds_bench::shmds_spsc<N> {
    using shmds_bench::shmds_spsc<N>::shmds_spsc;
    static std::string name() { return "dying"; }
    auto open_receiver() const {
        ::raise(SIGKILL);
        return shmds_bench::shmds_spsc<N>::open_receiver();
    }
};

TEST(Team, AFailedScenarioLeavesNoSegmentBehind) {
    const std::string tag = "test-" + std::to_string(::getpid());
    const std::string result = in_isolated_parent([&] {
        try {
            shmds_bench::run_throughput<dying_channel<8>>(
                {.tag = tag, .payload = 8, .capacity = 64, .wait = shmds_bench::wait_mode::spin}, 1, 1,
                std::chrono::hours(1), 1000);
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()).find("'receiver 0'") == std::string::npos)
                return std::string("unexpected report: ") + e.what();
            return std::string();
        }
        return std::string("the scenario did not fail");
    });
    EXPECT_EQ(result, "");
    EXPECT_FALSE(std::filesystem::exists("/dev/shm/shmds-bench-" + tag));
}

TEST(Team, AHealthyScenarioDeliversEverything) {
    const std::string result = in_isolated_parent([] {
        const auto r = shmds_bench::run_throughput<shmds_bench::shmds_mpmc<64>>(
            {.tag = "test-ok-" + std::to_string(::getpid()),
             .payload = 64,
             .capacity = 128,
             .wait = shmds_bench::wait_mode::spin_then_sleep},
            2, 2, std::chrono::hours(1), 20000);
        if (r.messages != 20000 || !(r.seconds > 0)) return std::string("bad result");
        const auto p = shmds_bench::run_ping_pong<shmds_bench::shmds_spsc<8>>(
            {.tag = "test-pp-" + std::to_string(::getpid()),
             .payload = 8,
             .capacity = 16,
             .wait = shmds_bench::wait_mode::spin},
            1000);
        if (p.histogram.count() != 1000)
            return std::string("ping-pong recorded ") + std::to_string(p.histogram.count());
        return std::string();
    });
    EXPECT_EQ(result, "");
}

}  // namespace

// ---- the delivery check that every channel passes before it is timed ---------------------------

/// An SPSC channel made wrong on purpose: its sender drops, duplicates,
/// reorders or garbles messages, as a broken adapter might.
enum class fault { none, drop, duplicate, reorder, garble };

template <fault F>
struct broken {
    template <std::size_t N>
    struct channel : shmds_bench::shmds_spsc<N> {
        using shmds_bench::shmds_spsc<N>::shmds_spsc;
        static std::string name() { return "broken"; }
        struct sender {
            decltype(std::declval<shmds_bench::shmds_spsc<N>&>().open_sender()) inner;
            std::uint64_t count = 0;
            std::array<std::byte, N> held{};
            void send(const std::byte* bytes) {
                ++count;
                std::array<std::byte, N> copy;
                std::memcpy(copy.data(), bytes, N);
                if (F == fault::drop && count % 100 == 0) return;
                if (F == fault::garble && count % 100 == 0) copy[N - 1] ^= std::byte{1};
                if (F == fault::reorder && count % 100 == 1) {  // hold one back, send it after the next
                    held = copy;
                    return;
                }
                inner.send(copy.data());
                if (F == fault::reorder && count % 100 == 2) inner.send(held.data());
                if (F == fault::duplicate && count % 100 == 0) inner.send(copy.data());
            }
        };
        sender open_sender() const { return sender{shmds_bench::shmds_spsc<N>::open_sender()}; }
    };
};

template <fault F>
std::string delivery_verdict() {
    return in_isolated_parent([] {
        try {
            shmds_bench::check_delivery<typename broken<F>::template channel<64>>(
                {.tag = "test-dc-" + std::to_string(::getpid()),
                 .payload = 64,
                 .capacity = 128,
                 .wait = shmds_bench::wait_mode::spin},
                1, 1, 1000);
            return std::string("passed");
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
    });
}

TEST(DeliveryCheck, PassesAWorkingChannel) {
    EXPECT_EQ(delivery_verdict<fault::none>(), "passed");
    const std::string stack = in_isolated_parent([] {
        // Many senders and receivers, and a stack (no order to keep).
        shmds_bench::check_delivery<shmds_bench::shmds_stack<8>>(
            {.tag = "test-dcs-" + std::to_string(::getpid()),
             .payload = 8,
             .capacity = 64,
             .wait = shmds_bench::wait_mode::spin_then_sleep},
            2, 2, 1000);
        return std::string("passed");
    });
    EXPECT_EQ(stack, "passed");
}

TEST(DeliveryCheck, RejectsABrokenChannelSayingWhatWentWrong) {
    EXPECT_NE(delivery_verdict<fault::drop>().find("10 missing"), std::string::npos)
        << delivery_verdict<fault::drop>();
    EXPECT_NE(delivery_verdict<fault::duplicate>().find("duplicated"), std::string::npos);
    EXPECT_NE(delivery_verdict<fault::reorder>().find("out of its sender's order"), std::string::npos);
    EXPECT_NE(delivery_verdict<fault::garble>().find("garbled"), std::string::npos);
}
