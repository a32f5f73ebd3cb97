// shmds/shm_mpmc_queue.hpp: a bounded lock-free queue for any number of
// producers and consumers in any processes, found or created by name.
//
// Size. About 580 lines, a large part of them the constructor overloads,
// blocking wrappers and join/retract sequence every process-safe structure
// repeats. Issue 18 moves
// those into one blocking-handle piece in detail/ for all three structures at
// once (a change measured by the instruction gate), so this header keeps them
// until then.
//
// Design. A ring of `capacity` slots, each on its own cache line(s), with a
// 64-bit word that says which position the slot holds and in what state:
//   FREE(p)        ready to take element p         (initially slot i is FREE(i))
//   WRITING(p, o)  participant o is writing element p
//   FULL(p)        element p is there
//   READING(p, o)  participant o is copying element p out
// and then FREE(p + capacity). Producers claim position p with a CAS
// FREE(p) -> WRITING(p, me) on the slot itself, consumers with FULL(p) ->
// READING(p, me); `tail` and `head` are only hints that anyone may advance
// past a claimed position. Positions are 64-bit counters (48 bits in the slot
// word, compared modulo 2^48), so there is no ABA; the slot index is the
// position modulo the capacity. Every element is delivered once, and
// elements of one producer in the order it pushed them.
//
// Crashes. Because a claim names its owner (a participant id backed by a
// kernel lock, see participants.hpp), a slot left WRITING or READING by a
// process that died is found by whoever is held up by it and set FREE for
// the next lap: the dead producer's element, or the element the dead
// consumer was taking, is lost, and nothing else. A participant id whose
// previous holder died is cleaned up by its next holder.
//
// Waking. A push wakes a consumer per element, a pop a producer per slot.
// Participants finish out of order, so a consumer woken for position p + 1
// may find p still being written and sleep again; whoever takes p then wakes
// another sleeper if p + 1 is ready (and a producer likewise for free slots).
// That decision reads the next slot, never the hints: a participant stalled
// between reading a hint and storing it sets the hint back.
//
// try_pop may report empty while a producer is between its claim and its
// publication (and try_push full while a consumer is mid-copy): size() and
// empty() are approximations while others run.
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

struct mpmc_control {
    alignas(false_sharing_range) std::atomic<std::uint64_t> tail;  ///< hint: next position to push
    alignas(false_sharing_range) std::atomic<std::uint64_t> head;  ///< hint: next position to pop
    alignas(false_sharing_range) wait_channel not_empty;
    alignas(false_sharing_range) wait_channel not_full;
    alignas(false_sharing_range) std::uint64_t capacity;  ///< immutable
    std::uint64_t slot_stride;                            ///< immutable, checked at open
    /// 1 from a participant's join to its clean leave: a participant id found
    /// still marked at the next join belonged to a process that died, and
    /// only then is the ring searched for claims it left.
    std::atomic<std::uint8_t> in_use[sleeper_bits];
};

static_assert(offsetof(mpmc_control, head) - offsetof(mpmc_control, tail) >= false_sharing_range,
              "producers' and consumers' hints must not share a cache-line pair");
static_assert(std::is_standard_layout_v<mpmc_control>, "the control block is shared bytes");

/// The slot word: position (48 bits) | state (2 bits) | owner (14 bits).
namespace mpmc_word {
inline constexpr std::uint64_t position_mask = (std::uint64_t{1} << 48) - 1;
enum state : std::uint64_t { free = 0, writing = 1, full = 2, reading = 3 };

constexpr std::uint64_t make(std::uint64_t position, state s, std::uint32_t owner = 0) noexcept {
    return ((position & position_mask) << 16) | (std::uint64_t{s} << 14) | (owner & 0x3fff);
}
constexpr state state_of(std::uint64_t word) noexcept {
    return static_cast<state>((word >> 14) & 3);
}
constexpr std::uint32_t owner_of(std::uint64_t word) noexcept {
    return static_cast<std::uint32_t>(word & 0x3fff);
}
/// How far the slot's position is ahead of `position` (negative: behind),
/// modulo 2^48.
constexpr std::int64_t distance(std::uint64_t word, std::uint64_t position) noexcept {
    const std::uint64_t d = ((word >> 16) - position) & position_mask;
    return static_cast<std::int64_t>(d << 16) >> 16;
}
}  // namespace mpmc_word

