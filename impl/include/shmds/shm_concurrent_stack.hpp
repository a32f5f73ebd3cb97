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
// queues do.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <pthread.h>

#include "shmds/config.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/robust_mutex.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"
#include "shmds/element.hpp"
#include "shmds/posix_shm.hpp"

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
class shm_concurrent_stack : public detail::structure_identity {
    static_assert(detail::check_element<T>());
    using layout = detail::concurrent_stack_layout<T>;

public:
    using value_type = T;

    /// Finds the stack `name` in `segment`, or creates it empty with room
    /// for `capacity` elements. Errors as for shm_array. Waits for the
    /// stack's lock are bounded by the segment's timeout (timeout_error
    /// after it: its holder is stopped or stuck).
    shm_concurrent_stack(posix_shm& segment, std::string_view name, std::size_t capacity,
                         wait_options wait = {})
        : shm_concurrent_stack(segment, name, open_mode::open_or_create, capacity, wait) {}
    /// Opens the existing stack `name`; throws not_found_error if absent.
    shm_concurrent_stack(posix_shm& segment, std::string_view name)
        : shm_concurrent_stack(segment, name, open_mode::open_only, 0, {}) {}
    shm_concurrent_stack(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                         wait_options wait = {})
        : shm_concurrent_stack(segment, name, open_mode::create_only, capacity, wait) {}
    shm_concurrent_stack(open_only_t, posix_shm& segment, std::string_view name, wait_options wait = {})
        : shm_concurrent_stack(segment, name, open_mode::open_only, 0, wait) {}
    shm_concurrent_stack(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                         wait_options wait = {})
        : shm_concurrent_stack(segment, name, open_mode::open_or_create, capacity, wait) {}

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

    /// Puts `value` on top, waiting for room as the wait options say.
    void push(const T& value) {
        if (!try_push(value)) [[unlikely]]
            push_slowly(value, detail::forever);
    }

    template <class Rep, class Period>
    [[nodiscard]] bool try_push_for(const T& value, std::chrono::duration<Rep, Period> timeout) {
        return try_push(value) || (!detail::is_poll(timeout) && push_slowly(value, detail::bounded(timeout)));
    }

    /// Removes and returns the top element, waiting for one.
    T pop() {
        if (auto value = try_pop()) [[likely]]
            return *value;
        return *pop_slowly(detail::forever);
    }

    template <class Rep, class Period>
    [[nodiscard]] std::optional<T> try_pop_for(std::chrono::duration<Rep, Period> timeout) {
        if (auto value = try_pop()) [[likely]]
            return value;
        if (detail::is_poll(timeout)) return std::nullopt;
        return pop_slowly(detail::bounded(timeout));
    }

    /// Elements on the stack: a snapshot, read without the lock.
    [[nodiscard]] std::size_t size() const {
        const std::uint64_t count = control_->count.load(std::memory_order_relaxed);
        return static_cast<std::size_t>(std::min(count, capacity_));
    }
    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] bool full() const { return size() == capacity_; }

    /// Times a process died holding the lock and a later one recovered it.
    [[nodiscard]] std::uint64_t lock_recoveries() const noexcept { return control_->recoveries.load(); }

    void set_wait_options(const wait_options& wait) noexcept { wait_ = wait; }

private:
    // The waiting paths, out of line so that the fast paths inline.
    [[gnu::noinline]] bool push_slowly(const T& value, std::chrono::nanoseconds timeout) {
        ensure_participant();
        return detail::wait_for(control_->not_full, me_.id(), wait_, timeout,
                                [&] { return try_push(value); });
    }
    [[gnu::noinline]] std::optional<T> pop_slowly(std::chrono::nanoseconds timeout) {
        ensure_participant();
        return detail::wait_to_pop(control_->not_empty, me_.id(), wait_, timeout, [&] { return try_pop(); });
    }

    shm_concurrent_stack(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity,
                         wait_options wait)
        : shm_concurrent_stack(segment, name, wait,
                               segment.table().open<layout>(name, mode, capacity, fingerprint_of<T>())) {}

    shm_concurrent_stack(posix_shm& segment, std::string_view name, wait_options wait,
                         const detail::opened_block& block)
        : detail::structure_identity(segment.name(), name, block.created),
          attachment_(segment.shared_attachment()),
          serial_(block.serial),
          control_(layout::control(block.block)),
          slots_(layout::elements(block.block)),
          capacity_(block.capacity),
          lock_timeout_(attachment_->timeout),
          lock_kind_(detail::robust_mutex_kind()),
          wait_(wait) {
        if (control_->capacity != capacity_)
            throw_corrupted("shm_concurrent_stack", "its control block records capacity " +
                                                        std::to_string(control_->capacity) +
                                                        ", its table entry " + std::to_string(capacity_));
    }

    /// Holds the stack's lock; recovers it from a dead holder.
    class guard {
    public:
        explicit guard(shm_concurrent_stack& stack)
            : mutex_(&stack.control_->mutex), kind_(stack.lock_kind_) {
            const auto ms = stack.lock_timeout_.count();
            int rc = detail::lock_robust_mutex(mutex_, stack.lock_timeout_, kind_);
            if (rc == EOWNERDEAD) {
                // Every operation commits with its last store, so the stack
                // is consistent whatever the holder was doing.
                pthread_mutex_consistent(mutex_);
                stack.control_->recoveries.fetch_add(1, std::memory_order_relaxed);
                rc = 0;
            }
            if (rc == ETIMEDOUT)
                throw timeout_error("could not lock " + stack.describe("shm_concurrent_stack") + " within " +
                                    std::to_string(ms) + " ms: its holder is stopped or stuck");
            if (rc != 0)
                throw corrupted_error(stack.describe("shm_concurrent_stack") +
                                      ": its lock is unusable: " + std::strerror(rc));
        }
        ~guard() { detail::unlock_robust_mutex(mutex_, kind_); }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;

    private:
        pthread_mutex_t* mutex_;
        int kind_;
    };

    std::uint64_t checked_count() const {
        const std::uint64_t count = control_->count.load(std::memory_order_relaxed);  // read once
        if (count > capacity_) [[unlikely]]
            throw_corrupted("shm_concurrent_stack", "count " + std::to_string(count) + " exceeds capacity " +
                                                        std::to_string(capacity_));
        return count;
    }

    void ensure_participant() {
        if (me_.active()) [[likely]]
            return;
        if (!me_.join_any(attachment_->fd, serial_, detail::max_participants,
                          describe("shm_concurrent_stack")))
            throw role_error(errc::too_many_participants, describe("shm_concurrent_stack") + " already has " +
                                                              std::to_string(detail::max_participants) +
                                                              " live participants");
        control_->not_empty.retract(me_.id());
        control_->not_full.retract(me_.id());
    }

    detail::attachment_ref attachment_;  ///< keeps the mapping while this handle lives
    std::uint64_t serial_;
    detail::concurrent_stack_control* control_;
    T* slots_;
    std::uint64_t capacity_;
    std::chrono::milliseconds lock_timeout_;
    int lock_kind_;  ///< what the lock's kind word must hold (robust_mutex_kind())
    wait_options wait_;
    detail::participation me_;
};

}  // namespace shmds
