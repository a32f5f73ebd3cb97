// shmds/detail/waiting.hpp: how the concurrent structures wait: spin, then
// sleep on a futex in the segment.
//
// Protocol (no lost wake-ups). A wait_channel is a futex word `sequence` and
// the set of `sleepers`, in shared memory.
//   waker:   publish the change; light fence; if any sleeper: take the
//            sleepers it wakes out of the set (see wake()), bump
//            sequence, futex_wake.
//   sleeper: add itself to sleepers; heavy fence; s = sequence; try the
//            operation again; if it still cannot proceed,
//            futex_wait(sequence, s); try again; leave sleepers.
// Either the waker's check follows the sleeper's announcement (it sees a
// sleeper and wakes), or the waker's publication precedes the heavy
// fence (the sleeper's retry sees it). A bump between reading `s` and
// futex_wait makes futex_wait return at once. A waker that takes sleepers
// out of the set (so that a burst wakes each of them once) does so before
// its bump: a sleeper that finds itself out of the set after reading `s`
// announces itself again instead of sleeping, so nobody sleeps unannounced. futex(2) is used without
// FUTEX_PRIVATE_FLAG so that it works across processes; std::atomic::wait
// does not (libstdc++'s is process-private).
//
// The light fence is only a compiler barrier, which is enough only because
// the heavy one is a membarrier(2) reaching the waker's CPU. A sleeper that
// could not issue one (membarrier unsupported, or refused at run time)
// sets the channel's fence bit, a bit of the sleeper set that no participant
// owns: every waker's quick check then sees "someone may sleep" and takes the
// slow path, which fences for real before it looks at the sleepers again. A
// waker that membarrier cannot reach (its process could not register) sets
// the bit on joining, before its first publication (prepare_waker).
// The bit stays set for the channel's life. Only a wake-up that races with
// the setting itself can be missed (a waker that published, did not fence,
// and looked before the bit reached it); every sleeper whose heavy fence
// failed therefore looks again a millisecond into its first sleep of each
// wait. (Found by the weak-memory model, impl/tests/test_weak_memory.cpp: when
// only the sleeper that set the bit did so, another sleeper, or the same one
// after a round without a sleep, could sleep the full slice.)
//
// As a safety net each futex_wait lasts at most `recheck_after` (200 ms by
// default). A sleeper that only its timer woke, and that finds what it waited
// for after a quiet grace (still announced, so that a waker caught in the act
// would bump the sequence), counts a recovered lost wake-up: what it waited
// for was there before the grace, and no wake-up came for it. Tests assert
// that this never happens.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <utility>

#include <sched.h>

#include "shmds/config.hpp"
#include "shmds/detail/durations.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/futex.hpp"
#include "shmds/detail/process.hpp"
#include "shmds/wait.hpp"

namespace shmds::detail {

/// Bits in a wait channel's sleeper set (part of the shared layout).
inline constexpr std::uint32_t sleeper_bits = 128;
/// Most participants (processes or threads with their own handle) that one
/// structure tracks: each has a bit in its wait channels' sleeper sets, and
/// one bit is the fence bit.
inline constexpr std::uint32_t max_participants = sleeper_bits - 1;
/// Participants below this have their bit in the first sleeper word, beside
/// the fence bit; the others in the second.
inline constexpr std::uint32_t first_word_participants = 63;

/// A futex word and the set of sleeping participants, on a cache line of
/// their own. A participant announces and retracts itself with one atomic
/// bit operation, so one that dies asleep leaves only its own bit set, which
/// the next holder of its participant id clears.
///
/// The sleeper set is two words: the first holds participants 0 to 62 and,
/// in its top bit, the fence bit; the second participants 63 to 126. A waker
/// reads only the first, so participants of the second word set the fence
/// bit too when they announce themselves: a channel that has had a sleeper
/// with so high an id (more than 63 participants at once; the lowest free id
/// is always taken) is one whose wakers take the slow path and fence for
/// real, for its life. Nothing else about the fence bit changes.
struct alignas(cache_line_size) wait_channel {
    atomic<std::uint32_t> sequence;
    std::uint32_t reserved;
    atomic<std::uint64_t> sleepers[sleeper_bits / 64];

    static constexpr std::uint64_t fence_mask = std::uint64_t{1} << 63;

    /// The waker's quick check: a sleeper of the first word, or the fence
    /// bit (set whenever one of the second word may sleep). One load.
    [[nodiscard]] bool may_need_waking() const noexcept {
        return sleepers[0].load(std::memory_order_relaxed) != 0;
    }
    /// True when a participant sleeps (or is about to).
    [[nodiscard]] bool anyone_asleep() const noexcept {
        return ((sleepers[0].load(std::memory_order_relaxed) & ~fence_mask) |
                sleepers[1].load(std::memory_order_relaxed)) != 0;
    }
    [[nodiscard]] bool wakers_must_fence() const noexcept {
        return (sleepers[0].load(std::memory_order_relaxed) & fence_mask) != 0;
    }
    /// Sets the fence bit (for the channel's life).
    void require_fenced_wakers() noexcept { sleepers[0].fetch_or(fence_mask, std::memory_order_seq_cst); }

