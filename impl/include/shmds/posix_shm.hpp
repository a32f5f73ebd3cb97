// shmds/posix_shm.hpp: a named POSIX shared-memory segment, reference counted
// by the kernel, holding a table of named structures.
//
// Size. About 800 lines: the posix_shm class is a small part; the rest is
// options, attachment (locks, the fork registry, detach) and the opener's
// state machine (create, wait for ready, reclaim a stale segment). It is left
// whole until issue 18 splits attachment and opening into detail/ pieces in
// one redesign, with the conformance mutants (patches against these headers)
// and the instruction-gate baseline moved with it.
//
// Lifetime and reference counting
// - Every attached handle holds a shared flock(2) on its own open file
//   description of the segment's file. The kernel drops that lock when the
//   handle is destroyed or its process dies in any way (SIGKILL included), so
//   the set of locks is the set of live attachers: no count is stored in the
//   segment that a crash could leave wrong.
// - Detaching tries to upgrade to an exclusive lock; only the last live
//   attacher gets it, and it unlinks the name. An opener that raced with that
//   unlink sees the file's link count at 0 after taking its lock and starts
//   again.
// - Counting is separate: each attachment also holds an OFD lock on one byte
//   of its own far beyond the file's end (its attach slot, os.hpp), and
//   attach_count() probes those bytes, which works from any PID namespace.
// - No mapping is made through the locked description (map_segment): a
//   mapping keeps its description alive, in any fork() child that inherits
//   it too, and with it the locks.
// - A handle copied into a child by fork() re-registers in the child (its own
//   open file description and locks), so parent and child count separately.
//   Descriptors that carry locks are registered for the fork handlers in the
//   step that opens them (fork_guard.hpp), and unlocked before they are
//   closed, so a fork() by another thread at any moment copies no lock.
// - Process-safe structure handles share the attachment (attachment_ref):
//   the mapping lasts until the posix_shm and every such handle are gone.
// - A ready segment that nobody holds (every attacher died) is stale: the next
//   opener removes it, reports so through the notice handler, and proceeds as
//   if the name were free.
//
// Initialisation
// - The creator makes the file with O_EXCL, reserves every byte with
//   posix_fallocate (so a full /dev/shm fails here with ENOSPC, never later
//   with SIGBUS), writes the header and table, and stores `ready` into the
//   state word last. Openers read nothing before they see `ready`, then
//   validate magic, version, size and every offset.
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
#include <mutex>
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
#include "shmds/detail/fault.hpp"
#include "shmds/detail/fork_guard.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/process.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/error.hpp"
#include "shmds/names.hpp"
#include "shmds/shm_table.hpp"

namespace shmds {

/// Receives messages about recoveries the library performed on its own (a
/// stale segment removed, for instance). Never called on the hot path.
using notice_handler = void (*)(const std::string& message);

inline void print_notice_to_stderr(const std::string& message) {
    std::fprintf(stderr, "shmds: %s\n", message.c_str());
}

/// Creation parameters, trust and waits. When opening an existing segment,
/// `mode`, `allow_other_owner`, `timeout` and `notice` matter; the others are
/// fixed when it is created.
struct segment_options {
    /// Permission bits of a new segment (applied exactly, whatever the umask).
    /// Also what the caller accepts of an existing one: a segment that lets
    /// group or others write when `mode` does not is refused with
    /// untrusted_error, since any process that can write it can damage what
    /// this one reads. Pass the wider mode (0660, 0666) to accept it.
    mode_t mode = 0600;
    /// Accept an existing segment whose file another user owns. Off by
    /// default: another user's segment is refused with untrusted_error.
    bool allow_other_owner = false;
    /// Most structures the segment's table can hold.
    std::uint32_t table_capacity = 64;
    /// Every structure starts on this boundary: 64 (a cache line) or 128
    /// (an adjacent-line pair); any power of two up to 4096.
    std::uint32_t alignment = cache_line_size;
    /// Longest wait for another process: a creator to finish initialising,
    /// a last detacher to finish unlinking, the table lock.
    std::chrono::milliseconds timeout{5000};
    notice_handler notice = print_notice_to_stderr;
};

namespace detail {

/// One attachment of this process to a segment. Heap-allocated so that its
/// address is stable for the fork registry while posix_shm handles move.
struct attachment {
    std::string name;
    int fd = -1;
    int spare_fd = -1;  ///< locked open file description made for a fork() child
    std::byte* base = nullptr;
    std::size_t size = 0;
    segment_identity identity{};  ///< validated copy
    pid_t owner_pid = 0;
    std::chrono::milliseconds timeout{0};  ///< the segment's bound on waits for other processes
    bool counted = false;                  ///< holds a shared lock on its own open file description
    bool holds_slot = false;               ///< its description holds an attach slot (os.hpp)
    /// A listing's look (segment_opener::purpose::observe): holds no lock, is
    /// not counted, never unlinks, and makes no spare for a fork() child.
    bool observer = false;
    bool created = false;
    dev_t dev = 0;
    ino_t ino = 0;
    attachment* prev = nullptr;
    attachment* next = nullptr;
};

/// The process's live attachments, so that a fork() child gets locks of its
/// own (it would otherwise share the parent's open file descriptions, and
/// with them the parent's locks). The child's locks are taken in the parent
/// before the fork, so there is no moment at which the child is attached but
/// uncounted, and nothing can fail in the child. The list is edited under
/// the fork guard (fork_guard.hpp); a descriptor being attached is a
/// fork_private_fd until it joins the list, so no fork sees it in neither.
class attachment_registry {
public:
    static fork_aware_list<attachment>& list() {
        static const bool installed =
            (fork_guard::install({&before_fork, &after_fork_in_parent, &after_fork_in_child}), true);
        (void)installed;
        return attachments_;
    }

private:
    /// Every attachment of the process (constant-initialised).
    static inline fork_aware_list<attachment> attachments_{};

