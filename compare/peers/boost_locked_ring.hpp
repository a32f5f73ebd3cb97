// compare/peers/boost_locked_ring.hpp: the mutex-guarded ring over
// Boost.Interprocess that the benchmarks time (boost_locked_ring in
// boost_channels.hpp) and the conformance suite checks (its queue, MPMC
// queue, stack and concurrent stack in conformance/adapters/boost_adapter.hpp):
// one ring, so that the ring measured is the ring checked.
//
// It is what Boost's documentation shows for a shared ring: a control block
// constructed in a managed segment, an interprocess_mutex, two
// interprocess_conditions, and slots reached through an offset_ptr, because
// every process maps the segment at its own address. Where the block and its
// slots live, and under which names, is the user's business.
//
// Needs only Boost: the benchmark harness and the conformance contract both
// include it, and it includes neither.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

#include <boost/interprocess/offset_ptr.hpp>
#include <boost/interprocess/sync/interprocess_condition.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>

namespace shmds_boost {

/// A ring of `capacity` elements T. Invariants, under `mutex`: count <=
/// capacity, head < capacity; the elements are slots[(head + i) % capacity]
/// for i < count, oldest first. `capacity` and `slots` never change after
/// construction. Boost 1.74's mutex and conditions are process-shared and not
/// robust: a process killed holding the mutex blocks the others for ever.
template <class T>
struct locked_ring_block {
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied between processes as bytes");

    /// `storage`: capacity elements, in the same segment as the block.
    locked_ring_block(std::size_t n, T* storage) : capacity(n), slots(storage) {}

    boost::interprocess::interprocess_mutex mutex;
    boost::interprocess::interprocess_condition not_empty;  ///< signalled by each put
    boost::interprocess::interprocess_condition not_full;   ///< signalled by each take
    const std::size_t capacity;
    std::size_t head = 0;
    std::size_t count = 0;
    const boost::interprocess::offset_ptr<T> slots;

    // The caller holds `mutex` for every call below.

    [[nodiscard]] bool empty() const noexcept { return count == 0; }
    [[nodiscard]] bool full() const noexcept { return count == capacity; }

    /// Appends the sizeof(T) bytes at `element` as the newest element. Not full.
    void put(const void* element) noexcept {
        std::memcpy(&slots[(head + count) % capacity], element, sizeof(T));
        ++count;
        not_empty.notify_one();
    }
    /// Removes the oldest element (the newest when `newest`, for a stack)
    /// into the sizeof(T) bytes at `out`. Not empty.
    void take(void* out, bool newest) noexcept {
        --count;
        if (newest) {
            std::memcpy(out, &slots[(head + count) % capacity], sizeof(T));
        } else {
            std::memcpy(out, &slots[head], sizeof(T));
            head = (head + 1) % capacity;
        }
        not_full.notify_one();
    }
};

}  // namespace shmds_boost
