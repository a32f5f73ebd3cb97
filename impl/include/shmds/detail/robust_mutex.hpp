// shmds/detail/robust_mutex.hpp: the process-shared robust mutex in a
// segment (the table's lock).
//
// Robust: when a holder dies the next locker gets EOWNERDEAD, owns the mutex,
// makes the guarded data consistent and calls pthread_mutex_consistent; a
// mutex unlocked without that becomes ENOTRECOVERABLE for ever.
#pragma once

#include <cerrno>
#include <chrono>
#include <ctime>

#include <pthread.h>

#include "shmds/detail/os.hpp"
#include "shmds/detail/process.hpp"

namespace shmds::detail {

/// Initialises a process-shared robust mutex in shared memory. Throws
/// std::system_error on failure.
inline void init_robust_mutex(pthread_mutex_t* mutex, const char* what) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    const int rc = pthread_mutex_init(mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) throw_os_error(rc, std::string("cannot initialise ") + what);
}

/// The kind word glibc keeps in a mutex made by init_robust_mutex. glibc
/// trusts that word: another process that overwrites it (with the priority
/// protection bit, say) makes pthread_mutex_lock or _unlock abort the
/// process on an assertion. Nothing in the mutex changes its kind after
/// initialisation, so a different value means the lock was damaged: before
/// a lock it is refused (lock_robust_mutex), while held it is put back
/// (unlock_robust_mutex). The check and glibc's own read of the word are
/// two reads; a write that lands between them, within a few instructions,
/// can still abort the process. Closing that would take a mutex of the
/// library's own instead of glibc's.
inline int robust_mutex_kind() noexcept {
    static const int kind = [] {
        pthread_mutex_t model;
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&model, &attr);
        pthread_mutexattr_destroy(&attr);
        const int k = __atomic_load_n(&model.__data.__kind, __ATOMIC_RELAXED);
        pthread_mutex_destroy(&model);
        return k;
    }();
    return kind;
}

/// Unlocks `mutex`, which the caller holds; `kind` is robust_mutex_kind()
/// (callers keep it, so that no lock or unlock pays for a static's guard).
/// The kind word never changes after initialisation, so one that differs
/// now was written over while the lock was held: it is put back first, or
/// glibc would take the unlock down another type's path (with the priority-
/// protection bit it aborts the process on an assertion). What remains is a
/// write landing in the few instructions between this check and glibc's own
/// read of the word.
[[gnu::always_inline]] inline void unlock_robust_mutex(pthread_mutex_t* mutex, int kind) noexcept {
    if (__atomic_load_n(&mutex->__data.__kind, __ATOMIC_RELAXED) != kind) [[unlikely]]
        __atomic_store_n(&mutex->__data.__kind, kind, __ATOMIC_RELAXED);
    pthread_mutex_unlock(mutex);
}

/// The first step of lock_robust_mutex, small enough to inline where the
/// uncontended lock is on a hot path: the kind check, then a trylock. Returns
/// 0 (held), EBUSY (held by another: continue with lock_robust_mutex_after),
/// or what lock_robust_mutex would return.
[[gnu::always_inline]] inline int try_lock_robust_mutex(pthread_mutex_t* mutex, int kind) noexcept {
    if (__atomic_load_n(&mutex->__data.__kind, __ATOMIC_RELAXED) != kind) [[unlikely]]
        return EINVAL;
    // Uncontended, the lock is taken without reading the clock (about 30 ns
    // in a VM, as much as the lock itself). trylock reports a dead owner the
    // same way (EOWNERDEAD, ENOTRECOVERABLE).
    return pthread_mutex_trylock(mutex);
}

/// The rest of lock_robust_mutex after try_lock_robust_mutex answered
/// `tried`: waits (at most `timeout`) when it was EBUSY; otherwise `tried`.
inline int lock_robust_mutex_after(int tried, pthread_mutex_t* mutex,
                                   std::chrono::milliseconds timeout) noexcept {
    if (tried != EBUSY) return tried;
#ifdef SHMDS_TSAN
    // ThreadSanitizer intercepts timedlock but not clocklock.
    const clockid_t clock = CLOCK_REALTIME;
#else
    const clockid_t clock = CLOCK_MONOTONIC;
#endif
    timespec deadline{};
    clock_gettime(clock, &deadline);
    const auto ms = timeout.count();
    deadline.tv_sec += static_cast<time_t>(ms / 1000);
    deadline.tv_nsec += static_cast<long>(ms % 1000) * 1'000'000L;
    if (deadline.tv_nsec >= 1'000'000'000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1'000'000'000L;
    }
#ifdef SHMDS_TSAN
    return pthread_mutex_timedlock(mutex, &deadline);
#else
    return pthread_mutex_clocklock(mutex, clock, &deadline);
#endif
}

/// Locks `mutex`, waiting at most `timeout`; `kind` is robust_mutex_kind().
/// Returns 0; EOWNERDEAD (now held: the caller repairs the data and calls
/// pthread_mutex_consistent); ETIMEDOUT; ENOTRECOVERABLE; EINVAL when its
/// kind word is not that of a robust shared mutex (written over: locking it
/// could abort the process); or another error number.
inline int lock_robust_mutex(pthread_mutex_t* mutex, std::chrono::milliseconds timeout, int kind) noexcept {
    return lock_robust_mutex_after(try_lock_robust_mutex(mutex, kind), mutex, timeout);
}

}  // namespace shmds::detail
