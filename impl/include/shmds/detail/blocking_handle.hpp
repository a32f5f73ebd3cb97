// shmds/detail/blocking_handle.hpp: the half of a process-safe structure's
// handle that does not depend on how the structure works: the five ways to
// open it by name, the mapping it keeps, its control block checked against
// its table entry, the blocking calls built on its non-blocking ones, and
// joining as a participant.
//
// Owns: the handle's attachment (so the mapping outlives the posix_shm the
// handle was opened through), the opened block, the wait options. Does not
// own the structure's participation objects: an SPSC queue holds two fixed
// roles, the others one id from a pool, so each structure keeps its own and
// joins through join_any_participant or join_role here.
//
// Derived (CRTP, so that push() inlines Derived::try_push with no indirect
// call) supplies, all callable from here (declare blocking_handle a friend):
//   try_push(const T&) -> bool, try_pop() -> std::optional<T>,
//   try_pop(T&) -> bool                                         never block;
//   try_reserve(), try_reserve_n(n), try_peek(), try_peek_n(n)
//                                 -> loans that convert to bool
//                                    (true: something lent)     never block
//                                    (only if Derived lends: the waiting
//                                    loan calls here exist only then);
//   size() const, or size_estimate() const where the count is only an
//                                    estimate (MPMC)            a snapshot;
//   sleeper_id() -> std::uint32_t    its bit in the wait channels, joining
//                                    first if it must;
// and may hide before_push_sleep() / before_pop_sleep(), run just before
// each sleep (the MPMC queue checks there whether a dead claim holds it up).
// Layout supplies kind, control_type (with not_empty, not_full and capacity
// fields), control(block), and may supply damage(control_type&, capacity):
// why a control block that records the right capacity still cannot be used
// ("" when it can), checked once at open.
//
// Must never: touch elements or positions (those are the structure's), or
// put anything between a blocking call and its first try_ attempt (the fast
// path of push and pop is exactly one try_push or try_pop).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shmds/detail/attachment.hpp"
#include "shmds/detail/durations.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"
#include "shmds/element.hpp"
#include "shmds/element_count.hpp"
#include "shmds/posix_shm.hpp"
#include "shmds/wait.hpp"

namespace shmds::detail {

/// A loan's commit(count) or release(count) beyond what it holds.
[[noreturn, gnu::noinline, gnu::cold]] inline void throw_beyond_loan(const char* call, std::size_t count,
                                                                     std::size_t lent) {
    throw invalid_argument_error(errc::invalid_argument, std::string(call) + "(" + std::to_string(count) +
                                                             ") of a loan of " + std::to_string(lent) +
                                                             (lent == 0 ? " (an empty or ended loan)" : ""));
}

template <class Derived, class T, class Layout>
class blocking_handle : public structure_identity {
    static_assert(check_element<T>());
    using control_type = typename Layout::control_type;

public:
    using value_type = T;

    /// Finds the structure `name` in `segment`, or creates it empty with
    /// room for `capacity` elements. Throws mismatch_error if it exists as
    /// another kind, element type or capacity; invalid_argument_error for a
    /// bad name or capacity; out_of_space_error when the table or segment is
    /// full; corrupted_error when its control block is damaged. Takes no
    /// participant id or role yet.
    blocking_handle(posix_shm& segment, std::string_view name, std::size_t capacity, wait_options wait = {})
        : blocking_handle(segment, name, open_mode::open_or_create, capacity, wait) {}
    /// Opens the existing structure `name`; throws not_found_error if absent.
    blocking_handle(posix_shm& segment, std::string_view name)
        : blocking_handle(segment, name, open_mode::open_only, 0, {}) {}
    /// Creates `name`; throws already_exists_error if it exists.
    blocking_handle(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                    wait_options wait = {})
        : blocking_handle(segment, name, open_mode::create_only, capacity, wait) {}
    blocking_handle(open_only_t, posix_shm& segment, std::string_view name, wait_options wait = {})
        : blocking_handle(segment, name, open_mode::open_only, 0, wait) {}
    blocking_handle(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                    wait_options wait = {})
        : blocking_handle(segment, name, open_mode::open_or_create, capacity, wait) {}

    /// Appends `value`, waiting for room as the wait options say. Who may
    /// call it: as try_push.
    void push(const T& value) {
        if (!derived().try_push(value)) [[unlikely]]
            push_slowly(value, forever);
    }

    /// Appends `value`, waiting at most `timeout` for room; false when the
    /// time ran out. A zero or negative timeout is exactly try_push.
    template <class Rep, class Period>
    [[nodiscard]] bool try_push_for(const T& value, std::chrono::duration<Rep, Period> timeout) {
        return derived().try_push(value) || (!is_poll(timeout) && push_slowly(value, bounded(timeout)));
    }

