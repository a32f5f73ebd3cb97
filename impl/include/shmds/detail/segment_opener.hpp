// shmds/detail/segment_opener.hpp: the attach protocol, from a name to a
// validated attachment: create the file with O_EXCL and initialise it behind
// the state word, or open an existing one, take its locks, wait for it to be
// ready, validate it, and reclaim it when every attacher died (stale) or its
// creator died half-way (unfinished).
//
// Owns nothing it returns: the descriptor it opened is handed to an
// attachment (attachment.hpp) once the segment is validated, or closed.
// Must never read a segment before its state word says ready, nor trust a
// header it has not validated as a private copy; must never remove a file it
// cannot prove is a shmds segment nobody holds; every wait for another process
// ends at the caller's deadline.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmds/config.hpp"
#include "shmds/detail/attachment.hpp"
#include "shmds/detail/durations.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/fork_guard.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/process.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/error.hpp"
#include "shmds/names.hpp"
#include "shmds/segment_options.hpp"
#include "shmds/shm_table.hpp"

namespace shmds::detail {

/// What an unlocked file held exclusively looks like.
enum class file_look { empty, unfinished, ready, foreign };

inline file_look look_at_file(int fd) noexcept {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return file_look::foreign;
    if (st.st_size == 0) return file_look::empty;
    if (static_cast<std::uint64_t>(st.st_size) < sizeof(segment_header)) return file_look::foreign;
    // Read, not mapped: a mapping would keep this locked description alive
    // in a child forked meanwhile (see map_segment).
    segment_identity id{};
    if (::pread(fd, &id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) return file_look::foreign;
    // The creator writes the state word before the magic: an unfinished
    // segment has no magic yet, or ours.
    if ((id.state == state_uninitialised || id.state == state_initialising) &&
        (id.magic == 0 || id.magic == segment_magic))
        return file_look::unfinished;
    if (id.state == state_ready && id.magic == segment_magic && id.version == format_version &&
        id.header_size == sizeof(segment_header))
        return file_look::ready;
    return file_look::foreign;
}

/// The attach protocol (see the top of this file).
class segment_opener {
public:
    /// Why the segment is opened.
    enum class purpose {
        attach,   ///< posix_shm: a counted attacher; reclaims a stale segment and starts afresh
        observe,  ///< a listing's look: holds no lock once it has looked, is not counted,
                  ///< never unlinks, and leaves a stale segment in place (run() returns none)
    };

    segment_opener(open_mode mode, std::string_view name, std::size_t size, const segment_options& options,
                   purpose why = purpose::attach)
        : mode_(mode), purpose_(why), name_(name), size_(size), options_(options) {}

    /// Attaches (or, to observe, maps). Empty only when an observer found
    /// the segment stale.
    attachment_ptr run() {
        check_segment_name(name_);
        if ((options_.mode & ~mode_t{0777}) != 0)
            throw invalid_argument_error(
                errc::invalid_argument,
                "segment '" + name_ + "': mode " + octal(options_.mode) + " has bits outside 0777");
        if ((options_.mode & 0600) != 0600)
            throw invalid_argument_error(errc::invalid_argument,
                                         "segment '" + name_ + "': mode " + octal(options_.mode) +
                                             " must let its owner read and write (0600): every handle, the "
                                             "creator's too, opens the segment for reading and writing");
        if (options_.timeout.count() < 0)
            throw invalid_argument_error(errc::invalid_argument, "segment '" + name_ + "': negative timeout");
        if (mode_ != open_mode::open_only) check_creation_parameters();
        restart_clock();

        backoff pause;
        for (;;) {
            attachment_ptr attached;
            outcome result = outcome::vanished;
            if (mode_ != open_mode::open_only) {
                fork_private_fd fd = fork_private_fd::open([&] {
                    return ::shm_open(name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, options_.mode);
                });
                if (fd) {
                    result = create(std::move(fd), attached);
                } else if (errno != EEXIST) {
                    throw_os_error(errno, "cannot create segment '" + name_ + "'");
                } else if (mode_ == open_mode::create_only) {
                    throw already_exists_error("cannot create segment '" + name_ + "': it already exists");
                }
            }
            if (result == outcome::vanished && !attached) {
                fork_private_fd fd =
                    fork_private_fd::open([&] { return ::shm_open(name_.c_str(), O_RDWR | O_CLOEXEC, 0); });
                if (fd) {
                    result = open_existing(std::move(fd), attached);
                } else if (errno == ENOENT) {
                    if (mode_ == open_mode::open_only)
                        throw not_found_error("segment '" + name_ + "' does not exist");
                } else {
                    throw_os_error(errno, "cannot open segment '" + name_ + "'");
                }
            }
            if (result == outcome::attached || result == outcome::left_stale) return attached;
            if (result == outcome::reclaimed) {
                restart_clock();  // a dead process's leftover was removed: a fresh start
                continue;
            }
            // The name was removed, or replaced, while we looked: look again.
            if (steady_clock::now() > deadline_)
                throw timeout_error("segment '" + name_ + "' kept disappearing and reappearing for " +
                                    std::to_string(options_.timeout.count()) + " ms");
            pause.pause();
        }
    }

private:
    enum class outcome {
        attached,    ///< the attachment is ready
        vanished,    ///< the file we held is no longer the one named: look the name up again
        reclaimed,   ///< the file was a dead process's leftover and has been removed
        left_stale,  ///< the file is a dead process's leftover, left in place (purpose::observe)
    };

    static std::string octal(mode_t mode) {
        char text[16];
        std::snprintf(text, sizeof text, "0%o", static_cast<unsigned>(mode));
        return text;
    }

    void restart_clock() {
        deadline_ = steady_clock::now() + bounded<std::chrono::milliseconds>(options_.timeout);
    }

    void check_creation_parameters() {
        geometry_ = compute_geometry(options_.alignment, options_.table_capacity);
        if (!geometry_)
            throw invalid_argument_error(errc::invalid_argument,
                                         "segment '" + name_ + "': alignment " +
                                             std::to_string(options_.alignment) +
                                             " must be a power of two from 64 to 4096 and table capacity " +
                                             std::to_string(options_.table_capacity) + " must be from 1 to " +
                                             std::to_string(max_table_capacity));
        if (size_ == 0)
            throw invalid_argument_error(errc::invalid_size,
                                         "cannot create segment '" + name_ + "' of size 0");
        if (size_ < geometry_->min_total_size)
            throw invalid_argument_error(
                errc::invalid_size,
                "cannot create segment '" + name_ + "' of " + std::to_string(size_) +
                    " bytes: its header and a table of " + std::to_string(options_.table_capacity) +
                    " structures need at least " + std::to_string(geometry_->min_total_size) +
                    " (lower segment_options::table_capacity or ask for more)");
        if (size_ > static_cast<std::size_t>(PTRDIFF_MAX))
            throw invalid_argument_error(errc::invalid_size, "cannot create segment '" + name_ + "' of " +
                                                                 std::to_string(size_) +
                                                                 " bytes: larger than a file can be");
    }

    /// Wraps a validated mapping, takes an attach slot for the count (not to
    /// observe), and hands the descriptor from the opener's keeping to the
    /// registry's. Unmaps the mapping if any of that fails.
    attachment_ptr make_attachment(fork_private_fd& fd, void* base, std::size_t size, bool created,
                                   const segment_identity& identity, const struct stat& st) {
        attachment* a = nullptr;
        try {
            if (purpose_ == purpose::attach && !take_attach_slot(fd.get()))
                throw_os_error(
                    errno,
                    "cannot take an attach slot (the lock that counts attachers) in segment '" + name_ + "'");
            attachment_registry::list();  // (its first call installs fork handlers: not under the guard)
            a = new attachment;
            a->name = name_;
        } catch (...) {
            delete a;
            ::munmap(base, size);
            throw;
        }
        a->holds_slot = purpose_ == purpose::attach;
        a->observer = purpose_ == purpose::observe;
        SHMDS_FAULT_POINT("segment.attach.slot_taken");
        a->base = static_cast<std::byte*>(base);
        a->size = size;
        a->identity = identity;
        a->owner_pid = ::getpid();
        a->timeout = bounded<std::chrono::milliseconds>(options_.timeout);
        a->counted = purpose_ == purpose::attach;
        a->created = created;
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        fd.hand_over([a](int raw) noexcept {
            a->fd = raw;
            attachment_registry::list().add_locked(a);
        });
        return attachment_ptr(a);
    }

    /// Takes a lock of `type` on `fd`, retrying while another process holds
    /// a conflicting one, until the deadline.
    void lock_until_deadline(int fd, int type, const char* while_doing) {
        backoff pause;
        while (::flock(fd, type | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR)
                throw_os_error(errno, "cannot lock segment '" + name_ + "'");
            if (steady_clock::now() > deadline_)
                throw timeout_error("segment '" + name_ + "' stayed locked by another process for " +
                                    std::to_string(options_.timeout.count()) + " ms " + while_doing);
            pause.pause();
        }
    }

    /// Initialises the file we just created with O_EXCL.
    outcome create(fork_private_fd fd, attachment_ptr& out) {
        // Until the attachment exists, any failure removes the new name, if
        // it is still ours.
        struct remover {
            const std::string& name;
            int fd;
            bool armed = true;
            ~remover() {
                if (armed) unlink_if_same(name, fd);
            }
        } remove_on_failure{name_, fd.get()};

        SHMDS_FAULT_POINT("segment.create.file_made");
        lock_until_deadline(fd.get(), LOCK_SH, "while creating it");
        // Between O_EXCL and our lock an opener that gave up waiting may have
        // taken the file for a dead creator's leftover and removed it. Now
        // that we hold a lock nobody can, so check once.
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw_os_error(errno, "cannot stat segment '" + name_ + "'");
        if (st.st_nlink == 0 || !name_refers_to(name_, st.st_dev, st.st_ino)) {
            remove_on_failure.armed = false;
            return outcome::vanished;
        }
        if (::fchmod(fd.get(), options_.mode) != 0)
            throw_os_error(errno, "cannot set the mode of segment '" + name_ + "'");
        int rc = 0;
        do {
            rc = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size_));
        } while (rc == EINTR);
        if (rc != 0)
            throw_os_error(rc, "cannot reserve " + std::to_string(size_) + " bytes for segment '" + name_ +
                                   "'" + (rc == ENOSPC ? " (/dev/shm is full)" : ""));
        SHMDS_FAULT_POINT("segment.create.reserved");
        void* base = map_segment(fd.get(), size_);
        if (base == MAP_FAILED) throw_os_error(errno, "cannot map segment '" + name_ + "'");

        auto* h = static_cast<segment_header*>(base);
        state_word(*h).store(state_initialising, std::memory_order_relaxed);
        segment_identity& id = h->identity;
        id.magic = segment_magic;
        id.version = format_version;
        id.total_size = size_;
        id.segment_id = random_u64();
        id.alignment = geometry_->alignment;
        id.table_capacity = geometry_->table_capacity;
        id.index_slots = geometry_->index_slots;
        id.mode = static_cast<std::uint32_t>(options_.mode);
        id.entries_offset = geometry_->entries_offset;
        id.index_offset = geometry_->index_offset;
        id.heap_offset = geometry_->heap_offset;
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        id.created_unix_ns = static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
        id.creator_pid = static_cast<std::int32_t>(::getpid());
        id.header_size = sizeof(segment_header);
        try {
            shm_table::format(static_cast<std::byte*>(base), *geometry_);
        } catch (...) {
            ::munmap(base, size_);
            throw;
        }
        segment_identity identity = copy_identity(base);
        identity.state = state_ready;
        SHMDS_FAULT_POINT("segment.create.formatted");
        state_word(*h).store(state_ready, std::memory_order_release);
        out = make_attachment(fd, base, size_, true, identity, st);
        remove_on_failure.armed = false;
        return outcome::attached;
    }

