// shmds/detail/participants.hpp: which processes are alive, as the kernel
// knows it.
//
// Each participant of a concurrent structure (an SPSC role, or any handle of
// an MPMC queue or concurrent stack) holds a write lock on one byte of the
// segment's file, through an open file description of its own (an "OFD
// lock", fcntl F_OFD_SETLK). The kernel drops the lock when the handle closes
// it or its process dies, however it dies; a lock that nobody holds means a
// participant id that nobody alive uses. The bytes lie far beyond the end of
// any segment, one range of 2^16 per structure (by its creation serial), so
// they never touch data, and OFD locks are independent of the flock() that
// counts attachers.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "shmds/detail/os.hpp"
#include "shmds/detail/process.hpp"

namespace shmds::detail {

inline constexpr std::uint64_t lock_space_base = std::uint64_t{1} << 62;
inline constexpr std::uint64_t lock_ids_per_structure = std::uint64_t{1} << 16;

/// File offset of participant `id`'s lock byte for the structure `serial`.
constexpr std::uint64_t participant_lock_offset(std::uint64_t serial, std::uint32_t id) noexcept {
    return lock_space_base + (serial % (std::uint64_t{1} << 45)) * lock_ids_per_structure + id;
}

inline struct flock lock_request(short type, std::uint64_t offset) noexcept {
    struct flock request {};
    request.l_type = type;
    request.l_whence = SEEK_SET;
    request.l_start = static_cast<off_t>(offset);
    request.l_len = 1;
    request.l_pid = 0;
    return request;
}

/// A participant lock held by this object (its own open file description of
/// the segment's file, closed on destruction).
class participant_lock {
public:
    participant_lock() noexcept = default;

    /// Takes the lock at `offset` unless another open file description holds
    /// it. `segment_fd` is any descriptor of the segment's file.
    static std::optional<participant_lock> try_take(int segment_fd, std::uint64_t offset) {
        char path[48];
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", segment_fd);
        unique_fd fd(::open(path, O_RDWR | O_CLOEXEC));
        if (!fd) throw_os_error(errno, "cannot open a second description of a segment to lock a role");
        struct flock request = lock_request(F_WRLCK, offset);
        if (::fcntl(fd.get(), F_OFD_SETLK, &request) != 0) {
            if (errno == EAGAIN || errno == EACCES) return std::nullopt;
            throw_os_error(errno, "cannot take a participant lock");
        }
        participant_lock lock;
        lock.fd_ = std::move(fd);
        return lock;
    }

    [[nodiscard]] bool held() const noexcept { return static_cast<bool>(fd_); }

    /// Drops the lock. In a fork() child, whose descriptor is a copy of the
    /// parent's, this leaves the parent's lock in place.
    void release() noexcept { fd_.reset(); }

private:
    unique_fd fd_;
};

/// True when an open file description other than `segment_fd`'s holds the
/// lock at `offset`: the participant it stands for is alive.
inline bool participant_alive(int segment_fd, std::uint64_t offset) {
    struct flock request = lock_request(F_WRLCK, offset);
    if (::fcntl(segment_fd, F_OFD_GETLK, &request) != 0)
        throw_os_error(errno, "cannot query a participant lock");
    return request.l_type != F_UNLCK;
}

}  // namespace shmds::detail

namespace shmds::detail {

/// A handle's membership in a structure: which participant id it holds, and
/// whether it holds it in this process (a handle copied into a fork() child
/// does not: it must join again, and never acts under its parent's id).
class participation {
public:
    /// True when this handle holds its id in the current process. One
    /// relaxed load: cheap enough for every operation.
    [[nodiscard]] bool active() const noexcept {
        return generation_ == fork_generation.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint32_t id() const noexcept { return id_; }

    /// Takes participant `id`; false when another live participant has it.
    bool join_as(int segment_fd, std::uint64_t serial, std::uint32_t id) {
        leave();
        auto lock = participant_lock::try_take(segment_fd, participant_lock_offset(serial, id));
        if (!lock) return false;
        lock_ = std::move(*lock);
        id_ = id;
        generation_ = fork_generation.load(std::memory_order_relaxed);
        asymmetric_fence::ensure_registered();
        return true;
    }

    /// Takes the lowest free id below `limit`; false when all are taken.
    bool join_any(int segment_fd, std::uint64_t serial, std::uint32_t limit) {
        for (std::uint32_t id = 0; id < limit; ++id)
            if (join_as(segment_fd, serial, id)) return true;
        return false;
    }

    void leave() noexcept {
        lock_.release();
        generation_ = ~std::uint64_t{0};
    }

private:
    participant_lock lock_;
    std::uint32_t id_ = 0;
    std::uint64_t generation_ = ~std::uint64_t{0};
};

}  // namespace shmds::detail