template <class T>
struct mpmc_layout {
    static constexpr structure_kind kind = structure_kind::mpmc_queue;
    using control_type = mpmc_control;
    static constexpr std::size_t block_alignment = std::max(alignof(mpmc_control), alignof(T));
    static constexpr std::size_t value_offset = align_up(sizeof(std::uint64_t), alignof(T));
    /// Each slot starts a cache line, so neighbours never share one.
    static constexpr std::size_t slot_stride =
        align_up(value_offset + sizeof(T), std::max(cache_line_size, alignof(T)));
    static constexpr std::size_t slots_offset =
        align_up(sizeof(mpmc_control), std::max(cache_line_size, alignof(T)));

    static std::optional<std::size_t> bytes_for(std::uint64_t capacity) noexcept {
        if (capacity > (std::uint64_t{1} << 40)) return std::nullopt;  // positions need headroom in 48 bits
        auto slots = checked_mul(capacity, slot_stride);
        return slots ? checked_add(slots_offset, *slots) : std::nullopt;
    }
    static mpmc_control* control(std::byte* block) noexcept { return reinterpret_cast<mpmc_control*>(block); }
    static void initialise(std::byte* block, std::uint64_t capacity) noexcept {
        control(block)->capacity = capacity;
        control(block)->slot_stride = slot_stride;
        for (std::uint64_t i = 0; i < capacity; ++i)
            slot_word(block, i)->store(mpmc_word::make(i, mpmc_word::free), std::memory_order_relaxed);
    }
    static std::atomic<std::uint64_t>* slot_word(std::byte* block, std::uint64_t index) noexcept {
        return reinterpret_cast<std::atomic<std::uint64_t>*>(block + slots_offset + index * slot_stride);
    }
    static T* slot_value(std::byte* block, std::uint64_t index) noexcept {
        return reinterpret_cast<T*>(block + slots_offset + index * slot_stride + value_offset);
    }
};

}  // namespace detail

template <class T>
class shm_mpmc_queue : public detail::structure_identity {
    static_assert(detail::check_element<T>());
    using layout = detail::mpmc_layout<T>;
    using word = std::uint64_t;

public:
    using value_type = T;

    /// Finds the queue `name` in `segment`, or creates it empty with room
    /// for `capacity` elements (at most 2^40). Errors as for shm_array.
    shm_mpmc_queue(posix_shm& segment, std::string_view name, std::size_t capacity, wait_options wait = {})
        : shm_mpmc_queue(segment, name, open_mode::open_or_create, capacity, wait) {}
    /// Opens the existing queue `name`; throws not_found_error if absent.
    shm_mpmc_queue(posix_shm& segment, std::string_view name)
        : shm_mpmc_queue(segment, name, open_mode::open_only, 0, {}) {}
    shm_mpmc_queue(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                   wait_options wait = {})
        : shm_mpmc_queue(segment, name, open_mode::create_only, capacity, wait) {}
    shm_mpmc_queue(open_only_t, posix_shm& segment, std::string_view name, wait_options wait = {})
        : shm_mpmc_queue(segment, name, open_mode::open_only, 0, wait) {}
    shm_mpmc_queue(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                   wait_options wait = {})
        : shm_mpmc_queue(segment, name, open_mode::open_or_create, capacity, wait) {}

    /// Appends `value` unless the queue is full. Any participant; never
    /// blocks. The first operation of a handle (in a process) takes a
    /// participant id: role_error when 127 live handles already have one.
    [[nodiscard]] bool try_push(const T& value) {
        SHMDS_INJECTED_WORK();
        std::uint64_t position = 0;
        if (!push_one(value, position)) return false;
        after_push(1, position);
        return true;
    }

    /// Appends as many of `items[0..count)` as fit, in order. Any
    /// participant; never blocks. Returns how many. An error met after some
    /// were appended (a damaged slot further on) is not thrown: those are
    /// counted and woken for, and the next call meets the error again.
    std::size_t try_push_n(const T* items, std::size_t count) {
        std::size_t n = 0;
        std::uint64_t last = 0;
        try {
            while (n < count && push_one(items[n], last)) ++n;
        } catch (...) {
            if (n == 0) throw;
        }
        if (n != 0) after_push(n, last);
        return n;
    }

    /// Appends `value`, waiting for room as the wait options say.
    void push(const T& value) {
        if (!try_push(value)) [[unlikely]]
            push_slowly(value, detail::forever);
    }

