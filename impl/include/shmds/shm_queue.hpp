// shmds/shm_queue.hpp: a bounded FIFO ring of T in a segment, found or
// created by name.
//
// Shared state: a control block (head, tail, count, capacity) followed, on
// the next cache line, by `capacity` slots. Because head, tail and count live
// in the segment, a push in one process is seen by a pop in another.
// Invariants: head < capacity, tail < capacity, count <= capacity, and
// tail == (head + count) % capacity. Capacity is exactly what was asked for.
//
// Not synchronised: one process (thread) at a time may use a given queue, and
// handing it between processes needs its own synchronisation (waitpid, a
// pipe, ...). For concurrent producers and consumers use the process-safe
// queues. Every index read from the segment is checked before use, so a
// damaged control block gives corrupted_error, never an access outside the
// queue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "shmds/detail/fault.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/element.hpp"
#include "shmds/posix_shm.hpp"

namespace shmds {

namespace detail {

struct ring_control {
    std::uint64_t head;  ///< slot of the front element
    std::uint64_t tail;  ///< slot the next push writes
    std::uint64_t count;
    std::uint64_t capacity;  ///< copy of the table's, checked at open
};

template <class T>
struct queue_layout : control_then_elements<ring_control, T> {
    static constexpr structure_kind kind = structure_kind::queue;
    static void initialise(std::byte* block, std::uint64_t capacity) noexcept {
        queue_layout::control(block)->capacity = capacity;
    }
};

}  // namespace detail

template <class T>
class shm_queue : public detail::structure_identity {
    static_assert(detail::check_element<T>());
    using layout = detail::queue_layout<T>;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;

    using value_type = T;

    /// Finds the queue `name` in `segment`, or creates it empty with room for
    /// `capacity` elements. Errors as for shm_array.
    shm_queue(posix_shm& segment, std::string_view name, std::size_t capacity)
        : shm_queue(segment, name, open_mode::open_or_create, capacity) {}
    /// Opens the existing queue `name`; throws not_found_error if absent.
    shm_queue(posix_shm& segment, std::string_view name)
        : shm_queue(segment, name, open_mode::open_only, 0) {}
    shm_queue(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity)
        : shm_queue(segment, name, open_mode::create_only, capacity) {}
    shm_queue(open_only_t, posix_shm& segment, std::string_view name)
        : shm_queue(segment, name, open_mode::open_only, 0) {}
    shm_queue(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity)
        : shm_queue(segment, name, open_mode::open_or_create, capacity) {}

    /// Appends `value` at the back. Returns false, changing nothing, when full.
    [[nodiscard]] bool try_push(const T& value) {
        SHMDS_INJECTED_WORK();
        // Only the two indices a push uses are read and checked (head is
        // checked by whatever reads it). The capacity is held in a local:
        // a 64-bit store into the segment may alias this handle's fields as
        // far as the compiler knows, and it would reload the field after it.
        detail::ring_control* const c = control_;
        const std::uint64_t capacity = capacity_;
        const std::uint64_t tail = detail::read_once(c->tail);
        const std::uint64_t count = detail::read_once(c->count);
        if (count >= capacity) [[unlikely]] {
            if (count == capacity && tail < capacity) return false;
            positions_are_corrupted("tail", tail, count);
        }
        if (tail >= capacity) [[unlikely]]
            positions_are_corrupted("tail", tail, count);
        std::construct_at(slots() + tail, value);
        c->tail = tail + 1 == capacity ? 0 : tail + 1;
        c->count = count + 1;
        return true;
    }

    /// Appends `value` at the back; throws full_error when full.
    void push(const T& value) {
        if (!try_push(value)) [[unlikely]]
            throw full_error(describe("shm_queue") + " is full (capacity " + std::to_string(capacity_) + ")");
    }

    /// Removes and returns the front element, or nullopt when empty.
    [[nodiscard]] std::optional<T> try_pop() {
        std::uint64_t head, count;
        if (!checked_front(head, count)) return std::nullopt;
        std::optional<T> value(slots()[head]);
        remove_front(head, count);
        return value;
    }

    /// As try_pop(), into `out`: true, or false (leaving `out` alone) when empty.
    /// Builds no optional.
    [[nodiscard]] bool try_pop(T& out) {
        std::uint64_t head, count;
        if (!checked_front(head, count)) return false;
        out = slots()[head];
        remove_front(head, count);
        return true;
    }

