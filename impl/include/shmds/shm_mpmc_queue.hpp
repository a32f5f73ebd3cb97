// shmds/shm_mpmc_queue.hpp: a bounded lock-free queue for any number of
// producers and consumers in any processes, found or created by name.
//
// Opening by name, the blocking calls and joining come from
// detail/blocking_handle.hpp; this header is the queue itself. (It is longer
// than the project's 450-line limit on purpose: claims, publication, the
// hints and the recovery of a dead participant's claim are one protocol,
// kept in one file so that it can be read, and checked, whole. The loans,
// about 200 lines, are claims held open across calls: they use the same
// claim functions and give up or publish through the same recovery path.)
//
// Design. A ring of `capacity` slots (small ones packed several to a cache
// line, large ones a line or more each: detail/mpmc_slots.hpp), each with a
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
// Loans. try_reserve_n claims positions as try_push does (WRITING, in the
// caller's name) and lends their slots; commit publishes each (FULL), and a
// claim dropped uncommitted is given up as a dead producer's is: its
// position is skipped, nobody waits for it. try_peek_n claims elements as
// try_pop does (READING) and lends them; ending the loan frees their slots.
// Claims are the whole protocol here, so a loan changes nothing in it: a
// process killed while it holds one is a claimer killed between claim and
// publication, recovered as such. A loan's positions need not be adjacent
// (others claim in between), so a loan holds at most max_lent of them.
//
// try_pop may report empty while a producer is between its claim and its
// publication (and try_push full while a consumer is mid-copy), and the
// count is an estimate while others run: hence size_estimate(), not size()
// (the SPSC queue's size() is exact).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "shmds/config.hpp"
#include "shmds/detail/blocking_handle.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/mpmc_slots.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"

namespace shmds {

template <class T>
class shm_mpmc_queue : public detail::blocking_handle<shm_mpmc_queue<T>, T, detail::mpmc_layout<T>> {
    using layout = detail::mpmc_layout<T>;
    using handle = detail::blocking_handle<shm_mpmc_queue<T>, T, layout>;
    friend handle;
    using word = std::uint64_t;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;

    /// The five ways to open a queue by name (blocking_handle.hpp); a
    /// capacity of at most 2^40. Opening takes no participant id: the first
    /// operation does.
    using handle::handle;

    /// Most slots (or elements) one loan holds.
    static constexpr std::size_t max_lent = 16;

    // try_push and try_pop, with push_one and pop_one, are the whole fast
    // path: inlined by request, so that the compiler's size heuristics
    // cannot put calls and spills into every push and pop (they did when
    // the blocking calls moved to blocking_handle.hpp: 202 instructions per
    // push and pop, against 138 inlined).