    /// Appends `value`, waiting at most `timeout` for room.
    template <class Rep, class Period>
    [[nodiscard]] bool try_push_for(const T& value, std::chrono::duration<Rep, Period> timeout) {
        return try_push(value) || (!detail::is_poll(timeout) && push_slowly(value, detail::bounded(timeout)));
    }

    /// Removes and returns the front element, or nullopt when none is ready.
    /// Any participant; never blocks.
    [[nodiscard]] std::optional<T> try_pop() {
        std::uint64_t position = 0;
        std::optional<T> value = pop_one(position);
        if (value) after_pop(1, position);
        return value;
    }

    /// Removes up to `count` elements into `out`, in order. Any participant;
    /// never blocks. Returns how many. An error met after some were taken is
    /// not thrown (they would be lost): they are returned, and the next call
    /// meets the error again.
    std::size_t try_pop_n(T* out, std::size_t count) {
        std::size_t n = 0;
        std::uint64_t last = 0;
        try {
            for (; n < count; ++n) {
                std::optional<T> value = pop_one(last);
                if (!value) break;
                out[n] = *value;
            }
        } catch (...) {
            if (n == 0) throw;
        }
        if (n != 0) after_pop(n, last);
        return n;
    }

    /// Removes and returns the front element, waiting as the wait options say.
    T pop() {
        if (auto value = try_pop()) [[likely]]
            return *value;
        return *pop_slowly(detail::forever);
    }

    /// Removes and returns the front element, waiting at most `timeout`.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<T> try_pop_for(std::chrono::duration<Rep, Period> timeout) {
        if (auto value = try_pop()) [[likely]]
            return value;
        if (detail::is_poll(timeout)) return std::nullopt;
        return pop_slowly(detail::bounded(timeout));
    }

    /// Elements pushed and not yet popped (claims in progress included); a
    /// snapshot, approximate while others run.
    [[nodiscard]] std::size_t size() const noexcept {
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        return tail > head ? static_cast<std::size_t>(std::min(tail - head, capacity_)) : 0;
    }
    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] bool full() const noexcept { return size() == capacity_; }

    void set_wait_options(const wait_options& wait) noexcept { wait_ = wait; }

    /// Gives up this handle's participant id (also done by the destructor,
    /// and by the kernel when the process dies).
    void leave() noexcept {
        if (me_.active()) control_->in_use[me_.id()].store(0, std::memory_order_release);
        me_.leave();
    }

    shm_mpmc_queue(shm_mpmc_queue&&) noexcept = default;
    shm_mpmc_queue& operator=(shm_mpmc_queue&&) = delete;
    /// Leaves (writing into the segment). The handle keeps its segment's
    /// mapping for as long as it lives, so it may outlive the posix_shm it
    /// was opened through: it stays usable, and the segment is detached when
    /// the last of them goes.
    ~shm_mpmc_queue() { leave(); }

