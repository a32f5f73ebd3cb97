// shmds/detail/futex.hpp: the two futex(2) calls every sleeper and waker in
// the library makes, on 32-bit words in shared memory.
//
// Never FUTEX_PRIVATE_FLAG: a private futex is keyed by the caller's address
// space, so a process could not wake a sleeper in another process mapping
// the same word at a different address. (libstdc++'s std::atomic::wait is
// private for that reason, and so not used here.)
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace shmds::detail {

/// Sleeps while `*word == expected`, at most `timeout`. Returns 0 when
/// woken, -1 with errno set otherwise (EAGAIN: the word had changed;
/// ETIMEDOUT; EINTR). Any thread; blocks.
inline long futex_wait_shared(std::uint32_t* word, std::uint32_t expected,
                              std::chrono::nanoseconds timeout) noexcept {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    return ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

/// Wakes up to `count` sleepers on `word`, in any process. Never blocks.
inline void futex_wake_shared(std::uint32_t* word, int count) noexcept {
    ::syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
}

}  // namespace shmds::detail
