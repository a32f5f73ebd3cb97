// shmds/detail/attachment.hpp: one process's attachment to a segment, and
// everything that keeps the kernel's count of attachers true: the registry
// that gives a fork() child locks of its own, detaching (the last attacher
// unlinks the name), and the shared reference that process-safe structure
// handles hold.
//
// Owns an attachment's descriptors, mapping and locks, from the moment the
// opener (segment_opener.hpp) hands them over until the last reference goes.
// Must never let a lock outlive the attachment that took it: descriptors
// that carry locks are unlocked before they are closed, and edited only under
// the fork guard (fork_guard.hpp), so that a fork() by another thread at any
// moment copies no lock into a child. Detaching never throws (noexcept): it
// runs in destructors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmds/detail/fault.hpp"
#include "shmds/detail/fork_guard.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/process.hpp"
#include "shmds/detail/segment_layout.hpp"

namespace shmds::detail {

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

}  // namespace shmds::detail