    /// Removes and returns an element, waiting for one as the wait options
    /// say. Who may call it: as try_pop.
    T pop() {
        if (auto value = derived().try_pop()) [[likely]]
            return *value;
        return *pop_slowly(forever);
    }

    /// Removes and returns an element, waiting at most `timeout`; nullopt
    /// when the time ran out. A zero or negative timeout is exactly try_pop.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<T> try_pop_for(std::chrono::duration<Rep, Period> timeout) {
        if (auto value = derived().try_pop()) [[likely]]
            return value;
        if (is_poll(timeout)) return std::nullopt;
        return pop_slowly(bounded(timeout));
    }

    /// As try_pop_for(timeout), into `out`: true, or false (leaving `out`
    /// alone) when the time ran out. The fast path builds no optional.
    template <class Rep, class Period>
    [[nodiscard]] bool try_pop_for(T& out, std::chrono::duration<Rep, Period> timeout) {
        if (derived().try_pop(out)) [[likely]]
            return true;
        if (is_poll(timeout)) return false;
        return assign_if_present(pop_slowly(bounded(timeout)), out);
    }

    /// Lends up to `n` free slots (at least one), waiting for room as the
    /// wait options say (see the structure's write_loan). Who may call it:
    /// as try_reserve_n. reserve() lends one.
    auto reserve_n(std::size_t n) {
        auto loan = derived().try_reserve_n(n);
        if (!loan) [[unlikely]]
            loan = wait_for_loan(
                control_->not_full, forever, [&] { return derived().try_reserve_n(n); },
                [&] { derived().before_push_sleep(); });
        return loan;
    }
    auto reserve() {
        auto loan = derived().try_reserve();
        if (!loan) [[unlikely]]
            loan = wait_for_loan(
                control_->not_full, forever, [&] { return derived().try_reserve(); },
                [&] { derived().before_push_sleep(); });
        return loan;
    }
    /// As reserve_n, waiting at most `timeout`: an empty loan when the time
    /// ran out. A zero or negative timeout is exactly try_reserve_n.
    template <class Rep, class Period>
    [[nodiscard]] auto try_reserve_n_for(std::size_t n, std::chrono::duration<Rep, Period> timeout) {
        auto loan = derived().try_reserve_n(n);
        if (!loan && !is_poll(timeout))
            loan = wait_for_loan(
                control_->not_full, bounded(timeout), [&] { return derived().try_reserve_n(n); },
                [&] { derived().before_push_sleep(); });
        return loan;
    }
    template <class Rep, class Period>
    [[nodiscard]] auto try_reserve_for(std::chrono::duration<Rep, Period> timeout) {
        auto loan = derived().try_reserve();
        if (!loan && !is_poll(timeout))
            loan = wait_for_loan(
                control_->not_full, bounded(timeout), [&] { return derived().try_reserve(); },
                [&] { derived().before_push_sleep(); });
        return loan;
    }