    static void before_fork() {
        attachments_.for_each_locked([](attachment* a) {
            if (a->observer) return;
            char path[40] = "/proc/self/fd/";
            append_decimal(path + 14, a->fd);
            a->spare_fd = ::open(path, O_RDWR | O_CLOEXEC);
            if (a->spare_fd >= 0 &&
                (::flock(a->spare_fd, LOCK_SH | LOCK_NB) != 0 || !take_attach_slot(a->spare_fd))) {
                ::close(a->spare_fd);
                a->spare_fd = -1;
            }
        });
    }

    static void after_fork_in_parent() {
        // The child holds its copy of each spare, and with it the locks.
        attachments_.for_each_locked([](attachment* a) {
            if (a->spare_fd >= 0) ::close(a->spare_fd);
            a->spare_fd = -1;
        });
    }

    /// Runs in the child with one thread: async-signal-safe calls only.
    static void after_fork_in_child() {
        // (attachments_ directly: list()'s first call may be under way in
        // another thread of the parent, and its guard would never open here.)
        attachments_.for_each_locked([](attachment* a) {
            if (a->observer) {
                // holds no lock: nothing to give or take back
            } else if (a->spare_fd >= 0) {
                ::close(a->fd);
                a->fd = a->spare_fd;
                a->counted = true;
                a->holds_slot = true;
            } else {
                a->counted = false;  // shares the parent's locks; never unlinks
            }
            a->spare_fd = -1;
            a->owner_pid = ::getpid();
        });
    }

