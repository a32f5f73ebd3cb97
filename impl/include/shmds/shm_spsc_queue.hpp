// shmds/shm_spsc_queue.hpp: a bounded lock-free queue for one producer and
// one consumer, in different processes (or threads), found or created by name.
//
// Opening by name, the blocking calls and joining come from
// detail/blocking_handle.hpp; this header is the queue itself. (It is longer
// than the project's 450-line limit on purpose: the slot protocol, batches,
// loans, roles and a successor's resumption after a crash share one
// invariant, the slots' sequences, and are kept in one file so that it can be
// checked whole; its shared layout is the short first part. The loans are
// the one part that could move out: they reach into the handle's positions
// and slot pointers, and the hot paths' steering of try_push and try_pop
// into their slow branches while a loan is open lives in both; splitting
// them is left for when the message queue's loans give a second user.)
//
// Shared state (all in the segment; offsets only):
//   tail       elements published so far (a 64-bit position, never wraps in
//              practice); written by the producer only, on its own 128-byte pair
//   head       elements taken so far; written by the consumer only, on its own pair
//   not_empty, not_full   wait channels (futex words) for blocking calls
//   capacity slots, each {sequence, value}: the element at position p lives
//              in slot p % capacity, and its slot's sequence becomes p + 1
//              (release) once the value is written.
// The consumer learns that position `head` is ready from that slot's own
// sequence, on the line it is about to read anyway, so a hand-off moves one
// cache line from producer to consumer, not two (an index, then the slot).
// The producer learns about free slots from `head`, cached in its handle and
// read again only when the cache says full. `tail` is for size(), batches and
// a successor producer; nobody waits on it. Each side keeps its position and
// a pointer to its slot in its handle: no division, no index arithmetic on
// the fast path.
//
// Batches. try_push_n writes every slot but the first, value and sequence,
// then the first: its sequence opens the whole batch at once. try_pop_n
// takes the elements `tail` counts without reading their sequences (its
// acquire vouches for them), then any further ready slots, and releases
// them with one store of `head`. A batch is at most two runs of adjacent
// slots (up to the last slot, then from the first), each copied by a plain
// loop.
//
// Loans. try_reserve_n lends the producer the next free slots to write in
// place; commit publishes them exactly as try_push_n would (sequences, then
// the first slot's, then tail). try_peek_n lends the consumer the ready
// slots at the front to read in place; release gives them back with one
// store of head, as try_pop_n does. Neither moves a shared word before it
// ends, so a crash mid-loan is a crash before the push or pop began. While
// a loan is open its side's other calls would reach the lent slots: the
// fast paths are steered to their slow branches instead of testing a flag
// (room_end_ is set to tail_, head_slot_ to a slot whose sequence never
// matches), and those branches throw loan_error.
//
// Roles. The first push through a handle takes the producer role, the first
// pop the consumer role; a role is a kernel lock (see participants.hpp), so
// it is released when the handle is destroyed or its process dies, and a
// second live handle that tries to take a held role gets role_error.
//
// Crashes. A producer killed mid-push loses only the element it was pushing
// (its sequence was never stored), or the whole of an unfinished batch (its
// first sequence was never stored). One killed between publishing and
// storing `tail` has published: its successor counts on from the slots'
// sequences, not from `tail`, and clears any sequence a dead batch left
// ahead of it. A consumer killed mid-pop loses nothing (head was not
// advanced, so the element is delivered to the next consumer). Positions
// read from shared memory are checked against each other before use, and
// slot indices come only from the handle, so a damaged control block cannot
// send anyone outside the slots.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <unistd.h>

#include "shmds/config.hpp"
#include "shmds/detail/blocking_handle.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"

namespace shmds {

namespace detail {

struct spsc_control {
    alignas(false_sharing_range) detail::atomic<std::uint64_t> tail;  ///< producer's: elements published
    alignas(false_sharing_range) detail::atomic<std::uint64_t> head;  ///< consumer's: elements taken
    alignas(false_sharing_range) wait_channel not_empty;           ///< the consumer sleeps here
    alignas(false_sharing_range) wait_channel not_full;            ///< the producer sleeps here
    alignas(false_sharing_range) std::uint64_t capacity;           ///< immutable
    detail::atomic<std::int32_t> producer_pid;                     ///< for messages only
    detail::atomic<std::int32_t> consumer_pid;
};

static_assert(offsetof(spsc_control, head) - offsetof(spsc_control, tail) >= false_sharing_range,
              "producer and consumer positions must not share a cache-line pair");
static_assert(offsetof(spsc_control, not_empty) - offsetof(spsc_control, head) >= false_sharing_range,
              "the wait channels, read on every operation, must not share the positions' lines");
static_assert(detail::atomic<std::uint64_t>::is_always_lock_free &&
                  sizeof(detail::atomic<std::uint64_t>) == 8,
              "positions and sequences are plain 64-bit words shared between processes");
static_assert(std::is_standard_layout_v<spsc_control>, "the control block is shared bytes");

/// One slot: the sequence says which position's value it holds (position + 1
/// once written; 0 in a new queue, whose block the table zeroes).
template <class T>
struct spsc_slot {
    detail::atomic<std::uint64_t> sequence;
    T value;
};

static_assert(sizeof(spsc_slot<std::uint64_t>) == 16,
              "an 8-byte element takes 16 bytes: four slots per cache line, sequence beside value");

template <class T>
struct spsc_layout : control_then_elements<spsc_control, spsc_slot<T>> {
    static constexpr structure_kind kind = structure_kind::spsc_queue;
    using base = control_then_elements<spsc_control, spsc_slot<T>>;