private:
    // The waiting paths, out of line so that push, pop and the timed calls
    // stay small enough to inline into the caller's loop.
    [[gnu::noinline]] bool push_slowly(const T& value, std::chrono::nanoseconds timeout) {
        ensure_participant();
        return detail::wait_for(
            control_->not_full, me_.id(), wait_, timeout, [&] { return try_push(value); },
            [&] { check_stall_now(push_stall_); });
    }
    [[gnu::noinline]] std::optional<T> pop_slowly(std::chrono::nanoseconds timeout) {
        ensure_participant();
        return detail::wait_to_pop(
            control_->not_empty, me_.id(), wait_, timeout, [&] { return try_pop(); },
            [&] { check_stall_now(pop_stall_); });
    }

    shm_mpmc_queue(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity,
                   wait_options wait)
        : shm_mpmc_queue(segment, name, wait,
                         segment.table().open<layout>(name, mode, capacity, fingerprint_of<T>())) {}

    shm_mpmc_queue(posix_shm& segment, std::string_view name, wait_options wait,
                   const detail::opened_block& block)
        : detail::structure_identity(segment.name(), name, block.created),
          attachment_(segment.shared_attachment()),
          serial_(block.serial),
          block_(block.block),
          control_(layout::control(block.block)),
          capacity_(block.capacity),
          wait_(wait) {
        if (control_->capacity != capacity_ || control_->slot_stride != layout::slot_stride)
            throw_corrupted("shm_mpmc_queue", "its control block disagrees with its table entry");
    }

    /// The slot holding `position`: its word and its value. One division.
    struct slot_ref {
        std::atomic<word>& state_word;
        T* value;
    };
    slot_ref slot_at(std::uint64_t position) const noexcept {
        const std::uint64_t index = position % capacity_;
        return {*layout::slot_word(block_, index), layout::slot_value(block_, index)};
    }

    /// Claims, fills and publishes one position; `claimed` says which.
    bool push_one(const T& value, std::uint64_t& claimed) {
        ensure_participant();
        SHMDS_FAULT_POINT("mpmc.push.walk");
        push_stall_.pending = false;
        std::uint64_t position = control_->tail.load(std::memory_order_relaxed);
        std::uint64_t walked = 0;  // positions this call moved the hint over
        // (No shortcut through the consumers' hint when it says full: only
        // the slot tells a full queue from one held up by a dead claim.)
        for (;;) {
            const slot_ref ref = slot_at(position);
            std::atomic<word>& slot = ref.state_word;
            word w = slot.load(std::memory_order_acquire);
            const std::int64_t ahead = detail::mpmc_word::distance(w, position);
            const auto state = detail::mpmc_word::state_of(w);
            if (ahead == 0 && state == detail::mpmc_word::free) {
                if (slot.compare_exchange_weak(
                        w, detail::mpmc_word::make(position, detail::mpmc_word::writing, me_.id()),
                        std::memory_order_acquire, std::memory_order_relaxed)) {
                    SHMDS_FAULT_POINT("mpmc.push.claimed");
                    move_hint_past(control_->tail, position, "mpmc.push.hint_checked");
                    std::construct_at(ref.value, value);
                    slot.store(detail::mpmc_word::make(position, detail::mpmc_word::full),
                               std::memory_order_release);
                    claimed = position;
                    return true;
                }
                continue;
            }
            if (ahead >= 0) {
                // Position taken (claimed, or already done): move the hint on.
                advance(control_->tail, position, ahead, walked);
                continue;
            }
            // The slot still holds the previous lap: full, unless whoever
            // holds it died.
            if (recover_if_owner_dead(push_stall_, slot, w, position + static_cast<std::uint64_t>(ahead)))
                continue;
            const std::uint64_t now_tail = control_->tail.load(std::memory_order_relaxed);
            if (now_tail != position) {
                position = now_tail;
                continue;
            }
            return false;
        }
    }

    /// Claims, copies out and frees one position; `claimed` says which.
    std::optional<T> pop_one(std::uint64_t& claimed) {
        ensure_participant();
        SHMDS_FAULT_POINT("mpmc.pop.walk");
        pop_stall_.pending = false;
        std::uint64_t position = control_->head.load(std::memory_order_relaxed);
        std::uint64_t walked = 0;  // positions this call moved the hint over
        for (;;) {
            const slot_ref ref = slot_at(position);
            std::atomic<word>& slot = ref.state_word;
            word w = slot.load(std::memory_order_acquire);
            const std::int64_t ahead = detail::mpmc_word::distance(w, position);
            const auto state = detail::mpmc_word::state_of(w);
            if (ahead == 0 && state == detail::mpmc_word::full) {
                if (slot.compare_exchange_weak(
                        w, detail::mpmc_word::make(position, detail::mpmc_word::reading, me_.id()),
                        std::memory_order_acquire, std::memory_order_relaxed)) {
                    SHMDS_FAULT_POINT("mpmc.pop.claimed");
                    move_hint_past(control_->head, position, "mpmc.pop.hint_checked");
                    std::optional<T> value(*ref.value);
                    slot.store(detail::mpmc_word::make(position + capacity_, detail::mpmc_word::free),
                               std::memory_order_release);
                    claimed = position;
                    return value;
                }
                continue;
            }
            if (ahead > 0 || (ahead == 0 && state == detail::mpmc_word::reading)) {
                // Position taken by another consumer, or long done.
                advance(control_->head, position, ahead, walked);
                continue;
            }
            if (ahead == 0 && state == detail::mpmc_word::writing) {
                if (recover_if_owner_dead(pop_stall_, slot, w, position)) continue;
                return std::nullopt;  // its producer is still writing it
            }
            if (ahead < 0 &&
                recover_if_owner_dead(pop_stall_, slot, w, position + static_cast<std::uint64_t>(ahead)))
                continue;
            // FREE(position): nothing pushed yet; or the previous lap is
            // still being read.
            const std::uint64_t now_head = control_->head.load(std::memory_order_relaxed);
            if (now_head != position) {
                position = now_head;
                continue;
            }
            return std::nullopt;
        }
    }

    /// Moves a hint on from `position`, whose slot is `ahead` positions
    /// ahead of it, if nobody moved it yet; leaves `position` at the hint's
    /// current value (to look there next). Usually one step. Positions are
    /// claimed in order, each skipped only once taken, so a slot a lap or more
    /// ahead proves every position up to one lap before its own taken: the
    /// hint jumps there. A hint left far behind (a participant stopped for a
    /// long time, or garbage written by another process) then costs at most
    /// one lap of steps, not one step per position it is behind (up to 2^47).
    /// `walked` adds up the steps of one push or pop: an honest walk covers
    /// a hint's lag (under 2^47, or it would read as ahead) and what others
    /// claim meanwhile, never the whole 2^48 of the slots' positions; slot
    /// words written over can send it round and round (each jump looking
    /// ahead, modulo 2^48), which is a corrupted_error, not a hang.
    void advance(std::atomic<std::uint64_t>& hint, std::uint64_t& position, std::int64_t ahead,
                 std::uint64_t& walked) const {
        const auto lap = static_cast<std::int64_t>(capacity_);
        const std::uint64_t step = ahead > lap ? static_cast<std::uint64_t>(ahead - lap + 1) : 1;
        if (!hint.compare_exchange_strong(position, position + step, std::memory_order_relaxed)) return;
        position += step;
        walked += step;
        if (walked > detail::mpmc_word::position_mask) [[unlikely]]
            throw_corrupted("shm_mpmc_queue", "its slots' positions send a walk round the whole position "
                                              "space (slot words were written over)");
    }

    /// Moves a hint past the position we just claimed, if nobody has yet.
    /// A load and a plain store, not a locked compare-and-swap (which cost
    /// every push and pop about 20 cycles): between the two, another
    /// participant can only have claimed `position + 1` and moved the hint
    /// to `position + 2`, and a hint set back by one costs the next claimer
    /// one look at a taken slot, nothing else.
    /// (`fault_point` names the moment between the two for the fault tests.)
    static void move_hint_past(std::atomic<std::uint64_t>& hint, std::uint64_t position,
                               [[maybe_unused]] const char* fault_point = nullptr) noexcept {
        if (hint.load(std::memory_order_relaxed) == position) {
            if (fault_point) SHMDS_FAULT_POINT(fault_point);
            hint.store(position + 1, std::memory_order_relaxed);
        }
    }

    /// What last held up this handle's pushes (or pops): a claim by
    /// another participant, which may have died.
    struct stall {
        word seen = 0;
        std::atomic<word>* slot = nullptr;
        std::uint64_t position = 0;
        std::chrono::steady_clock::time_point since{};
        bool pending = false;  ///< the last attempt failed because of it
    };

    /// `w` (a claim on the slot of `slot_position`) has held us up. When its
    /// owner is dead, frees the slot for the next lap (the owner's element is
    /// lost) and returns true. A live owner is the common case, so liveness
    /// (a system call) is checked at most once a millisecond per claim here;
    /// a waiter about to sleep checks at once (check_stall_now).
    bool recover_if_owner_dead(stall& tracker, std::atomic<word>& slot, word w, std::uint64_t slot_position) {
        const auto state = detail::mpmc_word::state_of(w);
        if (state != detail::mpmc_word::writing && state != detail::mpmc_word::reading) return false;
        const auto now = std::chrono::steady_clock::now();
        if (w != tracker.seen) {
            tracker = {w, &slot, slot_position, now, true};
            return false;
        }
        tracker.pending = true;
        if (now - tracker.since < std::chrono::milliseconds(1)) return false;
        return check_stall_now(tracker);
    }

    /// Checks the owner of the claim that last held us up; frees its slot if
    /// the owner is dead. Returns whether it did.
    bool check_stall_now(stall& tracker) {
        if (!tracker.pending) return false;
        tracker.pending = false;
        tracker.since = std::chrono::steady_clock::now();
        const std::uint32_t owner = detail::mpmc_word::owner_of(tracker.seen);
        if (owner == me_.id() ||
            detail::participant_alive(attachment_->fd, detail::participant_lock_offset(serial_, owner)))
            return false;
        return release_dead_claim(*tracker.slot, tracker.seen, tracker.position);
    }

    /// Frees a slot claimed by a participant known to be dead.
    bool release_dead_claim(std::atomic<word>& slot, word w, std::uint64_t slot_position) {
        const bool was_writing = detail::mpmc_word::state_of(w) == detail::mpmc_word::writing;
        if (!slot.compare_exchange_strong(
                w, detail::mpmc_word::make(slot_position + capacity_, detail::mpmc_word::free),
                std::memory_order_acq_rel))
            return true;  // someone else resolved it; look again
        // A dead producer's position is now skipped: let consumers past it,
        // and producers past it if the producer died before moving the hint.
        move_hint_past(control_->tail, slot_position);
        if (was_writing) move_hint_past(control_->head, slot_position);
        // Whoever sleeps behind it, on either side, may go on now.
        detail::notify(control_->not_full);
        detail::notify(control_->not_empty);
        return true;
    }

    /// True when the slot of `position` holds that position in `state`:
    /// FREE (a producer could take it now) or FULL (a consumer could).
    bool slot_holds(std::uint64_t position, detail::mpmc_word::state state) const noexcept {
        const word w = slot_at(position).state_word.load(std::memory_order_acquire);
        return detail::mpmc_word::distance(w, position) == 0 && detail::mpmc_word::state_of(w) == state;
    }

    /// Wakes a consumer for each element pushed, and passes a wake-up on to
    /// another producer when the position after `last` (this call's last) is
    /// free to take. Producers finish out of order, so the one a pop woke
    /// may have found its position still held and gone back to sleep; the
    /// producer that takes the position before a free one wakes the next.
    /// Decided from the slot, never from the hints: a hint can be set back,
    /// and a decision read from it would leave a producer asleep beside a
    /// free slot until its safety net.
    void after_push(std::size_t pushed, std::uint64_t last) noexcept {
        detail::notify(control_->not_empty, static_cast<int>(std::min<std::size_t>(pushed, INT32_MAX)));
        // The next slot is on a line the other side writes: read it only when
        // a producer may actually sleep.
        if (!control_->not_full.may_need_waking()) [[likely]]
            return;
        if (slot_holds(last + 1, detail::mpmc_word::free)) detail::notify(control_->not_full);
    }

    /// The mirror of after_push: room for producers, and a wake-up passed on
    /// to another consumer when the position after `last` is ready.
    void after_pop(std::size_t popped, std::uint64_t last) noexcept {
        detail::notify(control_->not_full, static_cast<int>(std::min<std::size_t>(popped, INT32_MAX)));
        if (!control_->not_empty.may_need_waking()) [[likely]]
            return;
        if (slot_holds(last + 1, detail::mpmc_word::full)) detail::notify(control_->not_empty);
    }

    void ensure_participant() {
        if (me_.active()) [[likely]]
            return;
        if (!me_.join_any(attachment_->fd, serial_, detail::max_participants, describe("shm_mpmc_queue")))
            throw role_error(errc::too_many_participants, describe("shm_mpmc_queue") + " already has " +
                                                              std::to_string(detail::max_participants) +
                                                              " live participants");
        // Our id's previous holder, if any, died: clear what it left.
        control_->not_empty.retract(me_.id());
        control_->not_full.retract(me_.id());
        if (control_->in_use[me_.id()].exchange(1, std::memory_order_acq_rel) == 0) return;  // left cleanly
        for (std::uint64_t i = 0; i < capacity_; ++i) {
            std::atomic<word>& slot = *layout::slot_word(block_, i);
            word w = slot.load(std::memory_order_acquire);
            const auto state = detail::mpmc_word::state_of(w);
            if ((state == detail::mpmc_word::writing || state == detail::mpmc_word::reading) &&
                detail::mpmc_word::owner_of(w) == me_.id()) {
                // Rebuild the claim's full position from the head hint.
                const std::uint64_t near = control_->head.load(std::memory_order_relaxed);
                const std::uint64_t position =
                    near + static_cast<std::uint64_t>(detail::mpmc_word::distance(w, near));
                release_dead_claim(slot, w, position);
            }
        }
    }

    detail::attachment_ref attachment_;  ///< keeps the mapping while this handle lives
    std::uint64_t serial_;
    std::byte* block_;
    detail::mpmc_control* control_;
    std::uint64_t capacity_;
    wait_options wait_;
    detail::participation me_;
    stall push_stall_;
    stall pop_stall_;
};

}  // namespace shmds