    static void append_decimal(char* out, int value) noexcept {
        char digits[16];
        int n = 0;
        do {
            digits[n++] = static_cast<char>('0' + value % 10);
            value /= 10;
        } while (value > 0 && n < 15);
        while (n > 0) *out++ = digits[--n];
        *out = '\0';
    }
};

/// True when `name` still names the file (dev, ino). Looks the name up with
/// stat(2) where glibc's shm_open keeps it, rather than opening it: with no
/// descriptor to spare (EMFILE) an open would fail and make a creator take
/// its own new file for vanished, leaving it behind.
inline bool name_refers_to(const std::string& name, dev_t dev, ino_t ino) noexcept {
    char path[sizeof "/dev/shm" + max_segment_name_length];
    if (name.size() > max_segment_name_length) return false;
    std::memcpy(path, "/dev/shm", 8);
    std::memcpy(path + 8, name.c_str(), name.size() + 1);
    struct stat st {};
    return ::stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/// Unlinks `name` if it still names the file open as `fd`; true if it did.
/// The caller holds the exclusive lock, so no live process is attached to
/// that file.
inline bool unlink_if_same(const std::string& name, int fd) noexcept {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && st.st_nlink > 0 && name_refers_to(name, st.st_dev, st.st_ino) &&
           ::shm_unlink(name.c_str()) == 0;
}

/// Detaches: unmaps, and unlinks the name when this was the last attacher.
/// Never throws. Under the fork guard, so that no fork() copies the
/// descriptor after it left the registry.
inline void detach(attachment* a) noexcept {
    {
        std::lock_guard guard(fork_guard::mutex());
        attachment_registry::list().remove_locked(a);
        if (a->base) ::munmap(a->base, a->size);
        if (a->fd >= 0) {
            if (a->counted && a->owner_pid == ::getpid()) {
                if (::flock(a->fd, LOCK_EX | LOCK_NB) == 0) {
                    SHMDS_FAULT_POINT("segment.detach.last");
                    unlink_if_same(a->name, a->fd);
                }
                SHMDS_FAULT_POINT("segment.detach.decided");
                // Unlocked before closing: a child forked a moment ago holds
                // a copy of the description until its fork handler runs.
                // (Not in a child that shares its parent's description.)
                release_attach_locks(a->fd);
            }
            ::close(a->fd);
        }
    }
    delete a;
}

struct attachment_deleter {
    void operator()(attachment* a) const noexcept { detach(a); }
};
/// The opener's result: the one owner until posix_shm shares it.
using attachment_ptr = std::unique_ptr<attachment, attachment_deleter>;
/// What a process-safe structure handle keeps of its segment: the
/// attachment, shared with the posix_shm it was opened through, so that the
/// mapping lasts as long as the last of them. Copied, not emptied, when its
/// handle moves: a moved-from handle still refers to a live mapping (its
/// calls fail cleanly, with role_error, say, instead of reading null).
class attachment_ref {
public:
    explicit attachment_ref(std::shared_ptr<const attachment> shared) noexcept : shared_(std::move(shared)) {}
    /// (No move constructor: moving copies.)
    attachment_ref(const attachment_ref&) noexcept = default;
    attachment_ref& operator=(const attachment_ref&) = delete;
    ~attachment_ref() = default;

    const attachment* operator->() const noexcept { return shared_.get(); }

private:
    std::shared_ptr<const attachment> shared_;
};

/// The longest wait honoured: beyond it, "wait" means "for ever" without
/// overflowing the clock's arithmetic.
inline std::chrono::milliseconds bounded_wait(std::chrono::milliseconds wait) noexcept {
    return std::min(wait, std::chrono::milliseconds(std::chrono::hours(24 * 365 * 100)));
}

/// A private copy of a segment's identity, taken after its state word said
/// ready (acquire), so the copy is complete.
inline segment_identity copy_identity(const void* base) noexcept {
    segment_identity copy;
    std::memcpy(&copy, base, sizeof copy);
    return copy;
}

/// Maps `size` bytes of the segment open as `fd` (read and write), through
/// a description of its own that is closed at once. A mapping holds the
/// description it was made through, and so does every copy of the mapping
/// that a fork() child inherits; locks belong to descriptions, so a mapping
/// made through the locked descriptor would keep this attachment's locks
/// (its count and its say in who detaches last) alive in any child, after
/// this process detached or died. Returns MAP_FAILED with errno set on
/// failure (EMFILE included); may throw std::bad_alloc. (The reopening is why
/// a segment's mode must let its owner read and write it.)
inline void* map_segment(int fd, std::size_t size) {
    char path[48];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    fork_private_fd unlocked = fork_private_fd::open([&] { return ::open(path, O_RDWR | O_CLOEXEC); });
    if (!unlocked) return MAP_FAILED;
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, unlocked.get(), 0);
    const int saved_errno = errno;
    unlocked.reset();
    errno = saved_errno;
    return base;
}

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

    void restart_clock() { deadline_ = steady_clock::now() + bounded_wait(options_.timeout); }

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
        a->timeout = bounded_wait(options_.timeout);
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

}  // namespace detail

class posix_shm {
public:
    /// Opens the segment `name`, creating it with `size` bytes if it does not
    /// exist. Throws mismatch_error (size_mismatch) if it exists but is
    /// smaller; untrusted_error if it exists but another user owns it or it
    /// lets others write more than options.mode (see segment_options);
    /// invalid_argument_error for a bad name, size or option;
    /// corrupted_error for a segment that fails validation; std::system_error
    /// for an OS failure (ENOSPC when /dev/shm cannot hold it). Blocks at most
    /// options.timeout for another process.
    posix_shm(std::string_view name, std::size_t size, const segment_options& options = {})
        : posix_shm(open_or_create, name, size, options) {}

    /// Opens the existing segment `name`; throws not_found_error if absent,
    /// untrusted_error if another user owns it or it lets others write more
    /// than options.mode (see segment_options).
    explicit posix_shm(std::string_view name, const segment_options& options = {})
        : posix_shm(open_only, name, options) {}

