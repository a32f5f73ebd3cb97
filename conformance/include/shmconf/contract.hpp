// shmconf/contract.hpp: the adapter contract of the conformance suite,
// version 2 (version 1 required exists and attach_count; version 2 adapters
// are version 1 adapters that may leave them out, and it says what
// damage_segment must hit). An implementation under test is one adapter type satisfying
// `shmconf::implementation`; the abstract tests use nothing else, so no
// implementation's name appears in them.
//
// An adapter provides:
//   static std::string name();
//   static constexpr shmconf::capabilities caps;       what it claims
//   static error_category categorize(std::exception_ptr);  its errors, by category
//   using segment = ...;                                a handle, movable
//     static segment create(name, bytes)   create-only
//     static segment open(name)            open-only
//     static segment open_or_create(name, bytes)
//     static bool remove(name);
//     optional: static bool exists(name)  (reports_existence; without it the
//       suite asks by opening the name), static std::size_t
//       attach_count(segment&)  (counts_attachments; without it the counting
//       requirements report UNSUPPORTED)
//   template <class T> using array = ...;   (and queue, spsc_queue,
//     mpmc_queue, stack, concurrent_stack: those it claims)
//     static S make<S>(segment&, name, capacity)   find or create, S one of those
//     static S find<S>(segment&, name)             open only
//     static void destroy(segment&, name)
//   Structure handles: try_push(const T&) -> bool, try_pop() -> std::optional<T>,
//   size(), capacity(); arrays: size(), at(i) (checked), operator[] (not).
//   Optional: try_push_for(v, ms) and try_pop_for(ms) (blocking_handle),
//   try_push_n and try_pop_n (batch_handle), try_reserve and try_peek
//   (loan_handle), message queues (has_message_queues), the
//   adapter's damage_segment (damages_segments) and stall_at (stalls_at_points).
// Every failure is an exception; `categorize` maps it to a category, and the
// tests compare categories, never message text.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shmconf {

inline constexpr int contract_version = 2;

/// What went wrong, independently of how an implementation says it
/// (requirement IDs in conformance/spec/requirements.md name these).
enum class error_category {
    none,               ///< not an error the contract knows (a test fails on it)
    invalid_name,       ///< NAME-001, NAME-002
    invalid_size,       ///< SEG-008, ELEM-002
    not_found,          ///< SEG-003, find of an absent structure
    already_exists,     ///< SEG-002
    mismatch,           ///< TBL-004, SEG-009
    out_of_space,       ///< SEG-007, TBL-006
    corrupted,          ///< BAD-001..003
    timeout,            ///< SEG-005, CRASH-002
    role_taken,         ///< Q-007
    out_of_range,       ///< ARR-002
    permission_denied,  ///< PERM-001, PERM-002
    other,              ///< anything else the implementation reports
};

inline const char* to_string(error_category c) {
    switch (c) {
        case error_category::none:
            return "none";
        case error_category::invalid_name:
            return "invalid_name";
        case error_category::invalid_size:
            return "invalid_size";
        case error_category::not_found:
            return "not_found";
        case error_category::already_exists:
            return "already_exists";
        case error_category::mismatch:
            return "mismatch";
        case error_category::out_of_space:
            return "out_of_space";
        case error_category::corrupted:
            return "corrupted";
        case error_category::timeout:
            return "timeout";
        case error_category::role_taken:
            return "role_taken";
        case error_category::out_of_range:
            return "out_of_range";
        case error_category::permission_denied:
            return "permission_denied";
        case error_category::other:
            return "other";
    }
    return "?";
}

/// What an implementation claims. Tests of an unclaimed capability report
/// UNSUPPORTED, never FAIL.
struct capabilities {
    bool array = false;
    bool queue = false;  ///< not process-safe: one process at a time
    bool spsc_queue = false;
    bool mpmc_queue = false;
    bool stack = false;  ///< not process-safe
    bool concurrent_stack = false;
    bool cleans_up_after_crashed_attachers = false;  ///< REF-004, REF-005
    bool locks_survive_owner_death = false;          ///< CRASH-002
    bool checks_element_types = false;               ///< TBL-004 (type part)
    bool reserves_memory_at_creation = false;        ///< SEG-007
    bool checks_spsc_roles = false;                  ///< Q-007
    bool message_queue = false;                      ///< MSG-001..006 (has_message_queues)
};

/// The parts of the contract every implementation has: segments and errors.
template <class A>
concept implementation = requires(const std::string& name, std::size_t bytes, typename A::segment& seg,
                                  std::exception_ptr e) {
    { A::name() } -> std::convertible_to<std::string>;
    { A::caps } -> std::convertible_to<capabilities>;
    { A::categorize(e) } -> std::same_as<error_category>;
    { A::create(name, bytes) } -> std::same_as<typename A::segment>;
    { A::open(name) } -> std::same_as<typename A::segment>;
    { A::open_or_create(name, bytes) } -> std::same_as<typename A::segment>;
    { A::remove(name) } -> std::same_as<bool>;
    A::destroy(seg, name);
};