    static std::optional<std::size_t> bytes_for(std::uint64_t capacity) noexcept {
        return base::bytes_for(capacity);
    }
    static void initialise(std::byte* block, std::uint64_t capacity) noexcept {
        base::control(block)->capacity = capacity;
    }

    /// Whether head and tail are within a capacity of each other (either way
    /// round: the consumer may briefly be ahead of the stored tail, never by
    /// more than a queue's worth).
    static bool positions_agree(std::uint64_t head, std::uint64_t tail, std::uint64_t capacity) noexcept {
        return tail - head <= capacity || head - tail <= capacity;
    }
    static std::string describe_positions(std::uint64_t head, std::uint64_t tail, std::uint64_t capacity) {
        return "its head position " + std::to_string(head) + " and tail position " + std::to_string(tail) +
               " are more than its capacity " + std::to_string(capacity) + " apart";
    }

    struct positions {
        std::uint64_t head;
        std::uint64_t tail;
    };
    /// Rounds of read_positions after the first, at most.
    static constexpr int stale_tail_rereads = 3;
    /// Both positions, for a reader that holds neither role (size(), an
    /// opener's check). Tail first: the producer stored it only after it had
    /// seen a head within a capacity, and the acquire brings that head along,
    /// so the head read next is never further behind. It may be any distance
    /// ahead, though, in a healthy queue: a reader held up between the two
    /// loads finds what went through meanwhile in the head, not in its tail.
    /// The tail read again after the head's acquire is at most one behind it
    /// (the consumer took each element after its publication, and the
    /// producer stores tail before it publishes the next), so positions that
    /// still disagree after a few rounds, each needing a queue's worth of
    /// traffic in between, are damage.
    static positions read_positions(const spsc_control& control, std::uint64_t capacity) noexcept {
        positions p{};
        p.tail = control.tail.load(std::memory_order_acquire);
        p.head = control.head.load(std::memory_order_acquire);
        for (int round = 0; round < stale_tail_rereads && !positions_agree(p.head, p.tail, capacity) &&
                            static_cast<std::int64_t>(p.head - p.tail) > 0;
             ++round) {
            p.tail = control.tail.load(std::memory_order_acquire);
            p.head = control.head.load(std::memory_order_acquire);
        }
        return p;
    }
    /// Checked at open (see blocking_handle.hpp).
    static std::string damage(spsc_control& control, std::uint64_t capacity) {
        const positions p = read_positions(control, capacity);
        return positions_agree(p.head, p.tail, capacity) ? std::string()
                                                         : describe_positions(p.head, p.tail, capacity);
    }
};

}  // namespace detail

template <class T>
class shm_spsc_queue : public detail::blocking_handle<shm_spsc_queue<T>, T, detail::spsc_layout<T>> {
    using layout = detail::spsc_layout<T>;
    using handle = detail::blocking_handle<shm_spsc_queue<T>, T, layout>;
    friend handle;
    using slot = detail::spsc_slot<T>;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;

    /// The five ways to open a queue by name (blocking_handle.hpp). Opening
    /// takes no role: the first push takes the producer's, the first pop the
    /// consumer's.
    using handle::handle;

    shm_spsc_queue(shm_spsc_queue&&) noexcept = default;
    /// (Not assignable: a role would have to change hands mid-assignment.)
    shm_spsc_queue& operator=(shm_spsc_queue&&) = delete;
    /// Releases the roles this handle holds (writing into the segment). The
    /// handle keeps its segment's mapping for as long as it lives, so it may
    /// outlive the posix_shm it was opened through: it stays usable, and the
    /// segment is detached when the last of them goes.
    ~shm_spsc_queue() { release_roles(); }

    // ---- producer: one handle at a time, in any process ---------------------------------------

