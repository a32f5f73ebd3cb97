// shmds/detail/waiting.hpp: how the concurrent structures wait: spin, then
// sleep on a futex in the segment.
//
// Protocol (no lost wake-ups). A wait_channel is a futex word `sequence` and
// the set of `sleepers`, in shared memory.
//   waker:   publish the change; light fence; if any sleeper: bump
//            sequence, futex_wake.
//   sleeper: add itself to sleepers; heavy fence; s = sequence; try the
//            operation again; if it still cannot proceed,
//            futex_wait(sequence, s); try again; leave sleepers.
// Either the waker's check follows the sleeper's announcement (it sees a
// sleeper and wakes), or the waker's publication precedes the heavy
// fence (the sleeper's retry sees it). A bump between reading `s` and
// futex_wait makes futex_wait return at once. futex(2) is used without
// FUTEX_PRIVATE_FLAG so that it works across processes; std::atomic::wait
// does not (libstdc++'s is process-private).
//
// As a safety net each futex_wait lasts at most `recheck_after` (200 ms by
// default); a sleeper that wakes from that slice and then succeeds counts a
// recovered lost wake-up, which tests assert never happens.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <thread>
#include <utility>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shmds/config.hpp"
#include "shmds/detail/process.hpp"

namespace shmds {

/// How a blocking call waits for room or for an element.
enum class wait_strategy {
    spin,             ///< poll without sleeping (lowest latency; burns a CPU)
    spin_then_sleep,  ///< poll for `spin_for`, then sleep on a futex
    sleep,            ///< sleep on a futex at once
};

struct wait_options {
    wait_strategy strategy = wait_strategy::spin_then_sleep;
    /// How long spin_then_sleep polls before sleeping.
    std::chrono::nanoseconds spin_for{std::chrono::microseconds(20)};
    /// Safety net: a sleeper looks again after this long even without a
    /// wake-up. Wake-ups are not lost, so this only bounds the damage of a
    /// bug or of processes that disagree about membarrier support; tests set
    /// it very long to prove that no wake-up is missing.
    std::chrono::nanoseconds recheck_after{std::chrono::milliseconds(200)};
};

namespace detail {

/// Most participants (processes or threads with their own handle) that one
/// structure tracks: each has a bit in its wait channels' sleeper sets.
inline constexpr std::uint32_t max_participants = 128;

/// A futex word and the set of sleeping participants, on a cache line of
/// their own. A participant announces and retracts itself with one atomic
/// bit operation, so one that dies asleep leaves only its own bit set, which
/// the next holder of its participant id clears.
struct alignas(cache_line_size) wait_channel {
    std::atomic<std::uint32_t> sequence;
    std::uint32_t reserved;
    std::atomic<std::uint64_t> sleepers[max_participants / 64];

    bool anyone_asleep() const noexcept {
        std::uint64_t any = 0;
        for (const auto& word : sleepers) any |= word.load(std::memory_order_relaxed);
        return any != 0;
    }
    void announce(std::uint32_t participant) noexcept {
        sleepers[participant / 64].fetch_or(std::uint64_t{1} << (participant % 64),
                                            std::memory_order_seq_cst);
    }
    void retract(std::uint32_t participant) noexcept {
        sleepers[participant / 64].fetch_and(~(std::uint64_t{1} << (participant % 64)),
                                             std::memory_order_relaxed);
    }
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && sizeof(std::atomic<std::uint32_t>) == 4 &&
                  std::atomic<std::uint64_t>::is_always_lock_free,
              "futex words and sleeper sets are plain words shared between processes");
static_assert(sizeof(wait_channel) == cache_line_size, "a wait channel fills one cache line");

/// Times a sleeper woke from the safety-net slice and then found it could
/// proceed: each is a wake-up that should have come and did not.
inline std::atomic<std::uint64_t> recovered_lost_wakeups{0};

inline long futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr,
                     0);
}

inline void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

/// Waker side: call after publishing a change someone may be waiting for.
/// Costs a compiler barrier and one load when nobody sleeps.
[[gnu::noinline, gnu::cold]] inline void wake(wait_channel& channel, int count) noexcept {
    channel.sequence.fetch_add(1, std::memory_order_release);
    futex_wake(channel.sequence, count);
}

inline void notify(wait_channel& channel, int count = 1) noexcept {
    asymmetric_fence::light();
    if (channel.anyone_asleep()) [[unlikely]]
        wake(channel, count);
}

using steady_time = std::chrono::steady_clock::time_point;

/// Attempts (each followed by a pause) a spinning waiter makes before it
/// first reads the clock: a microsecond or two.
inline constexpr int quick_spin_rounds = 32;

