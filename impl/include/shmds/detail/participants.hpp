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
// they never touch data, nor the attach slots that count attachers (lower,
// see os.hpp); OFD locks are independent of the segment's flock(). A fork()
// child never keeps a copy of one (fork_guard.hpp).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "shmds/detail/fault.hpp"
#include "shmds/detail/fork_guard.hpp"
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

/// A participant lock held by this object: its own open file description of
/// the segment's file, registered with the fork guard from the moment it is
/// opened (a fork() child closes its copy at once: a copy would share the
/// lock, and keep a dead parent's id or role looking alive for as long as
/// the child lives), and closed on destruction.
class participant_lock {
public:
    participant_lock() noexcept = default;

    /// Takes the lock at `offset` unless another open file description holds
    /// it. `segment_fd` is any descriptor of the segment's file; `who` names
    /// the structure in error messages (the open can fail with EMFILE).
    static std::optional<participant_lock> try_take(int segment_fd, std::uint64_t offset,
                                                    std::string_view who) {
        char path[48];
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", segment_fd);
        // Registered before it is locked: no fork can copy the lock unseen.
        fork_private_fd fd = fork_private_fd::open([&] { return ::open(path, O_RDWR | O_CLOEXEC); });
        if (!fd)
            throw_os_error(errno, std::string(who) +
                                      ": cannot open a second description of its segment to join it "
                                      "(each producer, consumer or participant holds one)");
        struct flock request = lock_request(F_WRLCK, offset);
        if (::fcntl(fd.get(), F_OFD_SETLK, &request) != 0) {
            if (errno == EAGAIN || errno == EACCES) return std::nullopt;
            throw_os_error(errno, std::string(who) + ": cannot take a participant lock");
        }
        SHMDS_FAULT_POINT("participant.lock.taken");
        participant_lock lock;
        lock.fd_ = std::move(fd);
        return lock;
    }

    /// Drops the lock (unlocked, then closed: see fork_private_fd::reset).
    /// Also done by the destructor.
    void release() noexcept { fd_.reset(); }

private:
    fork_private_fd fd_;
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
///
/// Whether it holds it is a plain flag in the handle, checked on every
/// operation (one compare of a byte the operation's cache line already
/// holds): every joined participation of the process is on a list that the
/// fork guard's child handler walks, clearing the flag in the child's copies
/// (fork_guard.hpp). Joining, leaving and moving edit that list under the
/// guard, so that no fork() sees a participation half on it.
class participation {
public:
    participation() noexcept = default;
    /// The moved-from participation no longer acts: only one handle holds an id.
    participation(participation&& other) noexcept { take_over(other); }
    participation& operator=(participation&& other) noexcept {
        if (this != &other) {
            leave();
            take_over(other);
        }
        return *this;
    }
    participation(const participation&) = delete;
    participation& operator=(const participation&) = delete;
    ~participation() { leave(); }

    /// True when this handle holds its id in the current process.
    [[nodiscard]] bool active() const noexcept { return active_; }
    [[nodiscard]] std::uint32_t id() const noexcept { return id_; }

    /// Takes participant `id`; false when another live participant has it.
    /// `who` names the structure in error messages.
    bool join_as(int segment_fd, std::uint64_t serial, std::uint32_t id, std::string_view who) {
        leave();
        fork_aware_list<participation>& joined = list();  // (installs the handler outside the guard)
        auto lock = participant_lock::try_take(segment_fd, participant_lock_offset(serial, id), who);
        if (!lock) return false;
        lock_ = std::move(*lock);
        id_ = id;
        std::lock_guard guard(fork_guard::mutex());
        joined.add_locked(this);
        on_list_ = active_ = true;
        return true;
    }

    /// Takes the lowest free id below `limit`; false when all are taken.
    bool join_any(int segment_fd, std::uint64_t serial, std::uint32_t limit, std::string_view who) {
        for (std::uint32_t id = 0; id < limit; ++id)
            if (join_as(segment_fd, serial, id, who)) return true;
        return false;
    }

    void leave() noexcept {
        lock_.release();
        if (!on_list_) return;
        std::lock_guard guard(fork_guard::mutex());
        registered_.remove_locked(this);
        on_list_ = active_ = false;
    }

private:
    friend class fork_aware_list<participation>;

    /// Moves `other`'s id and lock here (this one holds none).
    void take_over(participation& other) noexcept {
        lock_ = std::move(other.lock_);
        id_ = other.id_;
        if (!other.on_list_) return;
        std::lock_guard guard(fork_guard::mutex());
        registered_.remove_locked(&other);
        other.on_list_ = false;
        active_ = std::exchange(other.active_, false);
        registered_.add_locked(this);
        on_list_ = true;
    }

    static fork_aware_list<participation>& list() {
        static const bool installed = (fork_guard::install({nullptr, nullptr, &deactivate_in_child}), true);
        (void)installed;
        return registered_;
    }
    /// In the child: the copies of the parent's participations hold nothing.
    static void deactivate_in_child() {
        registered_.for_each_locked([](participation* p) { p->active_ = false; });
    }
    /// Every joined participation of the process (constant-initialised).
    static inline fork_aware_list<participation> registered_{};

    participant_lock lock_;
    std::uint32_t id_ = 0;
    bool active_ = false;
    bool on_list_ = false;  ///< whether the links below are on the list
    // fork_aware_list's links.
    participation* prev = nullptr;
    participation* next = nullptr;
};

}  // namespace shmds::detail