    /// Appends `value` unless the queue is full. Producer only (the first
    /// call takes the role; role_error if another live handle has it).
    /// Never blocks.
    [[nodiscard, gnu::always_inline]] bool try_push(const T& value) {
        SHMDS_INJECTED_WORK();
        ensure_producer();
        if (tail_ == room_end_) [[unlikely]] {
            if (producer_lent_) throw_loan_open("try_push", "write");
            room_end_ = load_head() + capacity_;
            if (tail_ == room_end_) return false;
        }
        // Locals, not members, across the stores: a store to a shared 64-bit
        // word may alias this handle's fields as far as the compiler knows,
        // and it reloaded them after each store (callgrind showed it).
        const std::uint64_t published = tail_ + 1;
        slot* const s = tail_slot_;
        detail::spsc_control* const control = control_;
        std::construct_at(std::addressof(s->value), value);
        SHMDS_FAULT_POINT("spsc.push.written");
        s->sequence.store(published, std::memory_order_release);
        SHMDS_FAULT_POINT("spsc.push.published");
        tail_ = published;
        tail_slot_ = next_slot(s);
        control->tail.store(published, std::memory_order_release);
        detail::notify(control->not_empty);
        return true;
    }

    /// Appends as many of `items[0..count)` as fit, in order, publishing
    /// them at once. Producer only; never blocks. Returns how many.
    std::size_t try_push_n(const T* items, std::size_t count) {
        ensure_producer();
        if (producer_lent_) [[unlikely]]
            throw_loan_open("try_push_n", "write");
        std::uint64_t room = room_end_ - tail_;
        if (room < count) {
            room_end_ = load_head() + capacity_;
            room = room_end_ - tail_;
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(room, count));
        if (n == 0) return 0;
        const run_pair runs = runs_from(tail_slot_, n);
        // Every slot but the first, value then sequence (relaxed): the
        // consumer looks at none of them before the first, whose sequence,
        // stored last with release, opens the whole batch at once. (In
        // locals: the handle's fields would be read again after every store.)
        const std::uint64_t first_published = tail_ + 1;
        slot* const second_run = slots_;
        // Unrolled by two: the loop's own count and branch were a third of
        // each element's cost (callgrind: 7 instructions an element, 5.5 so).
#pragma GCC unroll 2
        for (std::size_t i = 1; i < runs.first_length; ++i) {
            std::construct_at(std::addressof(runs.first[i].value), items[i]);
            runs.first[i].sequence.store(first_published + i, std::memory_order_relaxed);
            SHMDS_FAULT_POINT("spsc.push_n.one_written");
        }
        for (std::size_t i = runs.first_length; i < n; ++i) {
            slot& s = second_run[i - runs.first_length];
            std::construct_at(std::addressof(s.value), items[i]);
            s.sequence.store(first_published + i, std::memory_order_relaxed);
            SHMDS_FAULT_POINT("spsc.push_n.one_written");
        }
        SHMDS_FAULT_POINT("spsc.push_n.all_but_first");
        std::construct_at(std::addressof(runs.first->value), items[0]);
        SHMDS_FAULT_POINT("spsc.push_n.written");
        runs.first->sequence.store(first_published, std::memory_order_release);
        SHMDS_FAULT_POINT("spsc.push_n.published");
        advance(tail_, tail_slot_, n);
        control_->tail.store(tail_, std::memory_order_release);
        detail::notify(control_->not_empty);
        return n;
    }

    // push(value) and try_push_for(value, timeout) wait for room as the
    // wait options say (blocking_handle.hpp). Producer only.

    // ---- consumer: one handle at a time, in any process ---------------------------------------

    /// Removes and returns the front element, or nullopt when empty.
    /// Consumer only (the first call takes the role). Never blocks.
    [[nodiscard, gnu::always_inline]] std::optional<T> try_pop() {
        front_slot front;
        if (!ready_front(front)) return std::nullopt;
        std::optional<T> value(front.at->value);
        pop_front(front);
        return value;
    }

    /// Moves the front element into `out` and returns true, or returns
    /// false (leaving `out` alone) when empty: try_pop() without building an
    /// optional, for loops that reuse one variable. Consumer only (the first
    /// call takes the role). Never blocks.
    [[nodiscard, gnu::always_inline]] bool try_pop(T& out) {
        front_slot front;
        if (!ready_front(front)) return false;
        out = front.at->value;
        pop_front(front);
        return true;
    }

