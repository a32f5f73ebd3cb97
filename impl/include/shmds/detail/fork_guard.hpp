// shmds/detail/fork_guard.hpp: what a fork() child must not inherit as is.
//
// A descriptor open in one thread is copied into a child that another
// thread forks at any instant, and with it the open file description and
// every lock held through it (flock and OFD locks belong to the
// description, not to the process). A child that kept such a copy would
// keep its parent's attachment counted, or its participant id or role
// alive, for as long as it lives, whatever its parent does or however it
// dies.
//
// So every descriptor that carries (or will carry) a lock is registered the
// moment it is opened, under one process-wide mutex, the fork guard, which
// fork() also holds from its prepare handler until the child and parent
// handlers have run. Opening and registering are one step (no fork can fall
// between them); so are unregistering and closing (no fork can fall between
// them either, and a descriptor number is never closed in a child after its
// parent reused it). The handlers then see every such descriptor: a child
// closes its copies of the private ones (fork_private_fd) and gives each
// attachment a lock of its own (posix_shm.hpp). And every lock is dropped
// before its descriptor is closed, since a child forked a moment earlier
// holds a copy of the description until its handler has run.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <utility>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

namespace shmds::detail {

/// The process-wide mutex held across fork() and by every registration.
class fork_guard {
public:
    /// Work done around every fork(), with the guard held: `prepare` in the
    /// parent before it (in the reverse order of installation), `parent` in
    /// the parent after it, `child` in the child (one thread; async-signal-
    /// safe calls only). Any of them may be null.
    struct handlers {
        void (*prepare)() = nullptr;
        void (*parent)() = nullptr;
        void (*child)() = nullptr;
    };

    static std::mutex& mutex() noexcept {
        static std::mutex guard;
        return guard;
    }

    /// Adds `h` to the handlers. Each registry installs its own once (the
    /// library has three: fork_private_fd's, posix_shm's attachments and
    /// the structures' participations, participants.hpp).
    static void install(const handlers& h) {
        static const int registered = ::pthread_atfork(&prepare_all, &parent_all, &child_all);
        (void)registered;
        std::lock_guard lock(mutex());
        table& t = installed();
        if (t.count == max_handlers) std::abort();  // a new registry needs a bigger table
        t.entries[t.count++] = h;
    }

private:
    static constexpr std::size_t max_handlers = 4;
    struct table {
        handlers entries[max_handlers];
        std::size_t count = 0;
    };
    static table& installed() noexcept {
        static table t;
        return t;
    }

    static void prepare_all() {
        mutex().lock();
        const table& t = installed();
        for (std::size_t i = t.count; i-- > 0;)
            if (t.entries[i].prepare) t.entries[i].prepare();
    }
    static void parent_all() {
        const table& t = installed();
        for (std::size_t i = 0; i < t.count; ++i)
            if (t.entries[i].parent) t.entries[i].parent();
        mutex().unlock();
    }
    static void child_all() {
        const table& t = installed();
        for (std::size_t i = 0; i < t.count; ++i)
            if (t.entries[i].child) t.entries[i].child();
        mutex().unlock();  // a plain mutex: the child's only thread may unlock it
    }
};

/// An intrusive list (Node has `prev` and `next`) of things the fork
/// handlers visit. Edited only under the fork guard: callers hold it
/// (the `_locked` functions say so in their names).
template <class Node>
class fork_aware_list {
public:
    void add_locked(Node* node) noexcept {
        node->prev = nullptr;
        node->next = head_;
        if (head_) head_->prev = node;
        head_ = node;
    }

    void remove_locked(Node* node) noexcept {
        if (node->prev) node->prev->next = node->next;
        if (node->next) node->next->prev = node->prev;
        if (head_ == node) head_ = node->next;
        node->prev = node->next = nullptr;
    }