/// Calls `attempt` until it returns true or `deadline` passes, waiting on
/// `channel` between attempts as `options` says; `participant` is the
/// caller's bit in the channel. Returns whether an attempt succeeded.
/// `attempt` must not block. `before_sleep` runs just before each sleep (a
/// structure may look into what held the attempt up, at a moment when a
/// system call costs nothing extra).
template <class Attempt, class BeforeSleep>
bool wait_for(wait_channel& channel, std::uint32_t participant, const wait_options& options,
              std::chrono::nanoseconds timeout, Attempt&& attempt, BeforeSleep&& before_sleep) {
    using clock = std::chrono::steady_clock;
    if (attempt()) return true;  // the common case reads no clock
    if (options.strategy != wait_strategy::sleep && timeout > std::chrono::nanoseconds::zero()) {
        // A peer answering within a few microseconds is caught here, not
        // behind a clock read (about 30 ns in a VM, on every round trip of a
        // ping-pong). May overrun a timeout shorter than this burst.
        for (int round = 0; round < quick_spin_rounds; ++round) {
            if (attempt()) return true;
            cpu_relax();
        }
    }
    const steady_time deadline = clock::now() + timeout;
    if (options.strategy != wait_strategy::sleep) {
        const auto spin_until = options.strategy == wait_strategy::spin
                                    ? deadline
                                    : std::min(deadline, clock::now() + options.spin_for);
        for (unsigned round = 1;; ++round) {
            if (attempt()) return true;
            if ((round & 63) == 0) {
                if (clock::now() >= spin_until) break;
                if (options.strategy == wait_strategy::spin && (round & 0xffff) == 0) ::sched_yield();
            }
            cpu_relax();
        }
        if (options.strategy == wait_strategy::spin) return attempt();
    }
    // Announced while this object lives, whatever attempt() throws.
    struct announcement {
        wait_channel& channel;
        std::uint32_t participant;
        announcement(wait_channel& c, std::uint32_t p) : channel(c), participant(p) { channel.announce(p); }
        ~announcement() { channel.retract(participant); }
    };
    for (;;) {
        announcement announced(channel, participant);
        asymmetric_fence::heavy();
        const std::uint32_t seen = channel.sequence.load(std::memory_order_acquire);
        if (attempt()) return true;
        before_sleep();
        const auto now = clock::now();
        if (now >= deadline) return false;
        const auto slice = std::min<std::chrono::nanoseconds>(deadline - now, options.recheck_after);
        const long rc = futex_wait(channel.sequence, seen, slice);
        const bool slice_expired = rc != 0 && errno == ETIMEDOUT && clock::now() < deadline;
        // Retry while still announced: a waker that publishes from here on
        // sees us and bumps the sequence.
        if (attempt()) {
            if (slice_expired && channel.sequence.load(std::memory_order_acquire) == seen) {
                // A waker may have published and not bumped yet: give it a
                // moment before calling the wake-up lost.
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
                if (channel.sequence.load(std::memory_order_acquire) == seen)
                    recovered_lost_wakeups.fetch_add(1, std::memory_order_relaxed);
            }
            return true;
        }
        if (clock::now() >= deadline) return false;
    }
}

template <class Attempt>
bool wait_for(wait_channel& channel, std::uint32_t participant, const wait_options& options,
              std::chrono::nanoseconds timeout, Attempt&& attempt) {
    return wait_for(channel, participant, options, timeout, std::forward<Attempt>(attempt), [] {});
}

/// Waits as wait_for does until `try_pop` yields a value (an optional);
/// returns it, or an empty optional when `timeout` passed first.
template <class TryPop, class BeforeSleep = void (*)()>
auto wait_to_pop(
    wait_channel& channel, std::uint32_t participant, const wait_options& options,
    std::chrono::nanoseconds timeout, TryPop&& try_pop, BeforeSleep&& before_sleep = [] {}) {
    decltype(try_pop()) value;
    wait_for(
        channel, participant, options, timeout,
        [&] {
            value = try_pop();
            return value.has_value();
        },
        std::forward<BeforeSleep>(before_sleep));
    return value;
}

/// The longest wait: "for ever" without overflowing the clock's arithmetic.
inline constexpr std::chrono::nanoseconds forever = std::chrono::hours(24 * 365 * 100);

/// `timeout` in nanoseconds, clamped to [0, forever].
template <class Rep, class Period>
constexpr std::chrono::nanoseconds bounded(std::chrono::duration<Rep, Period> timeout) noexcept {
    using namespace std::chrono;
    if (timeout <= duration<Rep, Period>::zero()) return nanoseconds::zero();
    if (duration_cast<duration<double>>(timeout) >= duration<double>(forever)) return forever;
    return duration_cast<nanoseconds>(timeout);
}

}  // namespace detail
}  // namespace shmds
