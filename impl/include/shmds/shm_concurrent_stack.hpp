// shmds/shm_concurrent_stack.hpp: a bounded LIFO for any number of processes
// (or threads), found or created by name.
//
// A process-shared robust mutex guards a count and `capacity` slots; elements
// [0, count) are live. Why a lock: a lock-free stack needs a free list of
// nodes beside the stack, and a process killed between taking a node and
// linking it leaks that node for ever; under a robust mutex the count is the
// single commit point of every operation, so a holder killed at any point
// leaves a consistent stack (a push either counted or not, a pop either
// uncounted or not) and the next locker simply carries on (EOWNERDEAD, then
// pthread_mutex_consistent). Blocking calls sleep on futex channels, as the
// queues do; opening by name, the blocking calls and joining come from
// detail/blocking_handle.hpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <pthread.h>

#include "shmds/config.hpp"
#include "shmds/detail/blocking_handle.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/robust_mutex.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"

namespace shmds {

namespace detail {

struct concurrent_stack_control {
    alignas(false_sharing_range) pthread_mutex_t mutex;
    std::atomic<std::uint64_t> count;  ///< written under the mutex; size() reads it without
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
        detail::init_robust_mutex(&c->mutex, "a concurrent stack's lock");
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
    /// wait for room (only, briefly, for the lock).
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

    /// The caller's bit in the wait channels (blocking_handle.hpp).
    std::uint32_t sleeper_id() {
        if (!me_.active()) [[unlikely]]
            this->join_any_participant(me_);
        return me_.id();
    }

    /// Holds the stack's lock; recovers it from a dead holder.
    class guard {
    public:
        explicit guard(shm_concurrent_stack& stack)
            : mutex_(&stack.control_->mutex), kind_(stack.lock_kind_) {
            // Uncontended and undamaged, inline: the kind check and a
            // trylock. Everything else (a wait, a dead holder, an error) is
            // out of line, so that this path saves and restores no registers.
            const int tried = detail::try_lock_robust_mutex(mutex_, kind_);
            if (tried == 0) [[likely]]
                return;
            lock_slowly(stack, tried);
        }
        ~guard() { detail::unlock_robust_mutex(mutex_, kind_); }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;

    private:
        pthread_mutex_t* mutex_;
        int kind_;

        /// After try_lock_robust_mutex answered `tried` (EBUSY: wait;
        /// EOWNERDEAD: the lock is already held; or an error).
        [[gnu::noinline]] void lock_slowly(shm_concurrent_stack& stack, int tried) {
            const auto ms = stack.lock_timeout_.count();
            int rc = detail::lock_robust_mutex_after(tried, mutex_, stack.lock_timeout_);
            if (rc == EOWNERDEAD) {
                // Every operation commits with its last store, so the stack
                // is consistent whatever the holder was doing.
                pthread_mutex_consistent(mutex_);
                stack.control_->recoveries.fetch_add(1, std::memory_order_relaxed);
                rc = 0;
            }
            if (rc == ETIMEDOUT)
                throw timeout_error("could not lock " + stack.describe(kind_name) + " within " +
                                    std::to_string(ms) + " ms: its holder is stopped or stuck");
            if (rc != 0)
                throw corrupted_error(stack.describe(kind_name) +
                                      ": its lock is unusable: " + std::strerror(rc));
        }
    };

    std::uint64_t checked_count() const {
        const std::uint64_t count = control_->count.load(std::memory_order_relaxed);  // read once
        if (count > capacity_) [[unlikely]]
            this->throw_corrupted(kind_name, "count " + std::to_string(count) + " exceeds capacity " +
                                                 std::to_string(capacity_));
        return count;
    }

    T* slots_ = layout::elements(this->block_);
    std::chrono::milliseconds lock_timeout_ = this->attachment_->timeout;
    int lock_kind_ = detail::robust_mutex_kind();  ///< what the lock's kind word must hold
    detail::participation me_;
};

}  // namespace shmds