    /// Removes up to `count` elements into `out`, in order, releasing their
    /// slots at once. Consumer only; never blocks. Returns how many.
    std::size_t try_pop_n(T* out, std::size_t count) {
        ensure_consumer();
        if (consumer_lent()) [[unlikely]]
            throw_loan_open("try_pop_n", "read");
        const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(count, capacity_));
        // The elements the producer's tail counts were published before it
        // was stored: one acquire load vouches for them all, and their
        // sequences need not be read one by one. Any published beyond it
        // (tail is stored just after each publication, or by a successor
        // producer) are taken by their sequences. A tail that is behind the
        // head, or damaged, vouches for none; slot indices still come only
        // from this handle.
        const std::uint64_t counted = control_->tail.load(std::memory_order_acquire) - head_;
        const std::size_t vouched =
            counted <= capacity_ ? std::min(static_cast<std::size_t>(counted), wanted) : 0;
        const run_pair runs = runs_from(head_slot_, wanted);
        std::size_t n = take_ready(runs.first, runs.first_length, head_, out, vouched);
        if (n == runs.first_length)
            n += take_ready(slots_, wanted - n, head_ + n, out + n, vouched > n ? vouched - n : 0);
        if (n == 0) return 0;
        advance(head_, head_slot_, n);
        control_->head.store(head_, std::memory_order_release);
        detail::notify(control_->not_full);
        return n;
    }

    // pop() and try_pop_for(timeout) wait for an element as the wait
    // options say (blocking_handle.hpp). Consumer only.

    // ---- loans: elements written and read where they lie in the segment ------------------------

private:
    /// What both kinds of loan hold: `size` slots from `first`, of which
    /// `first_length` come before the wrap, lent by `queue`. Moving one
    /// empties the source (a loan ends once, whichever object holds it).
    struct lent_run {
        shm_spsc_queue* queue = nullptr;
        slot* first = nullptr;
        std::size_t first_length = 0;
        std::size_t size = 0;

        lent_run() noexcept = default;
        lent_run(shm_spsc_queue* q, slot* f, std::size_t before_wrap, std::size_t n) noexcept
            : queue(q), first(f), first_length(before_wrap), size(n) {}
        lent_run(lent_run&& other) noexcept
            : queue(other.queue),
              first(other.first),
              first_length(other.first_length),
              size(std::exchange(other.size, 0)) {}
        lent_run& operator=(lent_run&& other) noexcept {
            queue = other.queue;
            first = other.first;
            first_length = other.first_length;
            size = std::exchange(other.size, 0);
            return *this;
        }
        /// The element in the `i`-th slot (i < size).
        T& at(std::size_t i) const noexcept {
            return i < first_length ? first[i].value : queue->slots_[i - first_length].value;
        }
    };

public:
    /// Free slots lent to the producer by try_reserve_n (or try_reserve,
    /// reserve, reserve_n and the timed forms): write the elements in place,
    /// then commit(). A slot holds whatever it held before (an element of an
    /// earlier lap, or zeros): write every byte that matters. Dropped
    /// (destroyed or assigned over) before commit(), a loan publishes
    /// nothing. Move-only; empty when nothing was lent.
    ///
    /// It must not outlive the queue handle that lent it, and the handle
    /// must not be moved while it is open. While it is open, the handle's
    /// other producer calls (try_push, push, try_push_n, another
    /// reservation) throw loan_error. A producer killed while it holds a
    /// loan loses the lent elements and nothing else, as one killed mid-push
    /// loses its element.
    class write_loan {
    public:
        write_loan() noexcept = default;
        write_loan(write_loan&&) noexcept = default;
        write_loan& operator=(write_loan&& other) noexcept {
            if (this != &other) {
                drop();
                run_ = std::move(other.run_);
            }
            return *this;
        }
        /// Publishes nothing that was not committed.
        ~write_loan() { drop(); }

        /// Whether slots are lent (false: the queue was full, or committed).
        explicit operator bool() const noexcept { return run_.size != 0; }
        /// How many slots are lent: 1 from try_reserve(), 1 to n from try_reserve_n(n).
        [[nodiscard]] std::size_t size() const noexcept { return run_.size; }
        /// The element in the `i`-th slot lent (i < size()), in the segment.
        [[nodiscard]] T& operator[](std::size_t i) const noexcept { return run_.at(i); }
        [[nodiscard]] T& operator*() const noexcept { return run_.first->value; }
        [[nodiscard]] T* operator->() const noexcept { return std::addressof(run_.first->value); }

        /// Publishes the first `count` elements, at once and in order, and
        /// drops the rest; the loan is empty afterwards. Never blocks.
        /// invalid_argument_error when count > size() (the loan stays
        /// open); role_error when the handle gave up the producer role, or
        /// this is a forked child's copy (nothing published; the loan ends).
        [[gnu::always_inline]] void commit(std::size_t count) {
            if (count > run_.size) [[unlikely]]
                detail::throw_beyond_loan("commit", count, run_.size);
            if (run_.size == 0) return;
            run_.size = 0;
            run_.queue->publish_lent(run_.first, run_.first_length, count);
        }
        /// Publishes every element lent.
        void commit() { commit(run_.size); }

