// shmds/detail/robust_mutex.hpp: the process-shared robust mutexes in
// segments (the table's, the concurrent stack's).
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
/// protection bit, say) makes pthread_mutex_lock abort the locking process
/// on an assertion. Nothing in the mutex changes its kind after
/// initialisation, so a different value means the lock was damaged.
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

/// Locks `mutex`, waiting at most `timeout`. Returns 0; EOWNERDEAD (now held:
/// the caller repairs the data and calls pthread_mutex_consistent);
/// ETIMEDOUT; ENOTRECOVERABLE; EINVAL when its kind word is not that of a
/// robust shared mutex (written over: locking it could abort the process);
/// or another error number.
inline int lock_robust_mutex(pthread_mutex_t* mutex, std::chrono::milliseconds timeout) noexcept {
    if (__atomic_load_n(&mutex->__data.__kind, __ATOMIC_RELAXED) != robust_mutex_kind()) [[unlikely]]
        return EINVAL;
    // Uncontended, the lock is taken without reading the clock (about 30 ns
    // in a VM, as much as the lock itself). trylock reports a dead owner the
    // same way (EOWNERDEAD, ENOTRECOVERABLE).
    if (const int rc = pthread_mutex_trylock(mutex); rc != EBUSY) return rc;
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

}  // namespace shmds::detail
