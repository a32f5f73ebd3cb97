// shmds/detail/os.hpp: small wrappers over the system calls the library uses,
// overflow-checked arithmetic for sizes that come from callers or from
// shared memory, and the kernel locks that count a segment's attachers.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmds::detail {

[[noreturn]] inline void throw_os_error(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), "shmds: " + what);
}

/// Owns a file descriptor; closes it on destruction.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

/// a * b, or nullopt when it does not fit in size_t.
constexpr std::optional<std::size_t> checked_mul(std::size_t a, std::size_t b) noexcept {
    std::size_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

constexpr std::optional<std::size_t> checked_add(std::size_t a, std::size_t b) noexcept {
    std::size_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

/// Rounds `value` up to a multiple of the power of two `align`, or nullopt on
/// overflow.
constexpr std::optional<std::size_t> checked_align_up(std::size_t value, std::size_t align) noexcept {
    auto bumped = checked_add(value, align - 1);
    if (!bumped) return std::nullopt;
    return *bumped & ~(align - 1);
}

constexpr std::size_t align_up(std::size_t value, std::size_t align) noexcept {
    return (value + align - 1) & ~(align - 1);
}

constexpr bool is_power_of_two(std::size_t v) noexcept {
    return v != 0 && (v & (v - 1)) == 0;
}

/// True when [offset, offset + length) lies inside [0, limit). Safe for any
/// values read from shared memory.
constexpr bool range_within(std::uint64_t offset, std::uint64_t length, std::uint64_t limit) noexcept {
    return offset <= limit && length <= limit - offset;
}

using steady_clock = std::chrono::steady_clock;

/// Sleeps a little longer each time it is called (50 us up to 2 ms), for
/// waits on other processes that usually end within microseconds.
class backoff {
public:
    void pause() {
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
        if (delay_us_ < 2000) delay_us_ *= 2;
    }

private:
    unsigned delay_us_ = 50;
};

/// A 64-bit value from the kernel's random source, for segment identities.
inline std::uint64_t random_u64() {
    std::uint64_t value = 0;
    if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
        value = static_cast<std::uint64_t>(steady_clock::now().time_since_epoch().count()) ^
                (static_cast<std::uint64_t>(::getpid()) << 32);
    }
    return value;
}

// ---- counting attachers -------------------------------------------------------------------------
//
// Who is attached is the kernel's knowledge, not a number in the segment
// that a crash would leave wrong: each counted attachment holds, through its
// own open file description, an OFD write lock on one byte of a range far
// beyond any segment's data (its "attach slot"; the participant locks of
// participants.hpp lie higher still). F_OFD_GETLK reports a conflicting lock
// whoever holds it, so probing the range counts every attacher. /proc/locks
// would not: it lists only locks whose owner is visible in the reader's PID
// namespace, so a process in a container that shares /dev/shm would miss
// every attacher outside it. (The flock(2) lock each attachment also holds
// decides who detaches last and what is stale; it is never counted.)

inline constexpr std::uint64_t attach_slots_base = std::uint64_t{1} << 61;
inline constexpr std::uint64_t attach_slots = std::uint64_t{1} << 20;

/// Takes a free attach slot through `fd` (open for writing): an OFD lock
/// released when the description is closed, however its process ends. Tries
/// slots from a random start, so that attachers rarely collide. False, with
/// errno set, when it cannot (the range is full, or no lock can be made).
/// Async-signal-safe (the fork handlers call it).
inline bool take_attach_slot(int fd) noexcept {
    std::uint64_t start = 0;
    if (::getrandom(&start, sizeof start, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof start))
        start = static_cast<std::uint64_t>(::getpid()) * 2654435761u;
    for (std::uint64_t probe = 0; probe < 64; ++probe) {
        struct flock request {};
        request.l_type = F_WRLCK;
        request.l_whence = SEEK_SET;
        request.l_start = static_cast<off_t>(attach_slots_base + (start + probe) % attach_slots);
        request.l_len = 1;
        if (::fcntl(fd, F_OFD_SETLK, &request) == 0) return true;
        if (errno != EAGAIN && errno != EACCES) return false;
    }
    errno = EAGAIN;
    return false;
}

/// Drops the locks held through `fd`'s description: its flock and its
/// attach slot (participant locks live on descriptions of their own).
inline void release_attach_locks(int fd) noexcept {
    (void)::flock(fd, LOCK_UN);
    struct flock whole_file {};
    whole_file.l_type = F_UNLCK;
    whole_file.l_whence = SEEK_SET;
    (void)::fcntl(fd, F_OFD_SETLK, &whole_file);
}

/// Attach slots held by open file descriptions other than `fd`'s, whatever
/// process (in whatever PID namespace) holds them. `fd` may be read-only.
/// Each probe finds one lock in a range and splits the range around it: two
/// system calls per attacher, plus one.
inline std::size_t count_attach_slots(int fd) {
    struct range {
        std::uint64_t begin;
        std::uint64_t end;
    };
    std::vector<range> unexplored{{attach_slots_base, attach_slots_base + attach_slots}};
    std::size_t holders = 0;
    while (!unexplored.empty()) {
        const range r = unexplored.back();
        unexplored.pop_back();
        struct flock request {};
        request.l_type = F_WRLCK;
        request.l_whence = SEEK_SET;
        request.l_start = static_cast<off_t>(r.begin);
        request.l_len = static_cast<off_t>(r.end - r.begin);
        if (::fcntl(fd, F_OFD_GETLK, &request) != 0)
            throw_os_error(errno, "cannot count the processes attached to a segment");
        if (request.l_type == F_UNLCK) continue;
        ++holders;
        const auto lock_begin = static_cast<std::uint64_t>(request.l_start);
        const std::uint64_t lock_end =
            request.l_len == 0 ? r.end : lock_begin + static_cast<std::uint64_t>(request.l_len);
        if (r.begin < lock_begin) unexplored.push_back({r.begin, std::min(lock_begin, r.end)});
        if (lock_end < r.end) unexplored.push_back({std::max(lock_end, r.begin), r.end});
    }
    return holders;
}

}  // namespace shmds::detail