    void announce(std::uint32_t participant) noexcept {
        // Both before the sleeper's heavy fence, so in either order.
        if (participant >= first_word_participants) require_fenced_wakers();
        word_of(participant).fetch_or(bit_of(participant), std::memory_order_seq_cst);
    }
    /// Takes the sleepers it sees out of the set when there are no more than
    /// `count` of them, and returns true: the caller then wakes everyone
    /// asleep on the channel, so each of them is woken, and later wakers
    /// need not wake them again (a sleeper announces itself anew before
    /// each sleep). Returns false, leaving the set alone, when more than
    /// `count` sleep: waking them all would be a stampede.
    bool take_sleepers_if_at_most(int count) noexcept {
        const std::uint64_t seen[2] = {sleepers[0].load(std::memory_order_relaxed) & ~fence_mask,
                                       sleepers[1].load(std::memory_order_relaxed)};
        const int asleep = std::popcount(seen[0]) + std::popcount(seen[1]);
        if (asleep == 0 || asleep > count) return false;
        for (std::size_t w = 0; w < 2; ++w)
            if (seen[w] != 0) sleepers[w].fetch_and(~seen[w], std::memory_order_relaxed);
        return true;
    }
    /// Whether `participant`'s bit is still in the set (a waker may have
    /// taken it out: take_sleepers_if_at_most).
    [[nodiscard]] bool still_announced(std::uint32_t participant) const noexcept {
        return (word_of(participant).load(std::memory_order_relaxed) & bit_of(participant)) != 0;
    }
    void retract(std::uint32_t participant) noexcept {
        word_of(participant).fetch_and(~bit_of(participant), std::memory_order_relaxed);
    }

private:
    atomic<std::uint64_t>& word_of(std::uint32_t participant) noexcept {
        return sleepers[participant < first_word_participants ? 0 : 1];
    }
    const atomic<std::uint64_t>& word_of(std::uint32_t participant) const noexcept {
        return sleepers[participant < first_word_participants ? 0 : 1];
    }
    static std::uint64_t bit_of(std::uint32_t participant) noexcept {
        return std::uint64_t{1} << (participant < first_word_participants
                                        ? participant
                                        : participant - first_word_participants);
    }
};
static_assert(sleeper_bits == 128 && first_word_participants + 1 == 64 &&
                  max_participants - first_word_participants == 64,
              "the first sleeper word holds 63 participants and the fence bit, the second 64 participants");
static_assert(atomic<std::uint32_t>::is_always_lock_free && sizeof(atomic<std::uint32_t>) == 4 &&
                  atomic<std::uint64_t>::is_always_lock_free,
              "futex words and sleeper sets are plain words shared between processes");
static_assert(sizeof(wait_channel) == cache_line_size, "a wait channel fills one cache line");

/// Times a sleeper woke from the safety-net slice and then found it could
/// proceed: each is a wake-up that should have come and did not.
inline std::atomic<std::uint64_t> recovered_lost_wakeups{0};

inline long futex_wait(atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
    SHMDS_MODEL_FUTEX_WAIT(word, expected, timeout);
    return futex_wait_shared(reinterpret_cast<std::uint32_t*>(&word), expected, timeout);
}

inline void futex_wake(atomic<std::uint32_t>& word, int count) noexcept {
    SHMDS_MODEL_FUTEX_WAKE(word, count);
    futex_wake_shared(reinterpret_cast<std::uint32_t*>(&word), count);
}

/// The waker's slow path: someone may sleep. When the channel's fence bit
/// is set, fences for real first and looks again (a sleeper here could not
/// reach this CPU with membarrier).
///
/// One wake-up per sleep: while a woken sleeper is on its way out of
/// futex_wait its bit would still be set, and every publication in the
/// meantime (a producer streaming to a consumer it has just woken) would
/// pay a futex_wake of its own. So when no more than `count` sleep, their
/// bits are taken out of the set here and all sleepers are woken (any
/// sleeper announced after the bits were read is woken for nothing and
/// sleeps again); later wakers see nobody until a sleeper announces itself
/// again before its next sleep.
[[gnu::noinline, gnu::cold]] inline void wake(wait_channel& channel, int count) noexcept {
    if (channel.wakers_must_fence()) {
        full_fence();
        SHMDS_FAULT_POINT("wake.fenced");
        if (!channel.anyone_asleep()) return;
    }
    const bool wakes_everyone_it_saw = channel.take_sleepers_if_at_most(count);
    channel.sequence.fetch_add(1, std::memory_order_release);
    SHMDS_FAULT_POINT("wake.sending");
    futex_wake(channel.sequence, wakes_everyone_it_saw ? INT_MAX : count);
}

/// Called by a participant when it joins a structure, for each channel it
/// may notify, before its first notify(): where membarrier cannot reach
/// this process, the channel's wakers must fence for real (process.hpp).
inline void prepare_waker(wait_channel& channel) noexcept {
    if (!asymmetric_fence::registered()) channel.require_fenced_wakers();
}

/// Waker side: call after publishing a change someone may be waiting for.
/// Costs a compiler barrier and one load when nobody sleeps.
/// Only by a participant that has joined (prepare_waker).
inline void notify(wait_channel& channel, int count = 1) noexcept {
    asymmetric_fence::light();
    if (channel.may_need_waking()) [[unlikely]]
        wake(channel, count);
}

using steady_time = std::chrono::steady_clock::time_point;

/// Attempts (each followed by a pause) a spinning waiter makes before it
/// first reads the clock: a microsecond or two.
inline constexpr int quick_spin_rounds = 32;

/// A sleeper that only its timer woke waits this long more, still announced,
/// before it tries again: a waker caught between its publication and its
/// wake-up bumps the sequence within it, and is not taken for a lost one.
inline constexpr std::chrono::milliseconds lost_wakeup_grace{2};

/// The first sleep of each wait, for a sleeper whose heavy fence failed,
/// lasts at most this long: a waker that checked the channel's fence bit
/// just before it was set may not have fenced (see the top of this file).
inline constexpr std::chrono::milliseconds fence_switch_recheck{1};

/// Calls `attempt` until it returns true or `timeout` passes, waiting on
/// `channel` between attempts as `options` says; `participant` is the
/// caller's bit in the channel. Returns whether an attempt succeeded.
/// `attempt` must not block. `before_sleep` runs just before each sleep (a
/// structure may look into what held the attempt up, at a moment when a
/// system call costs nothing extra). A zero or negative timeout is a poll:
/// one attempt, no clock, no announcement, no barrier.
template <class Attempt, class BeforeSleep>
bool wait_for(wait_channel& channel, std::uint32_t participant, const wait_options& options,
              std::chrono::nanoseconds timeout, Attempt&& attempt, BeforeSleep&& before_sleep) {
    using clock = std::chrono::steady_clock;
    if (attempt()) return true;  // the common case reads no clock
    if (timeout <= std::chrono::nanoseconds::zero()) return false;
    if (options.strategy != wait_strategy::sleep) {
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
        if (options.strategy == wait_strategy::spin || clock::now() >= deadline) return attempt();
    }
    // Announced while this object lives, whatever attempt() throws.
    struct announcement {
        wait_channel& channel;
        std::uint32_t participant;
        announcement(wait_channel& c, std::uint32_t p) : channel(c), participant(p) { channel.announce(p); }
        ~announcement() { channel.retract(participant); }
    };
    // A sleeper whose heavy fence could not reach the wakers' CPUs sets the
    // channel's fence bit, and wakers fence for real from then on; but a
    // waker that published before it saw the bit, and did not fence, may
    // still be unseen (by whichever sleeper: the bit may be older than this
    // one). So such a sleeper's first sleep in each wait is short, and a
    // rescue from it is expected, not lost. Rounds that end without a sleep
    // (a waker took this sleeper out of the set) leave it due.
    bool slept = false;
    for (;;) {
        announcement announced(channel, participant);
        SHMDS_FAULT_POINT("wait.announced");
        const bool fenced_alone = !asymmetric_fence::heavy();
        if (fenced_alone) channel.require_fenced_wakers();
        const bool short_sleep = fenced_alone && !slept;
        const std::uint32_t seen = channel.sequence.load(std::memory_order_acquire);
        if (attempt()) return true;
        before_sleep();
        auto now = clock::now();
        if (now >= deadline) return false;
        // A waker that took this sleeper out of the set bumped the sequence
        // just after (wake()). If `seen` already includes that bump, the
        // attempt that failed lost its element (or room) to someone else,
        // and no later waker would know to wake us: look again, announced
        // anew, rather than sleep unannounced. (The bump, read by `seen`,
        // carries the removal with it, so this load cannot miss it.)
        if (!channel.still_announced(participant)) [[unlikely]]
            continue;
        const auto slice_limit = short_sleep ? fence_switch_recheck : options.recheck_after;
        const long rc = futex_wait(channel.sequence, seen,
                                   std::min<std::chrono::nanoseconds>(deadline - now, slice_limit));
        const bool timed_out = rc != 0 && errno == ETIMEDOUT;
        slept = true;
        now = clock::now();
        // Retry while still announced: a waker that publishes from here on
        // sees us and bumps the sequence.
        if (timed_out && now < deadline && !short_sleep) {
            // Only the timer woke us. Wait a grace, still announced: a waker
            // caught between its publication and its wake-up bumps the
            // sequence within it. If nothing moves and the attempt succeeds,
            // what we waited for was there before the grace, and no wake-up
            // came for it.
            const std::uint32_t before_grace = channel.sequence.load(std::memory_order_acquire);
            const long grace_rc =
                futex_wait(channel.sequence, before_grace,
                           std::min<std::chrono::nanoseconds>(deadline - now, lost_wakeup_grace));
            const bool quiet = grace_rc != 0 && errno == ETIMEDOUT &&
                               channel.sequence.load(std::memory_order_acquire) == before_grace;
            if (attempt()) {
                if (quiet) recovered_lost_wakeups.fetch_add(1, std::memory_order_relaxed);
                return true;
            }
        } else if (attempt()) {
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

}  // namespace shmds::detail