    /// Refuses a file that another user owns, or that lets group or others
    /// write beyond options_.mode, before anything is locked, read or removed.
    void check_trust(int fd) const {
        struct stat st {};
        if (::fstat(fd, &st) != 0) throw_os_error(errno, "cannot stat segment '" + name_ + "'");
        if (st.st_uid != ::geteuid() && !options_.allow_other_owner)
            throw untrusted_error("segment '" + name_ + "' is owned by uid " + std::to_string(st.st_uid) +
                                  ", not by this process's uid " + std::to_string(::geteuid()) +
                                  " (set segment_options::allow_other_owner to accept it)");
        const mode_t unexpected_writers = st.st_mode & (S_IWGRP | S_IWOTH) & ~options_.mode;
        if (unexpected_writers == 0) return;
        const char* who = unexpected_writers == (S_IWGRP | S_IWOTH) ? "its group and others"
                          : unexpected_writers == S_IWGRP           ? "its group"
                                                                    : "others";
        throw untrusted_error("segment '" + name_ + "' has mode " + octal(st.st_mode & 0777) + ", which lets " +
                              who + " write, but mode " + octal(options_.mode) +
                              " was asked for (pass a segment_options::mode that includes that to accept it)");
    }

    /// Attaches to the existing file `fd`.
    outcome open_existing(fork_private_fd fd, attachment_ptr& out) {
        check_trust(fd.get());
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
            // Nobody else holds it: either its creator is between shm_open
            // and its first lock, or everyone attached has died.
            if (look_at_file(fd.get()) == file_look::ready) {
                if (purpose_ == purpose::observe) return outcome::left_stale;
                if (!unlink_if_same(name_, fd.get())) return outcome::vanished;
                options_.notice("removed stale segment '" + name_ +
                                "': every process attached to it had died");
                return outcome::reclaimed;
            }
        }
        if (purpose_ == purpose::observe)
            ::flock(fd.get(), LOCK_UN);  // it only looks: its lock would count, and hold off the last detach
        else
            lock_until_deadline(fd.get(), LOCK_SH, "while attaching");  // (converts an exclusive lock)
        SHMDS_FAULT_POINT("segment.attach.locked");

