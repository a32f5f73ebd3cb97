// shmds/detail/participant_mutex.hpp: a lock in shared memory whose holder is
// a participant id (participants.hpp), so that a dead holder is known by the
// participant lock the kernel dropped when it died.
//
// The word: 0 when free; otherwise the holder's participant id + 1 in the low
// byte (ids are below max_participants, 127), and the contended bit when a
// locker may be asleep on it. Nothing else is ever written there.
//   lock:    CAS 0 -> id + 1 (acquire). Otherwise spin a little, then set the
//            contended bit and futex_wait on the word; whoever takes a word a
//            waiter may have marked takes it contended (id + 1 | contended).
//   unlock:  exchange 0 (release); futex_wake one waiter if it was contended.
// A waiter sleeps in slices of holder_check_interval. After a slice in which
// the word did not change it asks the kernel whether the holder's participant
// lock is still held; when it is not, it takes that participant lock itself
// (a description of its own, dropped at once): while it holds it nobody can
// join under the dead holder's id, so a word that still names that id names
// a dead holder, and a CAS from it to the waiter's own id takes the mutex
// over. A live holder keeps its participant lock for as long as it holds the
// mutex, so a holder is never declared dead while alive. A participant that
// joins under an id the word names (its predecessor died holding the mutex)
// frees it at once (free_if_held_by).
//
// Why not glibc's robust mutex, which the concurrent stack used until format
// 4: a lock and an unlock cost about 220 instructions of the stack's 320 per
// push and pop; glibc trusts the mutex's kind word, so another process that
// wrote over it could make glibc abort this one; and qemu-user never walks a
// robust list, so a dead holder was never recovered there. Guarantee kept:
// the guarded data's last store is its commit, so a holder that dies at any
// point leaves it consistent, and taking over needs no repair. Cost paid: a
// dead holder is found within one slice (2 ms), where the kernel found a dead
// robust mutex's holder at once.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "shmds/detail/futex.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/process.hpp"

