// shmds/shm_spsc_queue.hpp: a bounded lock-free queue for one producer and
// one consumer, in different processes (or threads), found or created by name.
//
// Shared state (all in the segment; offsets only):
//   tail       written by the producer only, on its own 128-byte pair
//   head       written by the consumer only, on its own 128-byte pair
//   not_empty, not_full   wait channels (futex words) for blocking calls
//   capacity + 1 slots    one slot stays empty to tell full from empty
// Indices are slot numbers in [0, capacity]: no division on the fast path.
// The producer writes a slot, then publishes `tail` (release); the consumer
// reads `tail` (acquire), then the slot. Each side keeps in its handle its
// own index and a cached copy of the other's, so the other side's line is
// read only when the cache says full (or empty).
//
// Roles. The first push through a handle takes the producer role, the first
// pop the consumer role; a role is a kernel lock (see participants.hpp), so
// it is released when the handle is destroyed or its process dies, and a
// second live handle that tries to take a held role gets role_error.
//
// Crashes. A producer killed mid-push loses only the element it was pushing
// (it was never published); a consumer killed mid-pop loses nothing (head
// was not advanced, so the element is delivered to the next consumer).
// Every index read from shared memory is checked before use.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <unistd.h>

#include "shmds/config.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"
#include "shmds/element.hpp"
#include "shmds/posix_shm.hpp"

namespace shmds {

namespace detail {

struct spsc_control {
    alignas(false_sharing_range) std::atomic<std::uint64_t> tail;  ///< producer's
    alignas(false_sharing_range) std::atomic<std::uint64_t> head;  ///< consumer's
    alignas(false_sharing_range) wait_channel not_empty;           ///< the consumer sleeps here
    alignas(false_sharing_range) wait_channel not_full;            ///< the producer sleeps here
    alignas(false_sharing_range) std::uint64_t capacity;           ///< immutable
    std::atomic<std::int32_t> producer_pid;                        ///< for messages only
    std::atomic<std::int32_t> consumer_pid;
};

static_assert(offsetof(spsc_control, head) - offsetof(spsc_control, tail) >= false_sharing_range,
              "producer and consumer indices must not share a cache-line pair");
static_assert(offsetof(spsc_control, not_empty) - offsetof(spsc_control, head) >= false_sharing_range,
              "the wait channels, read on every operation, must not share the indices' lines");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && sizeof(std::atomic<std::uint64_t>) == 8,
              "indices are plain 64-bit words shared between processes");
static_assert(std::is_standard_layout_v<spsc_control>, "the control block is shared bytes");

template <class T>
struct spsc_layout : control_then_elements<spsc_control, T> {
    static constexpr structure_kind kind = structure_kind::spsc_queue;
    using base = control_then_elements<spsc_control, T>;

    /// One slot more than the capacity.
    static std::optional<std::size_t> bytes_for(std::uint64_t capacity) noexcept {
        return capacity == UINT64_MAX ? std::nullopt : base::bytes_for(capacity + 1);
    }
    static void initialise(std::byte* block, std::uint64_t capacity) noexcept {
        base::control(block)->capacity = capacity;
    }
};

}  // namespace detail

template <class T>
class shm_spsc_queue : public detail::structure_identity {
    static_assert(detail::check_element<T>());
    using layout = detail::spsc_layout<T>;

public:
    using value_type = T;

    /// Finds the queue `name` in `segment`, or creates it empty with room
    /// for `capacity` elements. Errors as for shm_array. Takes no role yet.
    shm_spsc_queue(posix_shm& segment, std::string_view name, std::size_t capacity, wait_options wait = {})
        : shm_spsc_queue(segment, name, open_mode::open_or_create, capacity, wait) {}
    /// Opens the existing queue `name`; throws not_found_error if absent.
    shm_spsc_queue(posix_shm& segment, std::string_view name)
        : shm_spsc_queue(segment, name, open_mode::open_only, 0, {}) {}
    shm_spsc_queue(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                   wait_options wait = {})
        : shm_spsc_queue(segment, name, open_mode::create_only, capacity, wait) {}
    shm_spsc_queue(open_only_t, posix_shm& segment, std::string_view name, wait_options wait = {})
        : shm_spsc_queue(segment, name, open_mode::open_only, 0, wait) {}
    shm_spsc_queue(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                   wait_options wait = {})
        : shm_spsc_queue(segment, name, open_mode::open_or_create, capacity, wait) {}

    shm_spsc_queue(shm_spsc_queue&&) noexcept = default;
    /// (Not assignable: a role would have to change hands mid-assignment.)
    shm_spsc_queue& operator=(shm_spsc_queue&&) = delete;
    /// Releases the roles this handle holds.
    ~shm_spsc_queue() { release_roles(); }