        backoff pause;
        for (;;) {
            struct stat st {};
            if (::fstat(fd.get(), &st) != 0) throw_os_error(errno, "cannot stat segment '" + name_ + "'");
            if (st.st_nlink == 0) return outcome::vanished;  // its last attacher removed it
            const auto size = static_cast<std::size_t>(st.st_size);
            if (size != 0 && size < sizeof(segment_header))
                throw corrupted_error("segment '" + name_ + "' is " + std::to_string(size) +
                                      " bytes, too small to be a shmds segment");
            if (size != 0) {
                void* base = map_segment(fd.get(), size);
                if (base == MAP_FAILED) throw_os_error(errno, "cannot map segment '" + name_ + "'");
                auto* h = static_cast<segment_header*>(base);
                const std::uint32_t state = state_word(*h).load(std::memory_order_acquire);
                if (state == state_ready) {
                    segment_identity identity = copy_identity(base);
                    identity.state = state_ready;
                    validate(identity, size, base);
                    out = make_attachment(fd, base, size, false, identity, st);
                    return outcome::attached;
                }
                ::munmap(base, size);
                if (state != state_uninitialised && state != state_initialising)
                    throw corrupted_error("segment '" + name_ + "' has an invalid state word (" +
                                          std::to_string(state) + ")");
            }
            if (steady_clock::now() > deadline_) return reclaim_unfinished(fd.get());
            pause.pause();
        }
    }

    /// The segment did not become ready in time. If we are its only holder
    /// and it looks like an unfinished shmds segment, its creator died
    /// half-way: remove it. Otherwise report the wait.
    outcome reclaim_unfinished(int fd) {
        if (purpose_ == purpose::attach && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
            const file_look look = look_at_file(fd);
            if (look == file_look::empty || look == file_look::unfinished) {
                if (!unlink_if_same(name_, fd)) return outcome::vanished;
                options_.notice("removed segment '" + name_ +
                                "': its creator died before finishing its initialisation");
                return outcome::reclaimed;
            }
            throw corrupted_error("segment '" + name_ + "' is not a shmds segment");
        }
        throw timeout_error("segment '" + name_ + "' is still being initialised by another process after " +
                            std::to_string(options_.timeout.count()) + " ms");
    }

    /// Checks the private copy of a ready identity; on failure unmaps and throws.
    void validate(const segment_identity& identity, std::size_t size, void* base) {
        if (auto problem = identity_problem(identity, size)) {
            ::munmap(base, size);
            throw corrupted_error("segment '" + name_ + "' cannot be used: " + *problem);
        }
        if (mode_ != open_mode::open_only && identity.total_size < size_) {
            ::munmap(base, size);
            throw mismatch_error(errc::size_mismatch, "segment '" + name_ + "' exists with " +
                                                          std::to_string(identity.total_size) +
                                                          " bytes, less than the " + std::to_string(size_) +
                                                          " requested");
        }
    }

    open_mode mode_;
    purpose purpose_;
    std::string name_;
    std::size_t size_;
    segment_options options_;
    std::optional<segment_geometry> geometry_;
    steady_clock::time_point deadline_{};
};

}  // namespace shmds::detail
