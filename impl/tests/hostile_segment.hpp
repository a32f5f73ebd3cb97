// The segment the hostile writer attacks, and that the tests of too many
// open files use too: two structures of every kind, each holding known
// elements (structure_name::value), the handles to them (handles, and
// visit_handle to reach any of them through one generic lambda), and the
// segment's options (a short lock timeout: a garbage lock word looks held).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <shmds/shmds.hpp>

namespace shmds_hostile {

using element = std::uint64_t;
constexpr std::size_t segment_bytes = std::size_t{256} * 1024;
constexpr std::uint32_t table_capacity = 16;
constexpr std::uint64_t structure_capacity = 8;
constexpr std::uint64_t stored = 3;  ///< elements each structure holds
constexpr auto short_wait = std::chrono::microseconds(100);
/// Bounds every wait for another process's lock (a garbage lock word looks held).
constexpr auto lock_timeout = std::chrono::milliseconds(5);

// (The concurrent stack stays last: the regression tests at the end of
// test_hostile.cpp take the last block to be its.)
enum class kind_id { array, queue, stack, spsc, mpmc, messages, cstack };
constexpr std::array all_kinds{kind_id::array, kind_id::queue,    kind_id::stack, kind_id::spsc,
                               kind_id::mpmc,  kind_id::messages, kind_id::cstack};
constexpr const char* kind_names[] = {"array", "queue", "stack", "spsc", "mpmc", "messages", "cstack"};

struct structure_name {
    kind_id kind;
    int copy;                ///< 0 or 1: which handle slot it uses
    bool temporary = false;  ///< made and destroyed by a victim
    [[nodiscard]] std::string str() const {
        return std::string(kind_names[static_cast<int>(kind)]) + (temporary ? "tmp" : std::to_string(copy));
    }
    [[nodiscard]] element value(std::uint64_t i) const {
        return 1000 * (static_cast<element>(kind) + 1) + 100 * static_cast<element>(copy) + i + 1;
    }
};

inline std::vector<structure_name> all_structures() {
    std::vector<structure_name> out;
    for (int copy = 0; copy < 2; ++copy)
        for (kind_id k : all_kinds) out.push_back({k, copy});
    return out;
}

using array_type = shmds::shm_array<element>;
using queue_type = shmds::shm_queue<element>;
using stack_type = shmds::shm_stack<element>;
using spsc_type = shmds::shm_spsc_queue<element>;
using mpmc_type = shmds::shm_mpmc_queue<element>;
using cstack_type = shmds::shm_concurrent_stack<element>;

/// The message queue as a FIFO of elements, so that the victims' generic
/// code runs it like the other queues: each element an 8-byte message,
/// each record 16 bytes, the ring `capacity` records (so records never wrap
/// and "full" is exact).
class message_type {
public:
    static constexpr std::uint64_t record = shmds::detail::record_bytes(sizeof(element));
    message_type(shmds::create_only_t, shmds::posix_shm& seg, const std::string& name, std::uint64_t capacity)
        : q_(shmds::create_only, seg, name, capacity * record, sizeof(element), waits()) {}
    message_type(shmds::open_only_t, shmds::posix_shm& seg, const std::string& name)
        : q_(shmds::open_only, seg, name, waits()) {}