    /// Lends up to `n` elements at the front (at least one) to read in
    /// place, waiting for one as the wait options say (see the structure's
    /// read_loan). Who may call it: as try_peek_n. peek() lends one.
    auto peek_n(std::size_t n) {
        auto loan = derived().try_peek_n(n);
        if (!loan) [[unlikely]]
            loan = wait_for_loan(
                control_->not_empty, forever, [&] { return derived().try_peek_n(n); },
                [&] { derived().before_pop_sleep(); });
        return loan;
    }
    auto peek() {
        auto loan = derived().try_peek();
        if (!loan) [[unlikely]]
            loan = wait_for_loan(
                control_->not_empty, forever, [&] { return derived().try_peek(); },
                [&] { derived().before_pop_sleep(); });
        return loan;
    }
    /// As peek_n, waiting at most `timeout`: an empty loan when the time
    /// ran out. A zero or negative timeout is exactly try_peek_n.
    template <class Rep, class Period>
    [[nodiscard]] auto try_peek_n_for(std::size_t n, std::chrono::duration<Rep, Period> timeout) {
        auto loan = derived().try_peek_n(n);
        if (!loan && !is_poll(timeout))
            loan = wait_for_loan(
                control_->not_empty, bounded(timeout), [&] { return derived().try_peek_n(n); },
                [&] { derived().before_pop_sleep(); });
        return loan;
    }
    template <class Rep, class Period>
    [[nodiscard]] auto try_peek_for(std::chrono::duration<Rep, Period> timeout) {
        auto loan = derived().try_peek();
        if (!loan && !is_poll(timeout))
            loan = wait_for_loan(
                control_->not_empty, bounded(timeout), [&] { return derived().try_peek(); },
                [&] { derived().before_pop_sleep(); });
        return loan;
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    /// Snapshots, as size() is (estimates, as size_estimate() is).
    [[nodiscard]] bool empty() const { return count_now() == 0; }
    [[nodiscard]] bool full() const { return count_now() == capacity_; }

    /// How this handle's blocking calls wait from now on. This handle only.
    void set_wait_options(const wait_options& wait) noexcept { wait_ = wait; }

protected:
    blocking_handle(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity,
                    wait_options wait)
        : blocking_handle(segment, name, wait,
                          segment.table().open<Layout>(name, mode, capacity, fingerprint_of<T>())) {}

    blocking_handle(posix_shm& segment, std::string_view name, wait_options wait, const opened_block& block)
        : structure_identity(segment.name(), name, block.created),
          attachment_(segment.shared_attachment()),
          serial_(block.serial),
          block_(block.block),
          control_(Layout::control(block.block)),
          capacity_(block.capacity),
          wait_(wait) {
        check_recorded_capacity(kind_name, read_once(control_->capacity), capacity_);
        if constexpr (requires { Layout::damage(*control_, capacity_); }) {
            const std::string damage = Layout::damage(*control_, capacity_);
            if (!damage.empty()) throw_corrupted(kind_name, damage);
        }
    }

    blocking_handle(blocking_handle&&) noexcept = default;
    ~blocking_handle() = default;

    static constexpr std::string_view kind_name = to_string(Layout::kind);

    /// Takes the lowest free participant id for `me`; throws role_error when
    /// every id has a live holder. Clears the sleeper bits a dead previous
    /// holder of the id left in both wait channels.
    void join_any_participant(participation& me) {
        if (!me.join_any(attachment_->fd, serial_, max_participants, describe(kind_name)))
            throw role_error(errc::too_many_participants, describe(kind_name) + " already has " +
                                                              std::to_string(max_participants) +
                                                              " live participants");
        control_->not_empty.retract(me.id());
        control_->not_full.retract(me.id());
        prepare_wakers();
    }

    /// Takes role `id` for `role`; false when another live handle holds it.
    /// The role sleeps alone on `its_channel` under bit 0: a dead previous
    /// holder's bit there is cleared.
    bool join_role(participation& role, std::uint32_t id, wait_channel& its_channel) {
        if (!role.join_as(attachment_->fd, serial_, id, describe(kind_name))) return false;
        its_channel.retract(0);
        prepare_wakers();
        return true;
    }

    /// A joiner wakes on both channels from its first publication on: in a
    /// process that cannot use membarrier, that means fencing (waiting.hpp).
    void prepare_wakers() noexcept {
        prepare_waker(control_->not_empty);
        prepare_waker(control_->not_full);
    }

    // Hooks Derived may hide (see the top of this file).
    void before_push_sleep() noexcept {}
    void before_pop_sleep() noexcept {}

    attachment_ref attachment_;  ///< keeps the mapping while this handle lives
    std::uint64_t serial_;       ///< the structure's table serial: names its participant locks
    std::byte* block_;
    control_type* control_;
    std::uint64_t capacity_;
    wait_options wait_;

private:
    Derived& derived() noexcept { return static_cast<Derived&>(*this); }
    const Derived& derived() const noexcept { return static_cast<const Derived&>(*this); }
    std::size_t count_now() const { return element_count(derived()); }

    // The waiting paths, kept out of line so that push, pop and the timed
    // calls stay small enough to inline into the caller's loop: an
    // out-of-line call per element cost the SPSC fast path half its
    // throughput here.
    [[gnu::noinline]] bool push_slowly(const T& value, std::chrono::nanoseconds timeout) {
        Derived& self = derived();
        return wait_for(
            control_->not_full, self.sleeper_id(), wait_, timeout, [&] { return self.try_push(value); },
            [&] { self.before_push_sleep(); });
    }
    /// Waits on `channel` until `attempt` lends something, at most `timeout`;
    /// returns the last attempt's loan (empty when the time ran out).
    template <class Attempt, class BeforeSleep>
    [[gnu::noinline]] auto wait_for_loan(wait_channel& channel, std::chrono::nanoseconds timeout,
                                         Attempt&& attempt, BeforeSleep&& before_sleep) {
        decltype(attempt()) loan;
        wait_for(
            channel, derived().sleeper_id(), wait_, timeout,
            [&] {
                loan = attempt();
                return static_cast<bool>(loan);
            },
            before_sleep);
        return loan;
    }
    [[gnu::noinline]] std::optional<T> pop_slowly(std::chrono::nanoseconds timeout) {
        Derived& self = derived();
        return wait_to_pop(
            control_->not_empty, self.sleeper_id(), wait_, timeout, [&] { return self.try_pop(); },
            [&] { self.before_pop_sleep(); });
    }
};

}  // namespace shmds::detail