    // ---- producer: one handle at a time, in any process ---------------------------------------

    /// Appends `value` unless the queue is full. Producer only (the first
    /// call takes the role; role_error if another live handle has it).
    /// Never blocks.
    [[nodiscard]] bool try_push(const T& value) {
        ensure_producer();
        const std::uint64_t next = tail_ + 1 == slot_count_ ? 0 : tail_ + 1;
        if (next == head_cache_) [[unlikely]] {
            head_cache_ = load_index(control_->head, "head");
            if (next == head_cache_) return false;
        }
        std::construct_at(slots_ + tail_, value);
        SHMDS_FAULT_POINT("spsc.push.written");
        control_->tail.store(next, std::memory_order_release);
        tail_ = next;
        detail::notify(control_->not_empty);
        return true;
    }

    /// Appends as many of `items[0..count)` as fit, in order, publishing
    /// them at once. Producer only; never blocks. Returns how many.
    std::size_t try_push_n(const T* items, std::size_t count) {
        ensure_producer();
        std::uint64_t room = free_slots(head_cache_);
        if (room < count) {
            head_cache_ = load_index(control_->head, "head");
            room = free_slots(head_cache_);
        }
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(room, count));
        if (n == 0) return 0;
        const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, slot_count_ - tail_));
        std::uninitialized_copy_n(items, first, slots_ + tail_);
        std::uninitialized_copy_n(items + first, n - first, slots_);
        const std::uint64_t next = (tail_ + n) % slot_count_;
        control_->tail.store(next, std::memory_order_release);
        tail_ = next;
        detail::notify(control_->not_empty);
        return n;
    }

    /// Appends `value`, waiting for room as the wait options say. Producer only.
    void push(const T& value) {
        detail::wait_for(control_->not_full, 0, wait_, detail::forever, [&] { return try_push(value); });
    }

    /// Appends `value`, waiting at most `timeout` for room. Producer only.
    template <class Rep, class Period>
    [[nodiscard]] bool try_push_for(const T& value, std::chrono::duration<Rep, Period> timeout) {
        return detail::wait_for(control_->not_full, 0, wait_, detail::bounded(timeout),
                                [&] { return try_push(value); });
    }

    // ---- consumer: one handle at a time, in any process ---------------------------------------

    /// Removes and returns the front element, or nullopt when empty.
    /// Consumer only (the first call takes the role). Never blocks.
    [[nodiscard]] std::optional<T> try_pop() {
        ensure_consumer();
        if (head_ == tail_cache_) [[unlikely]] {
            tail_cache_ = load_index(control_->tail, "tail");
            if (head_ == tail_cache_) return std::nullopt;
        }
        std::optional<T> value(slots_[head_]);
        SHMDS_FAULT_POINT("spsc.pop.read");
        const std::uint64_t next = head_ + 1 == slot_count_ ? 0 : head_ + 1;
        control_->head.store(next, std::memory_order_release);
        head_ = next;
        detail::notify(control_->not_full);
        return value;
    }

    /// Removes up to `count` elements into `out`, in order, releasing their
    /// slots at once. Consumer only; never blocks. Returns how many.
    std::size_t try_pop_n(T* out, std::size_t count) {
        ensure_consumer();
        std::uint64_t available = used_slots(tail_cache_);
        if (available < count) {
            tail_cache_ = load_index(control_->tail, "tail");
            available = used_slots(tail_cache_);
        }
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(available, count));
        if (n == 0) return 0;
        const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, slot_count_ - head_));
        std::copy_n(slots_ + head_, first, out);
        std::copy_n(slots_, n - first, out + first);
        const std::uint64_t next = (head_ + n) % slot_count_;
        control_->head.store(next, std::memory_order_release);
        head_ = next;
        detail::notify(control_->not_full);
        return n;
    }

    /// Removes and returns the front element, waiting for one as the wait
    /// options say. Consumer only.
    T pop() {
        return *detail::wait_to_pop(control_->not_empty, 0, wait_, detail::forever,
                                    [&] { return try_pop(); });
    }

    /// Removes and returns the front element, waiting at most `timeout`.
    /// Consumer only.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<T> try_pop_for(std::chrono::duration<Rep, Period> timeout) {
        return detail::wait_to_pop(control_->not_empty, 0, wait_, detail::bounded(timeout),
                                   [&] { return try_pop(); });
    }

    // ---- anyone ----------------------------------------------------------------------------------

    /// Elements in the queue; a snapshot that may be stale as soon as it is
    /// returned while the producer or consumer runs.
    [[nodiscard]] std::size_t size() const {
        const std::uint64_t head = load_index(control_->head, "head");
        const std::uint64_t tail = load_index(control_->tail, "tail");
        return static_cast<std::size_t>(tail >= head ? tail - head : tail + slot_count_ - head);
    }
    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(slot_count_ - 1); }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] bool full() const { return size() == capacity(); }

    /// How blocking calls of this handle wait.
    void set_wait_options(const wait_options& wait) noexcept { wait_ = wait; }

    /// Gives up the roles this handle holds, so another handle may take
    /// them. Also done by the destructor and by the kernel when the process dies.
    void release_roles() noexcept {
        if (producer_.active() && control_->producer_pid.load() == ::getpid())
            control_->producer_pid.store(0);
        if (consumer_.active() && control_->consumer_pid.load() == ::getpid())
            control_->consumer_pid.store(0);
        producer_.leave();
        consumer_.leave();
    }

    [[nodiscard]] bool is_producer() const noexcept { return producer_.active(); }
    [[nodiscard]] bool is_consumer() const noexcept { return consumer_.active(); }