    /// Visits every node; only under the fork guard (the fork handlers).
    template <class Visit>
    void for_each_locked(Visit&& visit) {
        for (Node* node = head_; node; node = node->next) visit(node);
    }

private:
    Node* head_ = nullptr;
};

/// A descriptor that a fork() child closes at once. Opened and registered
/// in one step, closed and unregistered in one step (see the top of this
/// file). Move-only; the record lives on the heap so that its address, which
/// the list holds, survives moves.
class fork_private_fd {
public:
    struct record {
        int fd = -1;
        record* prev = nullptr;
        record* next = nullptr;
    };

    fork_private_fd() noexcept = default;
    fork_private_fd(fork_private_fd&& other) noexcept : record_(std::exchange(other.record_, nullptr)) {}
    fork_private_fd& operator=(fork_private_fd&& other) noexcept {
        if (this != &other) {
            reset();
            record_ = std::exchange(other.record_, nullptr);
        }
        return *this;
    }
    fork_private_fd(const fork_private_fd&) = delete;
    fork_private_fd& operator=(const fork_private_fd&) = delete;
    ~fork_private_fd() { reset(); }

    /// Calls `open_fn()` (which returns a descriptor, or -1 with errno set)
    /// under the fork guard and registers what it returns. The result is
    /// empty when open_fn failed; errno is then open_fn's. May throw
    /// std::bad_alloc (before anything is opened).
    template <class Open>
    static fork_private_fd open(Open&& open_fn) {
        // (The first call of list() installs a handler, which takes the
        // guard: it must not run under it.)
        fork_aware_list<record>& registered = list();
        auto* r = new record;
        int saved_errno = 0;
        {
            std::lock_guard lock(fork_guard::mutex());
            r->fd = open_fn();
            saved_errno = errno;
            if (r->fd >= 0) registered.add_locked(r);
        }
        if (r->fd < 0) {
            delete r;
            errno = saved_errno;
            return {};
        }
        fork_private_fd result;
        result.record_ = r;
        return result;
    }

    [[nodiscard]] int get() const noexcept { return record_ ? record_->fd : -1; }
    [[nodiscard]] explicit operator bool() const noexcept { return record_ != nullptr; }

    /// Drops every lock held through the descriptor (if any), then closes it,
    /// unregistering it in the same step. Unlocking first matters: a child
    /// forked a moment ago holds a copy of the description until its fork
    /// handler runs, and with it any lock the description still holds. (A
    /// child's copy is never unlocked here: the handler empties it first.)
    void reset() noexcept {
        if (!record_) return;
        {
            std::lock_guard lock(fork_guard::mutex());
            list().remove_locked(record_);
            if (record_->fd >= 0) {
                (void)::flock(record_->fd, LOCK_UN);
                struct flock whole_file {};
                whole_file.l_type = F_UNLCK;
                whole_file.l_whence = SEEK_SET;
                (void)::fcntl(record_->fd, F_OFD_SETLK, &whole_file);
                ::close(record_->fd);
            }
        }
        delete std::exchange(record_, nullptr);
    }

    /// Gives the descriptor to `adopt(fd)`, run under the fork guard, which
    /// registers it elsewhere (so that no fork sees it in neither list).
    /// `adopt` must not throw. Leaves this object empty.
    template <class Adopt>
    void hand_over(Adopt&& adopt) noexcept {
        if (!record_) return;
        {
            std::lock_guard lock(fork_guard::mutex());
            list().remove_locked(record_);
            adopt(record_->fd);
        }
        delete std::exchange(record_, nullptr);
    }

private:
    static fork_aware_list<record>& list() {
        static const bool installed = (fork_guard::install({nullptr, nullptr, &close_in_child}), true);
        (void)installed;
        return registered_;
    }

    /// In the child: the parent keeps the description (and its locks).
    /// (Reaches the list directly: list()'s first call may be under way in
    /// another thread of the parent, and its guard would never open here.)
    static void close_in_child() {
        registered_.for_each_locked([](record* r) {
            if (r->fd >= 0) ::close(r->fd);
            r->fd = -1;
        });
    }

    /// Every open fork_private_fd of the process (constant-initialised).
    static inline fork_aware_list<record> registered_{};

    record* record_ = nullptr;
};

}  // namespace shmds::detail