    bool try_push(element v) { return q_.try_send(std::as_bytes(std::span(&v, 1))); }
    template <class Duration>
    bool try_push_for(element v, Duration timeout) {
        return q_.try_send_for(std::as_bytes(std::span(&v, 1)), timeout);
    }
    void push(element v) { q_.send(std::as_bytes(std::span(&v, 1))); }
    std::optional<element> try_pop() { return taken(q_.try_receive(as_buffer())); }
    template <class Duration>
    std::optional<element> try_pop_for(Duration timeout) {
        return taken(q_.try_receive_for(as_buffer(), timeout));
    }
    element pop() {
        (void)q_.receive(as_buffer());
        return buffer_;
    }
    [[nodiscard]] std::size_t size() const { return q_.size_bytes() / record; }
    [[nodiscard]] std::size_t capacity() const { return q_.capacity() / record; }
    [[nodiscard]] bool empty() const { return q_.empty(); }
    [[nodiscard]] bool full() const { return q_.size_bytes() + record > q_.capacity(); }
    void release_roles() { q_.release_roles(); }

private:
    static shmds::wait_options waits() { return {.strategy = shmds::wait_strategy::sleep}; }
    std::span<std::byte> as_buffer() { return std::as_writable_bytes(std::span(&buffer_, 1)); }
    /// A record header written over can make a message shorter than an
    /// element (its length is data, checked only against the largest): what
    /// it holds is returned as it is, as a damaged element would be.
    std::optional<element> taken(std::optional<std::size_t> length) {
        if (!length) return std::nullopt;
        return buffer_;
    }
    shmds::shm_message_queue q_;
    element buffer_ = 0;
};

/// Handles to every structure; any may be missing (a fresh opener whose open
/// failed on damage).
struct handles {
    std::optional<array_type> array[2];
    std::optional<queue_type> queue[2];
    std::optional<stack_type> stack[2];
    std::optional<spsc_type> spsc[2];
    std::optional<mpmc_type> mpmc[2];
    std::optional<message_type> messages[2];
    std::optional<cstack_type> cstack[2];
};

/// Calls `f` with the handle slot (a std::optional) of structure `s`, so that
/// one generic lambda serves every kind; `if constexpr (is<T, decltype(slot)>)`
/// picks out what only one kind has.
template <class F>
decltype(auto) visit_handle(handles& h, const structure_name& s, F&& f) {
    const int c = s.copy;
    switch (s.kind) {
        case kind_id::array:
            return f(h.array[c]);
        case kind_id::queue:
            return f(h.queue[c]);
        case kind_id::stack:
            return f(h.stack[c]);
        case kind_id::spsc:
            return f(h.spsc[c]);
        case kind_id::mpmc:
            return f(h.mpmc[c]);
        case kind_id::messages:
            return f(h.messages[c]);
        case kind_id::cstack:
            return f(h.cstack[c]);
    }
    throw std::logic_error("unknown structure kind");
}

/// True when `Slot` (a handle slot, as visit_handle passes it) holds a `T`.
template <class T, class Slot>
constexpr bool is = std::is_same_v<typename std::remove_cvref_t<Slot>::value_type, T>;

/// Stacks give back the last element stored first.
template <class Slot>
constexpr bool is_lifo = is<stack_type, Slot> || is<cstack_type, Slot>;

inline shmds::segment_options options() {
    shmds::segment_options o;
    o.table_capacity = table_capacity;
    o.timeout = lock_timeout;
    o.notice = [](const std::string&) {};
    return o;
}

/// Opens (or creates) one structure into `h`.
inline void open_structure(shmds::posix_shm& seg, handles& h, const structure_name& s, bool create) {
    const std::string n = s.str();
    visit_handle(h, s, [&](auto& slot) {
        if (create)
            slot.emplace(shmds::create_only, seg, n, structure_capacity);
        else
            slot.emplace(shmds::open_only, seg, n);
    });
}

/// Stores the known elements. Leaves no role or participant id held.
inline void fill(handles& h, const structure_name& s) {
    visit_handle(h, s, [&](auto& slot) {
        for (std::uint64_t i = 0; i < stored; ++i) {
            if constexpr (is<array_type, decltype(slot)>)
                (*slot)[i] = s.value(i);
            else
                slot->push(s.value(i));
        }
        if constexpr (is<spsc_type, decltype(slot)> || is<message_type, decltype(slot)>)
            slot->release_roles();
        if constexpr (is<mpmc_type, decltype(slot)>) slot->leave();
    });
}
}  // namespace shmds_hostile