    /// Removes and returns the front element; throws empty_error when empty.
    T pop() {
        std::optional<T> value = try_pop();
        if (!value) [[unlikely]]
            throw_empty();
        return *value;
    }

    /// The front element, left in place; throws empty_error when empty.
    [[nodiscard]] T& front() {
        const position p = checked_position();
        if (p.count == 0) [[unlikely]]
            throw_empty();
        return slots()[p.head];
    }

    /// Removes every element.
    void clear() noexcept { control_->head = control_->tail = control_->count = 0; }

    [[nodiscard]] std::size_t size() const { return checked_position().count; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] bool full() const { return size() == capacity_; }

private:
    shm_queue(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity)
        : shm_queue(segment, name, segment.table().open<layout>(name, mode, capacity, fingerprint_of<T>())) {}

    shm_queue(posix_shm& segment, std::string_view name, const detail::opened_block& block)
        : detail::structure_identity(segment.name(), name, block.created),
          control_(layout::control(block.block)),
          capacity_(block.capacity) {
        check_recorded_capacity("shm_queue", detail::read_once(control_->capacity), capacity_);
        checked_position();
    }

    struct position {
        std::uint64_t head;
        std::uint64_t tail;
        std::uint64_t count;
    };

    /// The indices, each read once and checked before any is used.
    /// (Always inlined, its message built out of line: left to the
    /// compiler, whether it was inlined into try_push changed with unrelated
    /// code in the same program, and with it push+pop's cost, by 5%.)
    [[gnu::always_inline]] position checked_position() const {
        const position p{detail::read_once(control_->head), detail::read_once(control_->tail),
                         detail::read_once(control_->count)};
        if (p.head >= capacity_ || p.tail >= capacity_ || p.count > capacity_) [[unlikely]]
            positions_are_corrupted(p);
        return p;
    }
    [[noreturn, gnu::noinline, gnu::cold]] void positions_are_corrupted(position p) const {
        throw_corrupted("shm_queue", "head " + std::to_string(p.head) + ", tail " + std::to_string(p.tail) +
                                         ", count " + std::to_string(p.count) + " with capacity " +
                                         std::to_string(capacity_));
    }
    /// The same for a push or pop, which reads only `which` (tail or head)
    /// and the count: separate arguments, so that the hot path passes them in
    /// registers rather than building a position in memory first.
    [[noreturn, gnu::noinline, gnu::cold]] void positions_are_corrupted(const char* which,
                                                                        std::uint64_t index,
                                                                        std::uint64_t count) const {
        throw_corrupted("shm_queue", std::string(which) + " " + std::to_string(index) + ", count " +
                                         std::to_string(count) + " with capacity " +
                                         std::to_string(capacity_));
    }

    /// The front's index and the count, read once and checked; false when
    /// empty. Reads only the two indices a pop uses (as try_push does), the
    /// capacity held in a local.
    [[gnu::always_inline]] bool checked_front(std::uint64_t& head, std::uint64_t& count) const {
        const std::uint64_t capacity = capacity_;
        head = detail::read_once(control_->head);
        count = detail::read_once(control_->count);
        if (count - 1 >= capacity) [[unlikely]] {  // empty (0 wraps round), or damaged
            if (count == 0 && head < capacity) return false;
            positions_are_corrupted("head", head, count);
        }
        if (head >= capacity) [[unlikely]]
            positions_are_corrupted("head", head, count);
        return true;
    }
    /// Removes the front that checked_front found.
    [[gnu::always_inline]] void remove_front(std::uint64_t head, std::uint64_t count) noexcept {
        control_->head = head + 1 == capacity_ ? 0 : head + 1;
        control_->count = count - 1;
    }

    [[noreturn]] void throw_empty() const { throw empty_error(describe("shm_queue") + " is empty"); }

    /// The slots start a fixed distance after the control block
    /// (layout::elements_offset): computed from control_ rather than kept in
    /// a field of their own, an addressing mode instead of a load on every
    /// push and pop.
    T* slots() const noexcept { return layout::elements(reinterpret_cast<std::byte*>(control_)); }

    detail::ring_control* control_;
    std::uint64_t capacity_;
};

}  // namespace shmds