    /// Creates `name`; throws already_exists_error if it exists.
    posix_shm(create_only_t, std::string_view name, std::size_t size, const segment_options& options = {})
        : posix_shm(open_mode::create_only, name, size, options) {}

    posix_shm(open_only_t, std::string_view name, const segment_options& options = {})
        : posix_shm(open_mode::open_only, name, 0, options) {}

    posix_shm(open_or_create_t, std::string_view name, std::size_t size, const segment_options& options = {})
        : posix_shm(open_mode::open_or_create, name, size, options) {}

    posix_shm(posix_shm&&) noexcept = default;
    posix_shm& operator=(posix_shm&&) noexcept = default;
    posix_shm(const posix_shm&) = delete;
    posix_shm& operator=(const posix_shm&) = delete;

    /// Detaches, once the process-safe structure handles opened through this
    /// handle are gone too (they keep the mapping: see shared_attachment()).
    /// The last live attacher's detach removes the name. Plain structure
    /// handles (shm_array, shm_queue, shm_stack, shm_span) must not be used
    /// afterwards.
    ~posix_shm() = default;

    [[nodiscard]] const std::string& name() const noexcept { return attachment_->name; }
    /// Total bytes of the segment, header and table included.
    [[nodiscard]] std::size_t size() const noexcept { return attachment_->size; }
    [[nodiscard]] void* base() const noexcept { return attachment_->base; }
    /// True when this handle created the segment (rather than opening it).
    [[nodiscard]] bool created() const noexcept { return attachment_->created; }
    /// Random identity chosen at creation: two handles with the same id see
    /// the same segment, even across a remove and re-create of the name.
    [[nodiscard]] std::uint64_t segment_id() const noexcept { return attachment_->identity.segment_id; }
    [[nodiscard]] std::uint32_t alignment() const noexcept { return attachment_->identity.alignment; }
    /// The validated identity and geometry recorded at creation.
    [[nodiscard]] const detail::segment_identity& identity() const noexcept { return attachment_->identity; }

    /// Live attachments of this segment by any process, as the kernel counts
    /// them (one per handle; a handle inherited across fork counts in each
    /// process; processes in other PID namespaces count too). Probes the
    /// attach locks (two system calls per attacher); throws
    /// std::system_error if the kernel refuses.
    [[nodiscard]] std::size_t attach_count() const {
        return detail::count_attach_slots(attachment_->fd) + (attachment_->holds_slot ? 1 : 0);
    }

    /// This process's attachment (descriptor, mapping); stable while this
    /// handle lives, even if the handle moves.
    [[nodiscard]] const detail::attachment* native_attachment() const noexcept { return attachment_.get(); }
    /// The same, shared: structure handles keep it (and with it the mapping)
    /// for as long as they live, even past this handle.
    [[nodiscard]] detail::attachment_ref shared_attachment() const noexcept {
        return detail::attachment_ref(attachment_);
    }

    /// The segment's directory of structures.
    [[nodiscard]] shm_table& table() noexcept { return table_; }
    [[nodiscard]] const shm_table& table() const noexcept { return table_; }

    /// Removes the structure `name` and frees its space for reuse. Throws
    /// not_found_error if there is none. Handles to it, in any process, must
    /// not be used afterwards.
    void destroy(std::string_view structure_name) { table_.destroy(structure_name); }

    [[nodiscard]] bool contains(std::string_view structure_name) const {
        return table_.contains(structure_name);
    }

    /// Removes the name `name` now, whoever is attached (they keep their
    /// mappings). Returns false if it did not exist or was not valid. Never
    /// throws.
    static bool remove(std::string_view name) noexcept {
        if (!is_valid_segment_name(name)) return false;
        try {
            return ::shm_unlink(std::string(name).c_str()) == 0;
        } catch (...) {
            return false;
        }
    }

    /// True when a segment called `name` exists. Never throws.
    static bool exists(std::string_view name) noexcept {
        if (!is_valid_segment_name(name)) return false;
        try {
            int fd = ::shm_open(std::string(name).c_str(), O_RDONLY | O_CLOEXEC, 0);
            if (fd < 0) return errno == EACCES;
            ::close(fd);
            return true;
        } catch (...) {
            return false;
        }
    }

private:
    posix_shm(open_mode mode, std::string_view name, std::size_t size, const segment_options& options)
        : attachment_(detail::segment_opener(mode, name, size, options).run()),
          table_(attachment_->base, attachment_->identity, attachment_->name,
                 detail::bounded_wait(options.timeout)) {}

    std::shared_ptr<detail::attachment> attachment_;
    shm_table table_;
};

}  // namespace shmds
