// shmds/detail/os.hpp: small wrappers over the system calls the library uses,
// and overflow-checked arithmetic for sizes that come from callers or from
// shared memory.
#pragma once

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

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

/// Number of flock(2) locks currently held on the file (st_dev, st_ino), as
/// the kernel lists them in /proc/locks. Each open file description holding a
/// lock counts once; waiters ("->" lines) are not counted.
inline std::size_t count_flock_holders(dev_t dev, ino_t ino) {
    std::FILE* f = std::fopen("/proc/locks", "re");
    if (!f) throw_os_error(errno, "cannot read /proc/locks to count attached processes");
    char line[256];
    char wanted[64];
    std::snprintf(wanted, sizeof wanted, " %02x:%02x:%lu ", major(dev), minor(dev),
                  static_cast<unsigned long>(ino));
    std::size_t holders = 0;
    while (std::fgets(line, sizeof line, f)) {
        std::string_view text(line);
        if (text.find("FLOCK") == std::string_view::npos) continue;
        if (text.find("->") != std::string_view::npos) continue;
        if (text.find(wanted) != std::string_view::npos) ++holders;
    }
    std::fclose(f);
    return holders;
}

}  // namespace shmds::detail