/// Optional: whether a segment name exists, without attaching to it. The
/// tests of cleanup (REF-002..006, SEG-007) ask it whether a name is gone.
/// Without it they ask by open-only instead: `not_found` means gone, any
/// other outcome (a handle, or an error such as `corrupted`) means there.
/// That attaches for a moment, which an implementation may notice (its count
/// moves, a stale segment may be replaced), so provide `exists` if the
/// implementation has a way to tell without attaching.
template <class A>
concept reports_existence = requires(const std::string& name) {
    { A::exists(name) } -> std::same_as<bool>;
};

/// Optional: how many handles, across processes, are attached to the
/// segment (REF-001, and the counting halves of REF-004 and REF-006).
/// Without it those report UNSUPPORTED; cleanup is still checked.
template <class A>
concept counts_attachments = requires(typename A::segment& seg) {
    { A::attach_count(seg) } -> std::convertible_to<std::size_t>;
};

/// A FIFO or LIFO structure handle of elements T.
template <class S, class T>
concept container_handle = requires(S& s, const T& v) {
    { s.try_push(v) } -> std::same_as<bool>;
    { s.try_pop() } -> std::same_as<std::optional<T>>;
    { s.size() } -> std::convertible_to<std::size_t>;
    { s.capacity() } -> std::convertible_to<std::size_t>;
};

/// Optional blocking forms of a FIFO or LIFO handle: wait at most
/// `timeout` for room or for an element, woken by any process. Handles
/// without them leave Q-008 UNSUPPORTED.
template <class S, class T>
concept blocking_handle = requires(S& s, const T& v, std::chrono::milliseconds timeout) {
    { s.try_push_for(v, timeout) } -> std::same_as<bool>;
    { s.try_pop_for(timeout) } -> std::same_as<std::optional<T>>;
};

/// Optional batch forms of a queue handle: `try_push_n(values, n)`
/// stores the longest prefix of the n values that fits (none when full), in
/// order, and returns how many it stored; `try_pop_n(out, n)` moves up to n
/// of the oldest elements into out, oldest first, and returns how many.
/// Neither blocks. Handles without them leave Q-009 UNSUPPORTED.
template <class S, class T>
concept batch_handle = requires(S& s, const T* values, T* out, std::size_t n) {
    { s.try_push_n(values, n) } -> std::convertible_to<std::size_t>;
    { s.try_pop_n(out, n) } -> std::convertible_to<std::size_t>;
};

/// Optional loans of a queue handle (LOAN-001..004): `try_reserve()` lends
/// the next free slot (a loan that converts to false when the queue is
/// full): `*loan` is the element in place, `loan.commit()` publishes it,
/// and a loan destroyed uncommitted publishes nothing. `try_peek()` lends
/// the oldest element (false when empty): `*loan` reads it in place,
/// `loan.release()` removes it. What a read loan destroyed unreleased
/// leaves is the implementation's (LOAN-005). Neither call blocks. Handles
/// without them leave LOAN-* UNSUPPORTED.
template <class S, class T>
concept loan_handle = requires(S& s, const T& v) {
    {static_cast<bool>(s.try_reserve())};
    *s.try_reserve() = v;
    s.try_reserve().commit();
    {static_cast<bool>(s.try_peek())};
    { *s.try_peek() } -> std::convertible_to<const T&>;
    s.try_peek().release();
};

/// A queue of byte messages of varying length (MSG-001..006), one sender
/// and one receiver at a time: `try_send(bytes)` copies a message in (false
/// when it does not fit now; an error of category invalid_size when it is
/// longer than the largest the queue takes), `try_receive()` takes the oldest
/// whole (nullopt when empty), `max_message_size()` is the largest it takes.
/// Neither call blocks.
template <class S>
concept message_handle = requires(S& s, std::span<const std::byte> message) {
    { s.try_send(message) } -> std::same_as<bool>;
    { s.try_receive() } -> std::same_as<std::optional<std::vector<std::byte>>>;
    { s.max_message_size() } -> std::convertible_to<std::size_t>;
};

/// Optional message queues: an adapter that claims `message_queue` provides
///   using message_queue = ...;   a message_handle
///   static message_queue make_message_queue(segment&, name, capacity, largest)
///       find or create: a queue of `capacity` bytes (the implementation's
///       unit of room; the suite asks for at least 4 x (largest + 64)) for
///       messages of 0 to `largest` bytes
///   static message_queue find_message_queue(segment&, name)   open only
/// Without them, MSG-* report UNSUPPORTED.
template <class A>
concept has_message_queues = requires(typename A::segment& seg, const std::string& name, std::size_t n) {
    { A::make_message_queue(seg, name, n, n) } -> message_handle;
    { A::find_message_queue(seg, name) } -> message_handle;
};