    private:
        friend shm_spsc_queue;
        explicit write_loan(lent_run run) noexcept : run_(std::move(run)) {}
        void drop() noexcept {
            if (run_.size != 0) run_.queue->end_write_loan();
            run_.size = 0;
        }
        lent_run run_;
    };

    /// Lends up to `n` free slots (n >= 1), in order, or none when the queue
    /// is full. Producer only (the first call takes the role). Never blocks.
    /// reserve_n(n) and try_reserve_n_for(n, timeout) wait for room
    /// (blocking_handle.hpp).
    [[nodiscard]] write_loan try_reserve_n(std::size_t n) {
        ensure_producer();
        if (producer_lent_) [[unlikely]]
            throw_loan_open("try_reserve_n", "write");
        std::uint64_t room = room_end_ - tail_;
        if (room < n) {
            room_end_ = load_head() + capacity_;
            room = room_end_ - tail_;
        }
        const auto lent = static_cast<std::size_t>(std::min<std::uint64_t>(room, n));
        if (lent == 0) return {};
        producer_lent_ = true;
        lent_room_end_ = room_end_;
        room_end_ = tail_;  // try_push takes its slow branch, which refuses
        const run_pair runs = runs_from(tail_slot_, lent);
        return write_loan(lent_run(this, runs.first, runs.first_length, lent));
    }
    /// Lends the next free slot, or none when the queue is full. As
    /// try_reserve_n(1), on try_push's path: "full?" is one comparison.
    [[nodiscard, gnu::always_inline]] write_loan try_reserve() {
        ensure_producer();
        if (tail_ == room_end_) [[unlikely]] {
            if (producer_lent_) throw_loan_open("try_reserve", "write");
            room_end_ = load_head() + capacity_;
            if (tail_ == room_end_) return {};
        }
        producer_lent_ = true;
        lent_room_end_ = room_end_;
        room_end_ = tail_;
        return write_loan(lent_run(this, tail_slot_, 1, 1));
    }

    /// Ready elements at the front lent to the consumer by try_peek_n (or
    /// try_peek, peek, peek_n and the timed forms), read in place; release()
    /// removes them. Dropped (destroyed or assigned over) before release(),
    /// a loan leaves its elements at the front, where the next peek or pop
    /// finds them. Move-only; empty when nothing was lent.
    ///
    /// It must not outlive the queue handle that lent it, and the handle
    /// must not be moved while it is open. While it is open, the handle's
    /// other consumer calls throw loan_error. A consumer killed while it
    /// holds a loan loses nothing: the elements stay at the front for the
    /// next consumer, as for one killed mid-pop.
    class read_loan {
    public:
        read_loan() noexcept = default;
        read_loan(read_loan&&) noexcept = default;
        read_loan& operator=(read_loan&& other) noexcept {
            if (this != &other) {
                drop();
                run_ = std::move(other.run_);
            }
            return *this;
        }
        /// Leaves at the front what was not released.
        ~read_loan() { drop(); }

        /// Whether elements are lent (false: the queue was empty, or released).
        explicit operator bool() const noexcept { return run_.size != 0; }
        /// How many elements are lent: 1 from try_peek(), 1 to n from try_peek_n(n).
        [[nodiscard]] std::size_t size() const noexcept { return run_.size; }
        /// The `i`-th element lent (i < size()), front first, in the segment.
        [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return run_.at(i); }
        [[nodiscard]] const T& operator*() const noexcept { return run_.first->value; }
        [[nodiscard]] const T* operator->() const noexcept { return std::addressof(run_.first->value); }

        /// Removes the first `count` elements lent, at once, and leaves the
        /// rest at the front; the loan is empty afterwards. Never blocks.
        /// invalid_argument_error when count > size() (the loan stays open).
        [[gnu::always_inline]] void release(std::size_t count) {
            if (count > run_.size) [[unlikely]]
                detail::throw_beyond_loan("release", count, run_.size);
            if (run_.size == 0) return;
            run_.size = 0;
            run_.queue->free_lent(run_.first, count);
        }
        /// Removes every element lent.
        void release() { release(run_.size); }

    private:
        friend shm_spsc_queue;
        explicit read_loan(lent_run run) noexcept : run_(std::move(run)) {}
        void drop() noexcept {
            if (run_.size != 0) run_.queue->free_lent(run_.first, 0);
            run_.size = 0;
        }
        lent_run run_;
    };

