// shmds/detail/mpmc_slots.hpp: the shared layout of shm_mpmc_queue: its
// control block, the slot word that says which position a slot holds and in
// what state, and where each slot's word and value live in the block.
//
// Owns the bytes' meaning only; the protocol that moves a slot between
// states (claim, publish, recover a dead owner's claim) is
// shm_mpmc_queue.hpp's. Everything here is part of the shared layout:
// changing it changes what other builds read.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "shmds/config.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"
#include "shmds/structure_kind.hpp"

namespace shmds::detail {
struct mpmc_control {
    alignas(false_sharing_range) atomic<std::uint64_t> tail;  ///< hint: next position to push
    alignas(false_sharing_range) atomic<std::uint64_t> head;  ///< hint: next position to pop
    alignas(false_sharing_range) wait_channel not_empty;
    alignas(false_sharing_range) wait_channel not_full;
    alignas(false_sharing_range) std::uint64_t capacity;  ///< immutable
    std::uint64_t slot_stride;                            ///< immutable, checked at open
    /// 1 from a participant's join to its clean leave: a participant id found
    /// still marked at the next join belonged to a process that died, and
    /// only then is the ring searched for claims it left.
    atomic<std::uint8_t> in_use[sleeper_bits];
};

static_assert(offsetof(mpmc_control, head) - offsetof(mpmc_control, tail) >= false_sharing_range,
              "producers' and consumers' hints must not share a cache-line pair");
static_assert(std::is_standard_layout_v<mpmc_control>, "the control block is shared bytes");

/// The slot word: position (48 bits) | state (2 bits) | owner (14 bits).
namespace mpmc_word {
inline constexpr std::uint64_t position_mask = (std::uint64_t{1} << 48) - 1;
inline constexpr std::uint64_t owner_mask = 0x3fff;
enum state : std::uint64_t { free = 0, writing = 1, full = 2, reading = 3 };

constexpr std::uint64_t make(std::uint64_t position, state s, std::uint32_t owner = 0) noexcept {
    return ((position & position_mask) << 16) | (std::uint64_t{s} << 14) | (owner & owner_mask);
}
/// Whether `word` holds `position` in state `s`, whoever it names: one
/// comparison, for the fast paths.
constexpr bool holds(std::uint64_t word, std::uint64_t position, state s) noexcept {
    return (word & ~owner_mask) == make(position, s);
}
constexpr state state_of(std::uint64_t word) noexcept {
    return static_cast<state>((word >> 14) & 3);
}
constexpr std::uint32_t owner_of(std::uint64_t word) noexcept {
    return static_cast<std::uint32_t>(word & owner_mask);
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
    /// Slots of up to half a cache line are packed, each a power of two in
    /// size so that none straddles a line: a line then carries two to four
    /// elements from producers to consumers. One slot per line cost a line
    /// transfer per element each way; packed, 1 x 1 spin throughput of 8-byte
    /// elements rose about 1.3x (medians of 45 and 57 M/s over six processes
    /// each, alternating, bench/ipc; 1.2 to 1.7x in earlier rounds). Neighbours
    /// sharing a line cost only when a producer and a consumer work on one
    /// line at once, and then no more transfers than a line each. Larger
    /// slots start a cache line each.
    static constexpr std::size_t slot_bytes = value_offset + sizeof(T);
    static constexpr std::size_t slot_stride =
        slot_bytes <= cache_line_size / 2 ? std::bit_ceil(slot_bytes)
                                          : align_up(slot_bytes, std::max(cache_line_size, alignof(T)));
    static_assert(slot_stride % alignof(T) == 0 && slot_stride % sizeof(std::uint64_t) == 0,
                  "every slot's word and value must be aligned");
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
    static atomic<std::uint64_t>* slot_word(std::byte* block, std::uint64_t index) noexcept {
        return reinterpret_cast<atomic<std::uint64_t>*>(block + slots_offset + index * slot_stride);
    }
    static T* slot_value(std::byte* block, std::uint64_t index) noexcept {
        return reinterpret_cast<T*>(block + slots_offset + index * slot_stride + value_offset);
    }
    /// Checked at open (see blocking_handle.hpp): slots laid out by a build
    /// that pads them differently would be read at the wrong places.
    static std::string damage(mpmc_control& control, std::uint64_t) {
        const std::uint64_t recorded = read_once(control.slot_stride);
        if (recorded == slot_stride) return {};
        return "its control block records slots every " + std::to_string(recorded) +
               " bytes, this build every " + std::to_string(slot_stride);
    }
};

}  // namespace shmds::detail