private:
    static constexpr std::uint32_t producer_role = 0;
    static constexpr std::uint32_t consumer_role = 1;

    shm_spsc_queue(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity,
                   wait_options wait)
        : shm_spsc_queue(segment, name, wait,
                         segment.table().open<layout>(name, mode, capacity, fingerprint_of<T>())) {}

    shm_spsc_queue(posix_shm& segment, std::string_view name, wait_options wait,
                   const detail::opened_block& block)
        : detail::structure_identity(segment.name(), name, block.created),
          attachment_(segment.native_attachment()),
          serial_(block.serial),
          control_(layout::control(block.block)),
          slots_(layout::elements(block.block)),
          slot_count_(block.capacity + 1),
          wait_(wait) {
        if (control_->capacity != block.capacity)
            throw_corrupted("shm_spsc_queue", "its control block records capacity " +
                                                  std::to_string(control_->capacity) + ", its table entry " +
                                                  std::to_string(block.capacity));
        (void)size();  // validates both indices
    }

    std::uint64_t load_index(const std::atomic<std::uint64_t>& index, const char* which) const {
        const std::uint64_t value = index.load(std::memory_order_acquire);
        if (value >= slot_count_) [[unlikely]]
            throw_corrupted("shm_spsc_queue", std::string(which) + " index " + std::to_string(value) +
                                                  " is outside its " + std::to_string(slot_count_) +
                                                  " slots");
        return value;
    }

    std::uint64_t free_slots(std::uint64_t head) const noexcept {
        return head > tail_ ? head - tail_ - 1 : head + slot_count_ - tail_ - 1;
    }
    std::uint64_t used_slots(std::uint64_t tail) const noexcept {
        return tail >= head_ ? tail - head_ : tail + slot_count_ - head_;
    }

    void ensure_producer() {
        if (!producer_.active()) [[unlikely]]
            take_role(producer_, producer_role, control_->producer_pid, "producer");
    }
    void ensure_consumer() {
        if (!consumer_.active()) [[unlikely]]
            take_role(consumer_, consumer_role, control_->consumer_pid, "consumer");
    }

    void take_role(detail::participation& role, std::uint32_t id, std::atomic<std::int32_t>& pid,
                   const char* what) {
        if (!role.join_as(attachment_->fd, serial_, id))
            throw role_error(errc::role_taken, describe("shm_spsc_queue") + " already has a live " + what +
                                                   " (pid " + std::to_string(pid.load()) +
                                                   "); an SPSC queue takes one producer and one consumer");
        pid.store(static_cast<std::int32_t>(::getpid()));
        if (id == producer_role) {
            // A predecessor that died asleep left its bit set; only we sleep here now.
            control_->not_full.retract(0);
            tail_ = load_index(control_->tail, "tail");
            head_cache_ = load_index(control_->head, "head");
        } else {
            control_->not_empty.retract(0);
            head_ = load_index(control_->head, "head");
            tail_cache_ = load_index(control_->tail, "tail");
        }
    }

    const detail::attachment* attachment_;
    std::uint64_t serial_;
    detail::spsc_control* control_;
    T* slots_;
    std::uint64_t slot_count_;
    wait_options wait_;
    // Producer side, meaningful while producer_ is active.
    detail::participation producer_;
    std::uint64_t tail_ = 0;
    std::uint64_t head_cache_ = 0;
    // Consumer side, meaningful while consumer_ is active.
    detail::participation consumer_;
    std::uint64_t head_ = 0;
    std::uint64_t tail_cache_ = 0;
};

}  // namespace shmds