    /// Lends up to `n` ready elements from the front (n >= 1), in order, or
    /// none when the queue is empty. Consumer only (the first call takes the
    /// role). Never blocks. peek_n(n) and try_peek_n_for(n, timeout) wait
    /// for an element (blocking_handle.hpp).
    [[nodiscard]] read_loan try_peek_n(std::size_t n) {
        ensure_consumer();
        if (consumer_lent()) [[unlikely]]
            throw_loan_open("try_peek_n", "read");
        const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity_));
        // Counted as try_pop_n counts (there: why tail vouches for slots).
        const std::uint64_t counted = control_->tail.load(std::memory_order_acquire) - head_;
        const std::size_t vouched =
            counted <= capacity_ ? std::min(static_cast<std::size_t>(counted), wanted) : 0;
        const run_pair runs = runs_from(head_slot_, wanted);
        std::size_t ready = count_ready(runs.first, runs.first_length, head_, vouched);
        if (ready == runs.first_length)
            ready +=
                count_ready(slots_, wanted - ready, head_ + ready, vouched > ready ? vouched - ready : 0);
        if (ready == 0) return {};
        slot* const first = head_slot_;
        head_slot_ = &lent_front;  // try_pop takes its empty branch, which refuses
        return read_loan(lent_run(this, first, runs.first_length, ready));
    }
    /// Lends the front element, or none when the queue is empty. As
    /// try_peek_n(1), on try_pop's path: the front slot's sequence, no `tail`.
    [[nodiscard, gnu::always_inline]] read_loan try_peek() {
        front_slot front;
        if (!ready_front(front)) return {};
        head_slot_ = &lent_front;
        return read_loan(lent_run(this, front.at, 1, 1));
    }

    // ---- anyone ----------------------------------------------------------------------------------

    /// Elements in the queue; a snapshot that may be stale as soon as it is
    /// returned while the producer or consumer runs.
    [[nodiscard]] std::size_t size() const {
        // The head may have passed the tail read (layout::read_positions): none.
        const auto [head, tail] = layout::read_positions(*control_, capacity_);
        check_positions(head, tail);
        return tail - head <= capacity_ ? static_cast<std::size_t>(tail - head) : 0;
    }
    // capacity(), empty(), full() and set_wait_options: blocking_handle.hpp.

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

    using handle::capacity_;
    using handle::control_;
    using handle::kind_name;

    /// Each side sleeps alone on its own channel, under bit 0. (push and pop
    /// took their role in the try_ call before they wait.)
    static std::uint32_t sleeper_id() noexcept { return 0; }

    /// The slot `offset` places after `from` (offset <= capacity).
    slot* slot_at(slot* from, std::uint64_t offset) const noexcept {
        const auto room_to_end = static_cast<std::uint64_t>(slots_end_ - from);
        return offset < room_to_end ? from + offset : slots_ + (offset - room_to_end);
    }
    /// The slot after `s`.
    slot* next_slot(slot* s) const noexcept {
        ++s;
        return s == slots_end_ ? slots_ : s;
    }
    /// Moves a position and its slot on by `by` (at most a capacity).
    void advance(std::uint64_t& position, slot*& at, std::uint64_t by) const noexcept {
        position += by;
        at = slot_at(at, by);
    }
    /// The `length` slots from `from` on (length <= capacity), as the run up
    /// to the last slot and the run that goes on from slots_[0].
    struct run_pair {
        slot* first;
        std::size_t first_length;
    };
    run_pair runs_from(slot* from, std::size_t length) const noexcept {
        return {from, std::min(length, static_cast<std::size_t>(slots_end_ - from))};
    }
    /// Copies into `out` the elements of the run of `length` slots from
    /// `run` that are ready (position `position` onwards), stopping at the
    /// first that is not: the first `vouched` without reading their
    /// sequences (the caller knows they are published), the others after
    /// their sequence says so. Returns how many it copied.
    static std::size_t take_ready(const slot* run, std::size_t length, std::uint64_t position, T* out,
                                  std::size_t vouched) {
        std::size_t i = 0;
        for (const std::size_t known = std::min(vouched, length); i < known; ++i) out[i] = run[i].value;
        for (; i < length && run[i].sequence.load(std::memory_order_acquire) == position + i + 1; ++i)
            out[i] = run[i].value;
        return i;
    }

    /// The front slot and the consumer's position once it is taken (read
    /// before the acquire load, so that the compiler need not read the
    /// handle's fields again after it).
    struct front_slot {
        slot* at = nullptr;
        std::uint64_t next_head = 0;
    };
    /// Whether the front element is ready (its slot's sequence says so);
    /// if so, `front` says where. Takes the consumer role.
    [[gnu::always_inline]] bool ready_front(front_slot& front) {
        ensure_consumer();
        front = {head_slot_, head_ + 1};
        if (front.at->sequence.load(std::memory_order_acquire) == front.next_head) [[likely]]
            return true;
        if (front.at == &lent_front) [[unlikely]]
            throw_loan_open("try_pop", "read");
        return false;
    }
    /// Gives the front slot (read by now) back to the producer.
    [[gnu::always_inline]] void pop_front(front_slot front) {
        SHMDS_FAULT_POINT("spsc.pop.read");
        detail::spsc_control* const control = control_;
        head_ = front.next_head;
        head_slot_ = next_slot(front.at);
        control->head.store(front.next_head, std::memory_order_release);
        detail::notify(control->not_full);
    }

    /// How many of the `length` slots from `run` (position `position`
    /// onwards) are ready, stopping at the first that is not: the first
    /// `vouched` without reading their sequences (take_ready, without the copies).
    static std::size_t count_ready(const slot* run, std::size_t length, std::uint64_t position,
                                   std::size_t vouched) noexcept {
        std::size_t i = std::min(vouched, length);
        while (i < length && run[i].sequence.load(std::memory_order_acquire) == position + i + 1) ++i;
        return i;
    }

    // ---- loans' ends (the loans call these) ----

    /// Where head_slot_ points while a read loan is open: a slot no
    /// position's sequence ever matches (positions start at 1), never
    /// written, so that try_pop's one comparison fails and its empty branch
    /// finds the loan.
    static inline slot lent_front{};
    bool consumer_lent() const noexcept {
        return head_slot_ == &lent_front;
    }

    [[noreturn, gnu::noinline, gnu::cold]] void throw_loan_open(const char* call, const char* side) const {
        throw loan_error(this->describe(kind_name) + ": " + call + " while this handle's " + side +
                         " loan is open (" + (side[0] == 'w' ? "commit" : "release") + " or drop it first)");
    }

    /// A write loan dropped: nothing published, the slots are lent again next time.
    void end_write_loan() noexcept {
        producer_lent_ = false;
        room_end_ = lent_room_end_;
    }

    /// Publishes the first `count` lent slots (from `first`, of which
    /// `first_length` before the wrap) as try_push_n does, with the same
    /// fault points' order: every sequence but the first, then the first
    /// (release), then tail.
    [[gnu::always_inline]] void publish_lent(slot* first, std::size_t first_length, std::size_t count) {
        end_write_loan();
        if (!producer_.active()) [[unlikely]]
            throw_role_given_up("commit()", "producer");
        if (count == 0) return;
        const std::uint64_t first_published = tail_ + 1;
        slot* const second_run = slots_;
        for (std::size_t i = 1; i < count; ++i) {
            slot& s = i < first_length ? first[i] : second_run[i - first_length];
            s.sequence.store(first_published + i, std::memory_order_relaxed);
        }
        SHMDS_FAULT_POINT("spsc.commit.all_but_first");
        first->sequence.store(first_published, std::memory_order_release);
        SHMDS_FAULT_POINT("spsc.commit.published");
        // (In locals, as in try_push: the stores above would make the
        // compiler read the handle's fields again.)
        const std::uint64_t published = first_published + count - 1;
        detail::spsc_control* const control = control_;
        tail_ = published;
        tail_slot_ = count == 1 ? next_slot(first) : slot_at(first, count);
        control->tail.store(published, std::memory_order_release);
        detail::notify(control->not_empty);
    }

    /// Ends a read loan from `first`: removes its first `count` elements
    /// (with one store of head) and puts the front back where it was, after
    /// them. role_error (nothing removed) when the handle gave up the
    /// consumer role meanwhile, or this is a forked child's copy.
    [[gnu::always_inline]] void free_lent(slot* first, std::size_t count) {
        head_slot_ = first;
        if (count == 0) return;
        if (!consumer_.active()) [[unlikely]]
            throw_role_given_up("release()", "consumer");
        const std::uint64_t taken = head_ + count;
        detail::spsc_control* const control = control_;  // (in a local: see publish_lent)
        head_ = taken;
        head_slot_ = count == 1 ? next_slot(first) : slot_at(first, count);
        control->head.store(taken, std::memory_order_release);
        detail::notify(control->not_full);
    }
    [[noreturn, gnu::noinline, gnu::cold]] void throw_role_given_up(const char* call,
                                                                    const char* role) const {
        throw role_error(errc::role_taken,
                         this->describe(kind_name) + ": " + call + " after this handle gave up the " + role +
                             " role (release_roles(), or a forked child's copy); nothing done");
    }

    /// How far position `a` is ahead of `b` (negative: behind). Meaningful
    /// for positions checked to be within two capacities of each other.
    static std::int64_t ahead_of(std::uint64_t a, std::uint64_t b) noexcept {
        return static_cast<std::int64_t>(a - b);
    }

    /// Throws corrupted_error unless head and tail are within a capacity of
    /// each other (layout::positions_agree).
    void check_positions(std::uint64_t head, std::uint64_t tail) const {
        if (!layout::positions_agree(head, tail, capacity_)) [[unlikely]]
            this->throw_corrupted(kind_name, layout::describe_positions(head, tail, capacity_));
    }

    /// The consumer's position, as the producer sees it: never ahead of
    /// what this producer published, never more than a capacity behind.
    std::uint64_t load_head() const {
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        if (tail_ - head > capacity_) [[unlikely]]
            head_is_corrupted(head);
        return head;
    }
    [[noreturn, gnu::noinline, gnu::cold]] void head_is_corrupted(std::uint64_t head) const {
        this->throw_corrupted(kind_name, "its head position " + std::to_string(head) + " is not within " +
                                             std::to_string(capacity_) + " behind the producer's position " +
                                             std::to_string(tail_));
    }

    void ensure_producer() {
        if (!producer_.active()) [[unlikely]]
            take_role(producer_, producer_role, control_->not_full, control_->producer_pid, "producer");
    }
    void ensure_consumer() {
        if (!consumer_.active()) [[unlikely]]
            take_role(consumer_, consumer_role, control_->not_empty, control_->consumer_pid, "consumer");
    }

    // Cold and out of line: it keeps try_push and try_pop small enough to
    // inline into the caller's loop.
    // (The role's channel: a predecessor that died asleep there left its
    // bit set; only this role sleeps there now.)
    [[gnu::noinline, gnu::cold]] void take_role(detail::participation& role, std::uint32_t id,
                                                detail::wait_channel& its_channel,
                                                detail::atomic<std::int32_t>& pid, const char* what) {
        if (!this->join_role(role, id, its_channel))
            throw role_error(errc::role_taken, this->describe(kind_name) + " already has a live " + what +
                                                   " (pid " + std::to_string(pid.load()) +
                                                   "); an SPSC queue takes one producer and one consumer");
        try {
            if (id == producer_role)
                resume_producing();
            else
                resume_consuming();
        } catch (...) {
            role.leave();
            throw;
        }
        pid.store(static_cast<std::int32_t>(::getpid()));
    }

    /// Picks up where the previous producer (if any) stopped. It is gone
    /// (the role lock says so), but it may have died between publishing an
    /// element and storing tail, or in the middle of a batch.
    void resume_producing() {
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        check_positions(head, tail);
        std::uint64_t next = tail;
        slot* at = slots_ + tail % capacity_;
        // Published but not counted in tail: count them. (The consumer may
        // already have taken some, so `next` may start behind `head`.)
        while (ahead_of(next, head) < static_cast<std::int64_t>(capacity_) &&
               at->sequence.load(std::memory_order_acquire) == next + 1)
            advance(next, at, 1);
        if (ahead_of(next, head) < 0) [[unlikely]]
            this->throw_corrupted(kind_name, "its consumer has taken " + std::to_string(head) +
                                                 " elements, but only " + std::to_string(next) +
                                                 " were published");
        // Sequences an unfinished batch wrote ahead of `next` would let the
        // consumer run into slots not yet written again: clear them.
        for (std::uint64_t ahead = 1; ahead < capacity_ - (next - head); ++ahead) {
            slot& s = *slot_at(at, ahead);
            if (s.sequence.load(std::memory_order_relaxed) == next + ahead + 1)
                s.sequence.store(0, std::memory_order_relaxed);
        }
        tail_ = next;
        tail_slot_ = at;
        room_end_ = head + capacity_;
        control_->tail.store(next, std::memory_order_release);
    }

    void resume_consuming() {
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        check_positions(head, tail);
        head_ = head;
        head_slot_ = slots_ + head % capacity_;
    }

    slot* slots_ = layout::elements(this->block_);
    slot* slots_end_ = slots_ + capacity_;
    // Producer side, meaningful while producer_ is active.
    detail::participation producer_;
    std::uint64_t tail_ = 0;        ///< position of the next push
    slot* tail_slot_ = slots_;      ///< its slot
    /// The position this producer may not reach before it reads the
    /// consumer's again: the head it last read + the capacity (never
    /// behind tail_), so that "full?" is one comparison.
    std::uint64_t room_end_ = 0;
    bool producer_lent_ = false;       ///< a write loan is open
    std::uint64_t lent_room_end_ = 0;  ///< room_end_, while a write loan holds it at tail_
    // Consumer side, meaningful while consumer_ is active.
    detail::participation consumer_;
    std::uint64_t head_ = 0;    ///< position of the next pop
    slot* head_slot_ = slots_;  ///< its slot
};

}  // namespace shmds
