// shmds/shm_stack.hpp: a bounded LIFO of T in a segment, found or created by
// name.
//
// Shared state: a control block (count, capacity) followed, on the next cache
// line, by `capacity` slots; elements [0, count) are live and the top is
// count - 1. Invariant: count <= capacity.
//
// Not synchronised: one process (thread) at a time; see shm_queue. For
// concurrent use, shm_concurrent_stack. A damaged count gives
// corrupted_error, never an access outside the stack.
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

struct stack_control {
    std::uint64_t count;
    std::uint64_t capacity;  ///< copy of the table's, checked at open
};

template <class T>
struct stack_layout : control_then_elements<stack_control, T> {
    static constexpr structure_kind kind = structure_kind::stack;
    static void initialise(std::byte* block, std::uint64_t capacity) noexcept {
        stack_layout::control(block)->capacity = capacity;
    }
};

}  // namespace detail

template <class T>
class shm_stack : public detail::structure_identity {
    static_assert(detail::check_element<T>());
    using layout = detail::stack_layout<T>;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;

    using value_type = T;

    /// Finds the stack `name` in `segment`, or creates it empty with room for
    /// `capacity` elements. Errors as for shm_array.
    shm_stack(posix_shm& segment, std::string_view name, std::size_t capacity)
        : shm_stack(segment, name, open_mode::open_or_create, capacity) {}
    /// Opens the existing stack `name`; throws not_found_error if absent.
    shm_stack(posix_shm& segment, std::string_view name)
        : shm_stack(segment, name, open_mode::open_only, 0) {}
    shm_stack(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity)
        : shm_stack(segment, name, open_mode::create_only, capacity) {}
    shm_stack(open_only_t, posix_shm& segment, std::string_view name)
        : shm_stack(segment, name, open_mode::open_only, 0) {}
    shm_stack(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity)
        : shm_stack(segment, name, open_mode::open_or_create, capacity) {}

    /// Puts `value` on top. Returns false, changing nothing, when full.
    [[nodiscard]] bool try_push(const T& value) {
        SHMDS_INJECTED_WORK();
        const std::uint64_t count = checked_count();
        if (count == capacity_) return false;
        std::construct_at(slots() + count, value);
        control_->count = count + 1;
        return true;
    }

    /// Puts `value` on top; throws full_error when full.
    void push(const T& value) {
        if (!try_push(value)) [[unlikely]]
            throw full_error(describe("shm_stack") + " is full (capacity " + std::to_string(capacity_) + ")");
    }

    /// Removes and returns the top element, or nullopt when empty.
    [[nodiscard]] std::optional<T> try_pop() {
        const std::uint64_t count = checked_count();
        if (count == 0) return std::nullopt;
        control_->count = count - 1;
        return slots()[count - 1];
    }

    /// As try_pop(), into `out`: true, or false (leaving `out` alone) when empty.
    [[nodiscard]] bool try_pop(T& out) { return detail::assign_if_present(try_pop(), out); }

    /// Removes and returns the top element; throws empty_error when empty.
    T pop() {
        std::optional<T> value = try_pop();
        if (!value) [[unlikely]]
            throw_empty();
        return *value;
    }

    /// The top element, left in place; throws empty_error when empty.
    [[nodiscard]] T& top() {
        const std::uint64_t count = checked_count();
        if (count == 0) [[unlikely]]
            throw_empty();
        return slots()[count - 1];
    }

    /// Removes every element.
    void clear() noexcept { control_->count = 0; }

    [[nodiscard]] std::size_t size() const { return checked_count(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] bool full() const { return size() == capacity_; }

private:
    shm_stack(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity)
        : shm_stack(segment, name, segment.table().open<layout>(name, mode, capacity, fingerprint_of<T>())) {}

    shm_stack(posix_shm& segment, std::string_view name, const detail::opened_block& block)
        : detail::structure_identity(segment.name(), name, block.created),
          control_(layout::control(block.block)),
          capacity_(block.capacity) {
        check_recorded_capacity("shm_stack", detail::read_once(control_->capacity), capacity_);
        checked_count();
    }

    /// The count, read once and checked before it is used.
    std::uint64_t checked_count() const {
        const std::uint64_t count = detail::read_once(control_->count);
        if (count > capacity_) [[unlikely]]
            throw_corrupted("shm_stack", "count " + std::to_string(count) + " exceeds capacity " +
                                             std::to_string(capacity_));
        return count;
    }

    [[noreturn]] void throw_empty() const { throw empty_error(describe("shm_stack") + " is empty"); }

    /// The slots start a fixed distance after the control block
    /// (layout::elements_offset): computed from control_ rather than kept in
    /// a field of their own, an addressing mode instead of a load on every
    /// push and pop.
    T* slots() const noexcept { return layout::elements(reinterpret_cast<std::byte*>(control_)); }

    detail::stack_control* control_;
    std::uint64_t capacity_;
};

}  // namespace shmds