namespace shmds::detail {

/// The lock word's layout (part of the shared format).
inline constexpr std::uint32_t mutex_holder_mask = 0xff;
inline constexpr std::uint32_t mutex_contended = std::uint32_t{1} << 31;
/// How long a waiter sleeps before it asks whether the holder still lives.
inline constexpr std::chrono::milliseconds holder_check_interval{2};
/// Polls of the word before a waiter sleeps: a holder that is running leaves
/// within a few hundred nanoseconds, far less than a futex round trip.
inline constexpr int mutex_spins = 100;

static_assert(std::atomic<std::uint32_t>::is_always_lock_free && sizeof(std::atomic<std::uint32_t>) == 4,
              "the lock word is a futex word shared between processes");

/// What the word of a participant mutex holds that it never should: bits
/// outside the holder byte and the contended bit, or a holder id no
/// participant can have. 0 when the word is one the mutex writes.
[[nodiscard]] constexpr std::uint32_t mutex_word_damage(std::uint32_t word, std::uint32_t id_limit) noexcept {
    const std::uint32_t stray = word & ~(mutex_holder_mask | mutex_contended);
    if (stray != 0) return stray;
    return (word & mutex_holder_mask) > id_limit ? word & mutex_holder_mask : 0;
}

/// Takes the mutex for participant `id` if it is free. Never blocks.
[[gnu::always_inline]] inline bool try_lock_participant_mutex(std::atomic<std::uint32_t>& word,
                                                              std::uint32_t id) noexcept {
    std::uint32_t free_word = 0;
    return word.compare_exchange_strong(free_word, id + 1, std::memory_order_acquire,
                                        std::memory_order_relaxed);
}

[[gnu::cold, gnu::noinline]] inline void wake_participant_mutex_waiter(
    std::atomic<std::uint32_t>& word) noexcept {
    futex_wake_shared(reinterpret_cast<std::uint32_t*>(&word), 1);
}

/// Gives the mutex back; the caller holds it. Wakes one waiter if any may
/// sleep. A word written over while held is overwritten here (with "free").
[[gnu::always_inline]] inline void unlock_participant_mutex(std::atomic<std::uint32_t>& word) noexcept {
    if ((word.exchange(0, std::memory_order_release) & mutex_contended) != 0) [[unlikely]]
        wake_participant_mutex_waiter(word);
}

/// Where the participant locks of the structure that owns a mutex are.
struct mutex_participants {
    int segment_fd;          ///< any descriptor of the segment's file
    std::uint64_t serial;    ///< the structure's serial: its participant locks
    std::uint32_t id_limit;  ///< ids are below it
    std::string_view who;    ///< the structure, for error messages
};

enum class mutex_lock_result {
    locked,
    taken_from_dead_holder,  ///< its holder had died: the caller counts a recovery
    timed_out,
    damaged,  ///< the word holds what the mutex never writes (the value is returned)
};

namespace participant_mutex_impl {

/// CAS from `seen` to "held by `mine`", keeping the contended mark.
inline bool take(std::atomic<std::uint32_t>& word, std::uint32_t& seen, std::uint32_t mine) noexcept {
    return word.compare_exchange_weak(seen, mine | mutex_contended, std::memory_order_acquire,
                                      std::memory_order_relaxed);
}

/// When holder `holder_id` of `seen` has died: takes its participant lock so
/// that nobody joins under its id meanwhile, and the mutex from it. True
/// when the mutex is now the caller's.
inline bool take_from_dead_holder(std::atomic<std::uint32_t>& word, std::uint32_t seen, std::uint32_t mine,
                                  const mutex_participants& p) {
    const std::uint32_t holder_id = (seen & mutex_holder_mask) - 1;
    const std::uint64_t offset = participant_lock_offset(p.serial, holder_id);
    if (participant_alive(p.segment_fd, offset)) return false;  // the common answer: no open()
    auto held = participant_lock::try_take(p.segment_fd, offset, p.who);
    if (!held) return false;  // it joined again, or another waiter is looking
    std::uint32_t now = word.load(std::memory_order_relaxed);
    while ((now & mutex_holder_mask) == (seen & mutex_holder_mask))
        if (take(word, now, mine)) return true;
    return false;  // the mutex changed hands: an ordinary wait again
}

}  // namespace participant_mutex_impl

/// The rest of a lock after try_lock_participant_mutex failed: waits at most
/// `timeout` for the mutex, taking it over from a dead holder. On `damaged`,
/// `seen` is the word found. Throws only what taking a dead holder's
/// participant lock can throw (std::system_error: no descriptor left).
[[gnu::noinline]] inline mutex_lock_result lock_participant_mutex_slowly(std::atomic<std::uint32_t>& word,
                                                                         std::uint32_t id,
                                                                         std::chrono::milliseconds timeout,
                                                                         const mutex_participants& p,
                                                                         std::uint32_t& seen) {
    namespace impl = participant_mutex_impl;
    const std::uint32_t mine = id + 1;
    // A holder that is running leaves soon: take the word as it frees,
    // uncontended, when nobody has marked it.
    for (int spin = 0; spin < mutex_spins; ++spin) {
        std::uint32_t free_word = 0;
        if (word.load(std::memory_order_relaxed) == 0 &&
            word.compare_exchange_weak(free_word, mine, std::memory_order_acquire, std::memory_order_relaxed))
            return mutex_lock_result::locked;
        cpu_relax();
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        seen = word.load(std::memory_order_relaxed);
        if (mutex_word_damage(seen, p.id_limit) != 0) return mutex_lock_result::damaged;
        if ((seen & mutex_holder_mask) == 0) {
            // Free (perhaps marked: a waiter woke and has not taken it yet).
            // Taken marked, since others may sleep on it.
            if (impl::take(word, seen, mine)) return mutex_lock_result::locked;
            continue;
        }
        if ((seen & mutex_contended) == 0) {
            if (!word.compare_exchange_weak(seen, seen | mutex_contended, std::memory_order_relaxed))
                continue;
            seen |= mutex_contended;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return mutex_lock_result::timed_out;
        const std::chrono::nanoseconds slice =
            std::min<std::chrono::nanoseconds>(deadline - now, holder_check_interval);
        const long rc = futex_wait_shared(reinterpret_cast<std::uint32_t*>(&word), seen, slice);
        // Woken, or the word moved on: look again. A whole slice in which it
        // stayed: is its holder alive?
        if (rc != 0 && errno == ETIMEDOUT && word.load(std::memory_order_relaxed) == seen &&
            impl::take_from_dead_holder(word, seen, mine, p))
            return mutex_lock_result::taken_from_dead_holder;
    }
}

/// For a participant that has just joined as `id`: if the word names `id`,
/// the previous holder of that id died holding the mutex (the joiner holds
/// the id's participant lock, so no live process does); frees it and returns
/// true (the caller counts a recovery).
inline bool free_if_held_by(std::atomic<std::uint32_t>& word, std::uint32_t id) noexcept {
    std::uint32_t seen = word.load(std::memory_order_relaxed);
    while ((seen & mutex_holder_mask) == id + 1 && (seen & ~(mutex_holder_mask | mutex_contended)) == 0)
        if (word.compare_exchange_weak(seen, 0, std::memory_order_release, std::memory_order_relaxed)) {
            if ((seen & mutex_contended) != 0) wake_participant_mutex_waiter(word);
            return true;
        }
    return false;
}

}  // namespace shmds::detail