    /// Appends `value` unless the queue is full. Any participant; never
    /// blocks. The first operation of a handle (in a process) takes a
    /// participant id: role_error when 127 live handles already have one.
    [[nodiscard, gnu::always_inline]] bool try_push(const T& value) {
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

    // push(value) and try_push_for(value, timeout) wait for room as the
    // wait options say (blocking_handle.hpp). Any participant.

    /// Removes and returns the front element, or nullopt when none is ready.
    /// Any participant; never blocks.
    [[nodiscard, gnu::always_inline]] std::optional<T> try_pop() {
        std::uint64_t position = 0;
        std::optional<T> value = pop_one(position);
        if (value) after_pop(1, position);
        return value;
    }

    /// As try_pop(), into `out`: true, or false (leaving `out` alone) when
    /// none is ready. Any participant; never blocks. (The optional in
    /// between costs nothing once inlined.)
    [[nodiscard, gnu::always_inline]] bool try_pop(T& out) {
        return detail::assign_if_present(try_pop(), out);
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

    // pop() and try_pop_for(timeout) wait for an element as the wait
    // options say (blocking_handle.hpp). Any participant.

    // ---- loans: elements written and read where they lie in the segment ------------------------

private:
    /// A claimed slot: its word, its value and the position claimed.
    /// (Uninitialised until claimed: a loan's array of them is not cleared.)
    struct claim {
        detail::atomic<word>* state_word;
        T* value;
        std::uint64_t position;
    };
    /// The claims of one loan (its fields, shared by both kinds of loan).
    struct claims {
        shm_mpmc_queue* queue = nullptr;
        std::size_t size = 0;
        claim lent[max_lent];
        claims() noexcept = default;
        claims(claims&& other) noexcept : queue(other.queue), size(std::exchange(other.size, 0)) {
            std::copy_n(other.lent, size, lent);
        }
    };

public:
    /// Slots lent to a producer by try_reserve_n (or try_reserve, reserve,
    /// reserve_n and the timed forms), each claimed in this handle's name:
    /// write the elements in place, then commit(). A slot holds whatever it
    /// held before: write every byte that matters. A slot dropped
    /// uncommitted (by commit(k) beyond k, or by destroying the loan) is
    /// given up: its position is skipped, as a dead producer's is, and
    /// consumers never wait for it. Until then, consumers that reach its
    /// position wait for it (claims are taken in order; elements behind it
    /// wait too): keep a loan open briefly. Move-only; empty when nothing
    /// was lent. It must not outlive the queue handle that lent it, and the
    /// handle must not be moved while it is open. A producer killed while it
    /// holds a loan loses the lent elements and nothing else.
    class write_loan {
    public:
        write_loan() noexcept = default;
        write_loan(write_loan&&) noexcept = default;
        write_loan& operator=(write_loan&& other) noexcept {
            if (this != &other) {
                drop();
                std::destroy_at(&c_);
                std::construct_at(&c_, std::move(other.c_));
            }
            return *this;
        }
        /// Gives up every slot not committed.
        ~write_loan() { drop(); }

        /// Whether slots are lent (false: the queue was full, or committed).
        explicit operator bool() const noexcept { return c_.size != 0; }
        /// How many: 1 from try_reserve(), 1 to min(n, max_lent) from try_reserve_n(n).
        [[nodiscard]] std::size_t size() const noexcept { return c_.size; }
        /// The element in the `i`-th slot lent (i < size()), in the segment.
        [[nodiscard]] T& operator[](std::size_t i) const noexcept { return *c_.lent[i].value; }
        [[nodiscard]] T& operator*() const noexcept { return *c_.lent[0].value; }
        [[nodiscard]] T* operator->() const noexcept { return c_.lent[0].value; }

        /// Publishes the first `count` elements, each as try_push would, in
        /// order, and gives up the rest; the loan is empty afterwards. Never
        /// blocks. invalid_argument_error when count > size() (the loan stays
        /// open); role_error when this is a forked child's copy, or the
        /// handle left meanwhile (nothing published; the claims stay the
        /// parent's, and are recovered if their owner dies).
        [[gnu::always_inline]] void commit(std::size_t count) {
            if (count > c_.size) [[unlikely]]
                detail::throw_beyond_loan("commit", count, c_.size);
            if (c_.size == 0) return;
            const std::size_t n = std::exchange(c_.size, 0);
            c_.queue->publish_claims(c_.lent, n, count);
        }
        /// Publishes every element lent.
        [[gnu::always_inline]] void commit() {
            if (c_.size == 1) [[likely]] {  // (the common loan, without the loops)
                c_.size = 0;
                c_.queue->publish_claim(c_.lent[0]);
                return;
            }
            commit(c_.size);
        }

    private:
        friend shm_mpmc_queue;
        void drop() noexcept {
            if (c_.size != 0) c_.queue->give_up_claims(c_.lent, std::exchange(c_.size, 0));
        }
        claims c_;
    };

    /// Claims up to `n` free positions (n >= 1; at most max_lent) in order
    /// and lends their slots, or none when the queue is full. Any
    /// participant; never blocks. reserve_n(n) and try_reserve_n_for(n,
    /// timeout) wait for room (blocking_handle.hpp).
    [[nodiscard]] write_loan try_reserve_n(std::size_t n) {
        write_loan loan;
        loan.c_.queue = this;
        const std::size_t wanted = std::min(n, max_lent);
        try {
            while (loan.c_.size < wanted) {
                claim& c = loan.c_.lent[loan.c_.size];
                if (!claim_to_write(c)) break;
                ++loan.c_.size;
            }
        } catch (...) {
            if (loan.c_.size == 0) throw;  // else lend what was claimed: the next call meets the error
        }
        return loan;
    }
    /// Claims the next free position and lends its slot, or none when the
    /// queue is full. As try_reserve_n(1).
    [[nodiscard, gnu::always_inline]] write_loan try_reserve() {
        write_loan loan;
        loan.c_.queue = this;
        if (claim_to_write(loan.c_.lent[0])) loan.c_.size = 1;
        return loan;
    }

    /// Elements lent to a consumer by try_peek_n (or try_peek, peek, peek_n
    /// and the timed forms), each claimed in this handle's name and read in
    /// place. Ending the loan removes them: release(), or destroying it. (An
    /// MPMC queue cannot put an element back in front of those other
    /// consumers may have taken since: unlike the SPSC queue's read_loan,
    /// this one never leaves its elements in the queue.) Move-only; empty
    /// when nothing was lent. It must not outlive the queue handle that
    /// lent it, and the handle must not be moved while it is open. A
    /// consumer killed while it holds a loan loses the lent elements, as one
    /// killed mid-pop loses its element; nothing else.
    class read_loan {
    public:
        read_loan() noexcept = default;
        read_loan(read_loan&&) noexcept = default;
        read_loan& operator=(read_loan&& other) noexcept {
            if (this != &other) {
                drop();
                std::destroy_at(&c_);
                std::construct_at(&c_, std::move(other.c_));
            }
            return *this;
        }
        /// Removes the elements lent, as release() does.
        ~read_loan() { drop(); }

        /// Whether elements are lent (false: none was ready, or released).
        explicit operator bool() const noexcept { return c_.size != 0; }
        /// How many: 1 from try_peek(), 1 to min(n, max_lent) from try_peek_n(n).
        [[nodiscard]] std::size_t size() const noexcept { return c_.size; }
        /// The `i`-th element lent (i < size()), in the order claimed.
        [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return *c_.lent[i].value; }
        [[nodiscard]] const T& operator*() const noexcept { return *c_.lent[0].value; }
        [[nodiscard]] const T* operator->() const noexcept { return c_.lent[0].value; }

        /// Removes the elements lent, freeing their slots; the loan is empty
        /// afterwards. Never blocks. role_error when this is a forked
        /// child's copy, or the handle left meanwhile (nothing freed).
        [[gnu::always_inline]] void release() {
            if (c_.size == 1) [[likely]] {  // (the common loan, without the loops)
                c_.size = 0;
                c_.queue->free_claim(c_.lent[0]);
                return;
            }
            const std::size_t n = std::exchange(c_.size, 0);
            if (n != 0) c_.queue->free_claims(c_.lent, n);
        }

    private:
        friend shm_mpmc_queue;
        void drop() noexcept {
            const std::size_t n = std::exchange(c_.size, 0);
            if (n != 0 && c_.queue->me_.active()) c_.queue->free_claims(c_.lent, n);
        }
        claims c_;
    };

    /// Claims up to `n` ready elements (n >= 1; at most max_lent) in order
    /// and lends them, or none when none is ready. Any participant; never
    /// blocks. peek_n(n) and try_peek_n_for(n, timeout) wait for an element
    /// (blocking_handle.hpp).
    [[nodiscard]] read_loan try_peek_n(std::size_t n) {
        read_loan loan;
        loan.c_.queue = this;
        const std::size_t wanted = std::min(n, max_lent);
        try {
            while (loan.c_.size < wanted) {
                claim& c = loan.c_.lent[loan.c_.size];
                if (!claim_to_read(c)) break;
                ++loan.c_.size;
            }
        } catch (...) {
            if (loan.c_.size == 0) throw;  // else lend what was claimed: the next call meets the error
        }
        return loan;
    }
    /// Claims the next ready element and lends it, or none. As try_peek_n(1).
    [[nodiscard, gnu::always_inline]] read_loan try_peek() {
        read_loan loan;
        loan.c_.queue = this;
        if (claim_to_read(loan.c_.lent[0])) loan.c_.size = 1;
        return loan;
    }

    /// An estimate of the elements pushed and not yet popped: claims in
    /// progress count, and the two positions are read at different moments,
    /// so while others run it may be a count the queue never had. It also
    /// counts positions skipped (a dropped write loan, a dead producer's
    /// claim) until consumers walk past them. Exact when no other
    /// participant is between calls and nothing was skipped. Any
    /// participant; never blocks.
    [[nodiscard]] std::size_t size_estimate() const noexcept {
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        return tail > head ? static_cast<std::size_t>(std::min(tail - head, capacity_)) : 0;
    }
    /// The old name of size_estimate(), kept for one release.
    [[deprecated("shm_mpmc_queue's count is an estimate: call size_estimate()")]] [[nodiscard]] std::size_t size()
        const noexcept {
        return size_estimate();
    }
    // capacity(), empty(), full() and set_wait_options: blocking_handle.hpp.

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
    using handle::attachment_;
    using handle::block_;
    using handle::capacity_;
    using handle::control_;
    using handle::kind_name;
    using handle::serial_;

    // For the blocking calls (blocking_handle.hpp): the caller's bit in the
    // wait channels, and a look, before each sleep, at the claim that held
    // the last attempt up (its owner may have died).
    std::uint32_t sleeper_id() {
        ensure_participant();
        return me_.id();
    }
    void before_push_sleep() { check_stall_now(push_stall_); }
    void before_pop_sleep() { check_stall_now(pop_stall_); }

    /// The slot holding `position`: its word and its value. One division.
    struct slot_ref {
        detail::atomic<word>& state_word;
        T* value;
    };
    slot_ref slot_at(std::uint64_t position) const noexcept {
        const std::uint64_t index = position % capacity_;
        return {*layout::slot_word(block_, index), layout::slot_value(block_, index)};
    }

    /// Claims, fills and publishes one position; `claimed` says which.
    [[gnu::always_inline]] bool push_one(const T& value, std::uint64_t& claimed) {
        claim c;
        if (!claim_to_write(c)) return false;
        std::construct_at(c.value, value);
        c.state_word->store(detail::mpmc_word::make(c.position, detail::mpmc_word::full),
                            std::memory_order_release);
        claimed = c.position;
        return true;
    }

    /// Claims the next free position for writing (WRITING, in this
    /// participant's name); false when the queue is full.
    [[gnu::always_inline]] bool claim_to_write(claim& claimed) {
        ensure_participant();
        SHMDS_FAULT_POINT("mpmc.push.walk");
        push_stall_.pending = false;
        // In a local: the atomic operations below make the compiler reload
        // any member after them.
        detail::atomic<std::uint64_t>& tail = control_->tail;
        std::uint64_t position = tail.load(std::memory_order_relaxed);
        std::uint64_t walked = 0;  // positions this call moved the hint over
        // (No shortcut through the consumers' hint when it says full: only
        // the slot tells a full queue from one held up by a dead claim.)
        for (;;) {
            const slot_ref ref = slot_at(position);
            detail::atomic<word>& slot = ref.state_word;
            word w = slot.load(std::memory_order_acquire);
            if (detail::mpmc_word::holds(w, position, detail::mpmc_word::free)) {
                if (slot.compare_exchange_weak(
                        w, detail::mpmc_word::make(position, detail::mpmc_word::writing, me_.id()),
                        std::memory_order_acquire, std::memory_order_relaxed)) {
                    SHMDS_FAULT_POINT("mpmc.push.claimed");
                    move_hint_past(tail, position, "mpmc.push.hint_checked");
                    claimed = {&slot, ref.value, position};
                    return true;
                }
                continue;
            }
            const std::int64_t ahead = detail::mpmc_word::distance(w, position);
            if (ahead >= 0) {
                // Position taken (claimed, or already done): move the hint on.
                skip_taken(tail, position, ahead, walked);
                continue;
            }
            // The slot still holds the previous lap: full, unless whoever
            // holds it died.
            if (recover_if_owner_dead(push_stall_, slot, w, position + static_cast<std::uint64_t>(ahead)))
                continue;
            const std::uint64_t now_tail = tail.load(std::memory_order_relaxed);
            if (now_tail != position) {
                position = now_tail;
                continue;
            }
            return false;
        }
    }

    /// Claims, copies out and frees one position; `claimed` says which.
    [[gnu::always_inline]] std::optional<T> pop_one(std::uint64_t& claimed) {
        claim c;
        if (!claim_to_read(c)) return std::nullopt;
        std::optional<T> value(*c.value);
        c.state_word->store(detail::mpmc_word::make(c.position + capacity_, detail::mpmc_word::free),
                            std::memory_order_release);
        claimed = c.position;
        return value;
    }

    /// Claims the next ready element for reading (READING, in this
    /// participant's name); false when none is ready.
    [[gnu::always_inline]] bool claim_to_read(claim& claimed) {
        ensure_participant();
        SHMDS_FAULT_POINT("mpmc.pop.walk");
        pop_stall_.pending = false;
        detail::atomic<std::uint64_t>& head = control_->head;  // (in a local: see push_one)
        std::uint64_t position = head.load(std::memory_order_relaxed);
        std::uint64_t walked = 0;  // positions this call moved the hint over
        for (;;) {
            const slot_ref ref = slot_at(position);
            detail::atomic<word>& slot = ref.state_word;
            word w = slot.load(std::memory_order_acquire);
            if (detail::mpmc_word::holds(w, position, detail::mpmc_word::full)) {
                if (slot.compare_exchange_weak(
                        w, detail::mpmc_word::make(position, detail::mpmc_word::reading, me_.id()),
                        std::memory_order_acquire, std::memory_order_relaxed)) {
                    SHMDS_FAULT_POINT("mpmc.pop.claimed");
                    move_hint_past(head, position, "mpmc.pop.hint_checked");
                    claimed = {&slot, ref.value, position};
                    return true;
                }
                continue;
            }
            if (!detail::mpmc_word::holds(w, position, detail::mpmc_word::free)) {  // (empty: the usual miss)
                const std::int64_t ahead = detail::mpmc_word::distance(w, position);
                const auto state = detail::mpmc_word::state_of(w);
                if (ahead > 0 || (ahead == 0 && state == detail::mpmc_word::reading)) {
                    // Position taken by another consumer, or long done.
                    skip_taken(head, position, ahead, walked);
                    continue;
                }
                if (ahead == 0 && state == detail::mpmc_word::writing) {
                    if (recover_if_owner_dead(pop_stall_, slot, w, position)) continue;
                    return false;  // its producer is still writing it
                }
                if (ahead < 0 &&
                    recover_if_owner_dead(pop_stall_, slot, w, position + static_cast<std::uint64_t>(ahead)))
                    continue;
            }
            // FREE(position): nothing pushed yet; or the previous lap is
            // still being read.
            const std::uint64_t now_head = head.load(std::memory_order_relaxed);
            if (now_head != position) {
                position = now_head;
                continue;
            }
            return false;
        }
    }

    /// Moves a hint on past `position`, taken: its slot is `ahead`
    /// positions ahead of it. Does so if nobody moved the hint yet; leaves `position` at the hint's
    /// current value (to look there next). Usually one step. How far ahead
    /// of unfinished positions can a slot be? A position is claimed only
    /// once its slot's previous lap is finished, so every claim lies within
    /// a lap of the oldest unfinished position o; a claim given up (a
    /// dropped write loan, a dead producer's) frees its slot for the lap
    /// after its own, so no slot ever shows a position of o + 2 laps or more.
    /// A slot showing q >= position + 2 laps therefore proves every position
    /// before q - 2 laps + 1 finished: the hint jumps there. (One lap is not
    /// enough: a slot given up twice while an element before it waits is
    /// two laps ahead of that element, which a one-lap jump would skip.) A
    /// hint left far behind (a participant stopped for a long time, or
    /// garbage written by another process) then costs at most two laps of
    /// steps, not one step per position it is behind (up to 2^47).
    /// `walked` adds up the steps of one push or pop: an honest walk covers
    /// a hint's lag (under 2^47, or it would read as ahead) and what others
    /// claim meanwhile, never the whole 2^48 of the slots' positions; slot
    /// words written over can send it round and round (each jump looking
    /// ahead, modulo 2^48), which is a corrupted_error, not a hang.
    void skip_taken(detail::atomic<std::uint64_t>& hint, std::uint64_t& position, std::int64_t ahead,
                    std::uint64_t& walked) const {
        const auto lap = static_cast<std::int64_t>(capacity_);
        const std::uint64_t step = ahead >= 2 * lap ? static_cast<std::uint64_t>(ahead - 2 * lap + 1) : 1;
        if (!hint.compare_exchange_strong(position, position + step, std::memory_order_relaxed)) return;
        position += step;
        walked += step;
        if (walked > detail::mpmc_word::position_mask) [[unlikely]]
            this->throw_corrupted(kind_name,
                                  "its slots' positions send a walk round the whole position "
                                  "space (slot words were written over)");
    }

    /// Moves a hint past the position we just claimed, if nobody has yet.
    /// A load and a plain store, not a locked compare-and-swap (which cost
    /// every push and pop about 20 cycles): between the two, another
    /// participant can only have claimed `position + 1` and moved the hint
    /// to `position + 2`, and a hint set back by one costs the next claimer
    /// one look at a taken slot, nothing else.
    /// (`fault_point` names the moment between the two for the fault tests.)
    static void move_hint_past(detail::atomic<std::uint64_t>& hint, std::uint64_t position,
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
        detail::atomic<word>* slot = nullptr;
        std::uint64_t position = 0;
        std::chrono::steady_clock::time_point since{};
        bool pending = false;  ///< the last attempt failed because of it
    };

    /// `w` (a claim on the slot of `slot_position`) has held us up. When its
    /// owner is dead, frees the slot for the next lap (the owner's element is
    /// lost) and returns true. A live owner is the common case, so liveness
    /// (a system call) is checked at most once a millisecond per claim here;
    /// a waiter about to sleep checks at once (check_stall_now).
    bool recover_if_owner_dead(stall& tracker, detail::atomic<word>& slot, word w,
                               std::uint64_t slot_position) {
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
    bool release_dead_claim(detail::atomic<word>& slot, word w, std::uint64_t slot_position) {
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

    // ---- loans' ends (the loans call these) ----

    /// The loan's claims are this handle's own, in this process (not a
    /// forked child's copy, not a handle that left since).
    [[gnu::always_inline]] void check_claims_are_mine(const char* what) const {
        if (!me_.active()) [[unlikely]]
            claims_not_mine(what);
    }
    [[noreturn, gnu::noinline, gnu::cold]] void claims_not_mine(const char* what) const {
        throw role_error(errc::role_taken, this->describe(kind_name) + ": " + what +
                                               " of a loan whose claims this handle no longer holds (it "
                                               "left, or this is a forked child's copy); nothing done");
    }
    /// Publishes the first `count` of `n` claimed slots (written by now) and
    /// gives up the others.
    [[gnu::always_inline]] void publish_claims(const claim* lent, std::size_t n, std::size_t count) {
        check_claims_are_mine("commit()");
        for (std::size_t i = 0; i < count; ++i)
            lent[i].state_word->store(detail::mpmc_word::make(lent[i].position, detail::mpmc_word::full),
                                      std::memory_order_release);
        if (count != 0) after_push(count, lent[count - 1].position);
        if (count != n) [[unlikely]]
            give_up_claims(lent + count, n - count);
    }
    /// publish_claims of one claim.
    [[gnu::always_inline]] void publish_claim(const claim& lent) {
        check_claims_are_mine("commit()");
        lent.state_word->store(detail::mpmc_word::make(lent.position, detail::mpmc_word::full),
                               std::memory_order_release);
        after_push(1, lent.position);
    }
    /// free_claims of one claim.
    [[gnu::always_inline]] void free_claim(const claim& lent) {
        check_claims_are_mine("release()");
        lent.state_word->store(detail::mpmc_word::make(lent.position + capacity_, detail::mpmc_word::free),
                               std::memory_order_release);
        after_pop(1, lent.position);
    }
    /// Gives up claimed slots unpublished: skipped, as a dead producer's.
    /// (Nothing, in a forked child: the claims are the parent's.)
    void give_up_claims(const claim* lent, std::size_t n) noexcept {
        if (!me_.active()) return;
        for (std::size_t i = 0; i < n; ++i)
            release_dead_claim(
                *lent[i].state_word,
                detail::mpmc_word::make(lent[i].position, detail::mpmc_word::writing, me_.id()),
                lent[i].position);
    }
    /// Frees the slots of `n` claimed elements (read by now).
    [[gnu::always_inline]] void free_claims(const claim* lent, std::size_t n) {
        check_claims_are_mine("release()");
        for (std::size_t i = 0; i < n; ++i)
            lent[i].state_word->store(
                detail::mpmc_word::make(lent[i].position + capacity_, detail::mpmc_word::free),
                std::memory_order_release);
        after_pop(n, lent[n - 1].position);
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
        this->join_any_participant(me_);
        // Our id's previous holder, if any, died: clear the claims it left.
        if (control_->in_use[me_.id()].exchange(1, std::memory_order_acq_rel) == 0) return;  // left cleanly
        for (std::uint64_t i = 0; i < capacity_; ++i) {
            detail::atomic<word>& slot = *layout::slot_word(block_, i);
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

    detail::participation me_;
    stall push_stall_;
    stall pop_stall_;
};

}  // namespace shmds
