// shmds/shm_concurrent_stack.hpp: a bounded LIFO for any number of processes
// (or threads, each with its own handle), found or created by name.
//
// A lock guards a count and `capacity` slots; elements [0, count) are live.
// Why a lock: a lock-free stack needs a free list of nodes beside the stack,
// and a process killed between taking a node and linking it leaks that node
// for ever; under a lock the count is the single commit point of every
// operation, so a holder killed at any point leaves a consistent stack (a
// push either counted or not, a pop either uncounted or not) and the next
// locker simply carries on. The lock is the library's own futex word naming
// its holder's participant id (detail/participant_mutex.hpp), so every handle
// that pushes or pops takes a participant id first (at most 127 live ones),
// and a holder that dies is known by its participant lock. Blocking calls
// sleep on futex channels, as the queues do; opening by name, the blocking
// calls and joining come from detail/blocking_handle.hpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "shmds/config.hpp"
#include "shmds/detail/blocking_handle.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/participant_mutex.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"

namespace shmds {

namespace detail {

struct concurrent_stack_control {
    /// 0 when free, else its holder's participant id + 1 and the contended
    /// bit (participant_mutex.hpp).
    alignas(false_sharing_range) std::atomic<std::uint32_t> lock;
    std::uint32_t reserved;            ///< 0
    std::atomic<std::uint64_t> count;  ///< written under the lock; size() reads it without
    alignas(false_sharing_range) wait_channel not_empty;
    alignas(false_sharing_range) wait_channel not_full;
    alignas(false_sharing_range) std::uint64_t capacity;  ///< immutable
    std::atomic<std::uint64_t> recoveries;                ///< times a dead holder's lock was recovered
};

static_assert(std::is_standard_layout_v<concurrent_stack_control>, "the control block is shared bytes");

template <class T>
struct concurrent_stack_layout : control_then_elements<concurrent_stack_control, T> {
    static constexpr structure_kind kind = structure_kind::concurrent_stack;
    static void initialise(std::byte* block, std::uint64_t capacity) {
        auto* c = concurrent_stack_layout::control(block);
        c->capacity = capacity;
        c->lock.store(0, std::memory_order_relaxed);
    }
};

}  // namespace detail

template <class T>
class shm_concurrent_stack
    : public detail::blocking_handle<shm_concurrent_stack<T>, T, detail::concurrent_stack_layout<T>> {
    using layout = detail::concurrent_stack_layout<T>;
    using handle = detail::blocking_handle<shm_concurrent_stack<T>, T, layout>;
    friend handle;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;

    /// The five ways to open a stack by name (blocking_handle.hpp). Waits
    /// for the stack's lock are bounded by the segment's timeout
    /// (timeout_error after it: its holder is stopped or stuck).
    using handle::handle;

    shm_concurrent_stack(shm_concurrent_stack&&) noexcept = default;
    shm_concurrent_stack& operator=(shm_concurrent_stack&&) = delete;
    /// Gives up its participant id. The handle keeps its segment's mapping
    /// for as long as it lives, so it may outlive the posix_shm it was opened
    /// through: it stays usable, and the segment is detached when the last of
    /// them goes.
    ~shm_concurrent_stack() = default;

    /// Puts `value` on top unless the stack is full. Any process; does not
    /// wait for room (only, briefly, for the lock). The first push or pop of
    /// a handle in a process takes a participant id: role_error when 127
    /// live handles hold one already.
    [[nodiscard]] bool try_push(const T& value) {
        SHMDS_INJECTED_WORK();
        // Full at a glance (the count is the commit point, so a snapshot of
        // it is an honest answer): leave the lock to those who can use it.
        if (control_->count.load(std::memory_order_relaxed) == capacity_) return false;
        {
            guard lock(*this);
            const std::uint64_t count = checked_count();
            if (count == capacity_) return false;
            std::construct_at(slots_ + count, value);
            SHMDS_FAULT_POINT("stack.push.written");
            std::atomic_signal_fence(std::memory_order_seq_cst);  // a crash sees the slot before the count
            control_->count.store(count + 1, std::memory_order_relaxed);  // the commit
        }
        detail::notify(control_->not_empty);
        return true;
    }

    /// Removes and returns the top element, or nullopt when empty. Any
    /// process; does not wait for an element.
    [[nodiscard]] std::optional<T> try_pop() {
        // Empty at a glance: a consumer polling an empty stack must not hold
        // up the producer at the lock.
        if (control_->count.load(std::memory_order_relaxed) == 0) return std::nullopt;
        std::optional<T> value;
        {
            guard lock(*this);
            const std::uint64_t count = checked_count();
            if (count == 0) return std::nullopt;
            value.emplace(slots_[count - 1]);
            SHMDS_FAULT_POINT("stack.pop.read");
            control_->count.store(count - 1, std::memory_order_relaxed);  // the commit
        }
        detail::notify(control_->not_full);
        return value;
    }

    /// As try_pop(), into `out`: true, or false (leaving `out` alone) when
    /// empty. Any process; does not wait for an element.
    [[nodiscard]] bool try_pop(T& out) { return detail::assign_if_present(try_pop(), out); }

    // push(value), try_push_for(value, timeout), pop() and
    // try_pop_for(timeout) wait as the wait options say
    // (blocking_handle.hpp). Any process.

    /// Elements on the stack: a snapshot, read without the lock.
    [[nodiscard]] std::size_t size() const {
        const std::uint64_t count = control_->count.load(std::memory_order_relaxed);
        return static_cast<std::size_t>(std::min(count, capacity_));
    }
    // capacity(), empty(), full() and set_wait_options: blocking_handle.hpp.

    /// Times a process died holding the lock and a later one recovered it.
    [[nodiscard]] std::uint64_t lock_recoveries() const noexcept { return control_->recoveries.load(); }

private:
    using handle::capacity_;
    using handle::control_;
    using handle::kind_name;

    /// The caller's participant id, which names it in the lock word and is
    /// its bit in the wait channels (blocking_handle.hpp); joins first when
    /// this handle holds none in this process (a fork() child's copy does
    /// not). The check is one relaxed load and a compare on every operation.
    std::uint32_t participant_id() {
        if (!me_.active()) [[unlikely]]
            join();
        return me_.id();
    }
    std::uint32_t sleeper_id() { return participant_id(); }

    /// Takes a participant id. A lock word naming it was left by the id's
    /// previous holder, dead mid-operation: the stack is consistent (every
    /// operation commits with its last store), so it is freed.
    [[gnu::noinline]] void join() {
        this->join_any_participant(me_);
        if (detail::free_if_held_by(control_->lock, me_.id()))
            control_->recoveries.fetch_add(1, std::memory_order_relaxed);
    }

    /// Holds the stack's lock; takes it over from a dead holder.
    class guard {
    public:
        explicit guard(shm_concurrent_stack& stack) : word_(&stack.control_->lock) {
            // Uncontended, inline: one CAS. Everything else (a wait, a dead
            // holder, an error) is out of line, so that this path saves and
            // restores no registers.
            const std::uint32_t id = stack.participant_id();
            if (!detail::try_lock_participant_mutex(*word_, id)) [[unlikely]]
                stack.lock_slowly(id);
        }
        ~guard() { detail::unlock_participant_mutex(*word_); }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;

    private:
        std::atomic<std::uint32_t>* word_;
    };

    /// After the CAS found the lock taken: waits for it, or throws (the lock
    /// is then not held).
    [[gnu::noinline]] void lock_slowly(std::uint32_t id) {
        const std::string who = this->describe(kind_name);
        const detail::mutex_participants participants{this->attachment_->fd, this->serial_,
                                                      detail::max_participants, who};
        std::uint32_t seen = 0;
        switch (
            detail::lock_participant_mutex_slowly(control_->lock, id, lock_timeout_, participants, seen)) {
            case detail::mutex_lock_result::locked:
                return;
            case detail::mutex_lock_result::taken_from_dead_holder:
                // Every operation commits with its last store, so the stack
                // is consistent whatever the holder was doing.
                control_->recoveries.fetch_add(1, std::memory_order_relaxed);
                return;
            case detail::mutex_lock_result::timed_out:
                throw timeout_error("could not lock " + who + " within " +
                                    std::to_string(lock_timeout_.count()) +
                                    " ms: its holder is stopped or stuck");
            case detail::mutex_lock_result::damaged:
                break;
        }
        char word[16];
        std::snprintf(word, sizeof word, "0x%08x", seen);
        this->throw_corrupted(kind_name, std::string("its lock word ") + word +
                                             " holds no participant id (the lock word is damaged)");
    }

    std::uint64_t checked_count() const {
        const std::uint64_t count = control_->count.load(std::memory_order_relaxed);  // read once
        if (count > capacity_) [[unlikely]]
            this->throw_corrupted(kind_name, "count " + std::to_string(count) + " exceeds capacity " +
                                                 std::to_string(capacity_));
        return count;
    }

    T* slots_ = layout::elements(this->block_);
    std::chrono::milliseconds lock_timeout_ = this->attachment_->timeout;
    detail::participation me_;
};

}  // namespace shmds