/// An array handle of elements T.
template <class S, class T>
concept array_handle = requires(S& s, std::size_t i) {
    { s.size() } -> std::convertible_to<std::size_t>;
    { s.at(i) } -> std::convertible_to<T&>;
    { s[i] } -> std::convertible_to<T&>;
};

/// What an optional hostile-writer hook damages (BAD-002, BAD-003). Where a
/// segment keeps its format version, table entries and control blocks is the
/// implementation's business, so only its adapter can aim there. Each value
/// says what the hook must make wrong: values an implementation that
/// validates what it reads must refuse, not a byte it never looks at. The
/// tests check that the hook changed some byte of the segment (a hook that
/// writes nothing leaves the requirement UNRESOLVED), but they cannot tell a
/// hit from a byte the implementation ignores: aiming is the adapter's duty.
enum class damage {
    /// the segment header's format version: set to another version
    format_version,
    /// the structure's entry in the name table: its offset or size such that
    /// the structure would reach past the end of the segment (or overlap the
    /// table); finding it must then fail with `corrupted` (BAD-002)
    table_entry,
    /// the structure's own header: its positions (head, tail, count) or its
    /// capacity out of the range its storage allows (a count above capacity,
    /// a head more than a capacity ahead of the tail). An implementation whose
    /// positions are only hints, corrected from the slots, may go on working:
    /// the test accepts that when it never returns more elements than were
    /// stored nor takes more than the capacity. No control block (an array):
    /// throw std::invalid_argument.
    control_block,
};

/// An adapter that can play a hostile writer provides
///   static void damage_segment(const std::string& segment, const std::string& structure, damage what);
/// which writes into the existing segment (through a mapping of its own, as
/// another process would) so that `what` is wrong. Without it, the tests of
/// BAD-002 and BAD-003 report UNSUPPORTED.
template <class A>
concept damages_segments = requires(const std::string& segment, const std::string& structure, damage what) {
    A::damage_segment(segment, structure, what);
};

/// An adapter that can damage what an implementation keeps about its name
/// table besides the entries themselves (free-space records, an allocation
/// mark, counts, a lookup index: anything derived from the entries) provides
///   static bool damage_table_bookkeeping(const std::string& segment, int variant);
/// For variant 0, 1, 2, ... it makes one part of that bookkeeping wrong, so
/// that trusting it would hand out storage already in use, reach outside the
/// segment or miss a stored structure, and returns true; for a variant it
/// does not have it changes nothing and returns false. The test (BAD-005)
/// calls it once per variant, each time on a fresh segment holding a few
/// arrays with one destroyed between them (so there is free space inside the
/// used part), until it returns false. Without it, BAD-005 is UNSUPPORTED.
template <class A>
concept damages_table_bookkeeping = requires(const std::string& segment, int variant) {
    { A::damage_table_bookkeeping(segment, variant) } -> std::convertible_to<bool>;
};

/// An adapter that can hold its implementation still at a named step
/// provides
///   static bool stall_at(std::string_view point, std::chrono::milliseconds how_long);
/// From the call on, this process sleeps `how_long` each time it passes
/// `point`; it returns true, or false (changing nothing) for a point the
/// implementation has no equivalent of. One point at a time: a later call
/// replaces the earlier one, and a `how_long` of zero ends the stall. A race
/// test uses it to hold a window open in every racer instead of hoping the
/// scheduler hits it; without it, or for an unknown point, the test runs as
/// a plain race. Points:
///   "detach.after_last_check"  a detaching process has decided whether it
///       is the last attacher (and removed the name if so) and still holds
///       whatever marks it as attached (REF-002)
///   "create.before_ready"  a creating process has made the segment's name
///       and written its contents, and has not yet marked it ready for
///       openers (SEG-005)
///   "wait.announced"  a blocking call (try_pop_for, try_push_for) has made
///       itself known to wakers and has not yet looked at the structure
///       again before sleeping
///   "push.claimed"  a push into a queue with several producers has taken
///       the place its element goes (a later push may finish before it) and
///       has not yet published the element (Q-008, CRASH-002)
///   "table.before_lock"  a process is about to take whatever guards the
///       table of structures, each time it does (TBL-003)
///   "send.published"  a message queue's sender has made a message visible
///       to the receiver and has not yet returned from the send (MSG-005:
///       a sender that made it visible before it wrote it is caught there)
template <class A>
concept stalls_at_points = requires(std::string_view point, std::chrono::milliseconds how_long) {
    { A::stall_at(point, how_long) } -> std::convertible_to<bool>;
};

/// The category of whatever `f()` throws (none when it returns normally).
template <class A, class F>
error_category category_of(F&& f) {
    try {
        f();
        return error_category::none;
    } catch (...) {
        return A::categorize(std::current_exception());
    }
}

}  // namespace shmconf
