// The hostile writer's fields: every field of shared state, listed from the
// real layout structs (offsetof and sizeof), each with what it means, which
// decides the hostile values tried on it. A static_assert per struct
// (fields_cover) fails the build when a member is added to a struct and not
// to its list here, so the list cannot fall behind the layout.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <pthread.h>

#include <shmds/shmds.hpp>

namespace shmds_hostile {

/// Number of initialisers an aggregate takes with brace elision: one per
/// member, one per element of an array member. Any new member changes it.
struct any_initialiser {
    template <class U>
    constexpr operator U() const noexcept;  // never defined: unevaluated only
};

template <class T, std::size_t... I>
constexpr bool takes_initialisers(std::index_sequence<I...>) {
    return requires {
        T{(void(I), any_initialiser{})...};
    };
}

template <class T, std::size_t N = 0>
constexpr std::size_t initialiser_count() {
    if constexpr (!takes_initialisers<T>(std::make_index_sequence<N + 1>{}))
        return N;
    else
        return initialiser_count<T, N + 1>();
}

/// What a field means, which decides the hostile values tried on it.
enum class meaning {
    u64_offset,    ///< an offset or a size in the segment
    u64_count,     ///< a count, position, capacity or serial
    u64_hash,      ///< a hash or an identity
    u64_word,      ///< a word with packed bits (MPMC slot word)
    u32_index,     ///< an index or index + 1
    u32_plain,     ///< a state, kind, size or other 32-bit value
    u32_lock,      ///< a futex / mutex lock word
    i32_pid,       ///< a process or thread id
    u16_plain,     ///< a short
    u8_flag,       ///< a byte flag
    bytes_string,  ///< a NUL-terminated name
    bytes_raw,     ///< reserved bytes, bit sets, pointers
};

/// One field of a layout struct: where it is, and how many aggregate
/// initialisers it takes (array extent; 1 otherwise).
struct field_def {
    const char* name;
    std::size_t offset;
    std::size_t size;
    std::size_t initialisers;
    meaning kind;
};

#define SHMDS_FIELD(type, member, kind)                                \
    field_def {                                                        \
#member, offsetof(type, member), sizeof(type::member), 1, kind \
    }
#define SHMDS_ARRAY_FIELD(type, member, kind)                                                                \
    field_def {                                                                                              \
#member, offsetof(type, member), sizeof(type::member), std::extent_v < decltype(type::member)>, kind \
    }

/// True when the fields lie in order without overlapping, inside the struct,
/// and every gap between them is alignment padding (shorter than a cache-line
/// pair and ending on an aligned boundary), and they take all of the
/// struct's aggregate initialisers: a member added to the struct and not to
/// the list breaks one of these.
template <class T, std::size_t N>
constexpr bool fields_cover(const std::array<field_def, N>& fields, std::size_t skipped_initialisers = 0) {
    std::size_t at = 0;
    std::size_t initialisers = skipped_initialisers;
    for (const field_def& f : fields) {
        if (f.offset < at) return false;
        const std::size_t gap = f.offset - at;
        if (gap != 0 && (gap >= shmds::false_sharing_range || f.offset % alignof(std::max_align_t) != 0))
            return false;
        at = f.offset + f.size;
        initialisers += f.initialisers;
    }
    if (at > sizeof(T) || sizeof(T) - at >= shmds::false_sharing_range) return false;
    return initialisers == initialiser_count<T>();
}

namespace d = shmds::detail;

constexpr std::array identity_fields{
    SHMDS_FIELD(d::segment_identity, magic, meaning::u64_hash),
    SHMDS_FIELD(d::segment_identity, state, meaning::u32_plain),
    SHMDS_FIELD(d::segment_identity, version, meaning::u32_plain),
    SHMDS_FIELD(d::segment_identity, total_size, meaning::u64_offset),
    SHMDS_FIELD(d::segment_identity, segment_id, meaning::u64_hash),
    SHMDS_FIELD(d::segment_identity, alignment, meaning::u32_plain),
    SHMDS_FIELD(d::segment_identity, table_capacity, meaning::u32_index),
    SHMDS_FIELD(d::segment_identity, index_slots, meaning::u32_index),
    SHMDS_FIELD(d::segment_identity, mode, meaning::u32_plain),
    SHMDS_FIELD(d::segment_identity, entries_offset, meaning::u64_offset),
    SHMDS_FIELD(d::segment_identity, index_offset, meaning::u64_offset),
    SHMDS_FIELD(d::segment_identity, heap_offset, meaning::u64_offset),
    SHMDS_FIELD(d::segment_identity, created_unix_ns, meaning::u64_count),
    SHMDS_FIELD(d::segment_identity, creator_pid, meaning::i32_pid),
    SHMDS_FIELD(d::segment_identity, header_size, meaning::u32_plain),
    SHMDS_ARRAY_FIELD(d::segment_identity, reserved, meaning::bytes_raw),
};
static_assert(fields_cover<d::segment_identity>(identity_fields),
              "segment_identity changed: list its new field in identity_fields so that the hostile "
              "writer corrupts it");

using mutex_data = decltype(pthread_mutex_t::__data);
#if defined(__x86_64__)
// glibc's x86-64 layout: __spins shares its int with the lock-elision count.
constexpr std::array mutex_fields{
    SHMDS_FIELD(mutex_data, __lock, meaning::u32_lock),
    SHMDS_FIELD(mutex_data, __count, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __owner, meaning::i32_pid),
    SHMDS_FIELD(mutex_data, __nusers, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __kind, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __spins, meaning::u16_plain),
    SHMDS_FIELD(mutex_data, __elision, meaning::u16_plain),
    SHMDS_FIELD(mutex_data, __list, meaning::bytes_raw),
};
static_assert(fields_cover<mutex_data>(mutex_fields) && sizeof(mutex_data) == sizeof(pthread_mutex_t),
              "glibc's mutex layout differs: list its fields in mutex_fields");
#else
// glibc's generic 64-bit layout (aarch64 among others): an int __spins and
// no elision count. pthread_mutex_t may be larger than the struct glibc uses
// (48 bytes against 40 on aarch64); the rest is never read, so it is not a
// target.
constexpr std::array mutex_fields{
    SHMDS_FIELD(mutex_data, __lock, meaning::u32_lock),
    SHMDS_FIELD(mutex_data, __count, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __owner, meaning::i32_pid),
    SHMDS_FIELD(mutex_data, __nusers, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __kind, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __spins, meaning::u32_plain),
    SHMDS_FIELD(mutex_data, __list, meaning::bytes_raw),
};
static_assert(fields_cover<mutex_data>(mutex_fields) && sizeof(mutex_data) <= sizeof(pthread_mutex_t),
              "glibc's mutex layout differs: list its fields in mutex_fields");
#endif

constexpr std::array table_state_fields{
    SHMDS_FIELD(d::table_state, dirty, meaning::u32_plain),
    SHMDS_FIELD(d::table_state, free_entry_head, meaning::u32_index),
    SHMDS_FIELD(d::table_state, entries_high_water, meaning::u32_index),
    SHMDS_FIELD(d::table_state, reserved0, meaning::u32_plain),
    SHMDS_FIELD(d::table_state, used_entries, meaning::u64_count),
    SHMDS_FIELD(d::table_state, index_tombstones, meaning::u64_count),
    SHMDS_FIELD(d::table_state, heap_top, meaning::u64_offset),
    SHMDS_FIELD(d::table_state, heap_free_head, meaning::u64_offset),
    SHMDS_FIELD(d::table_state, heap_clean_from, meaning::u64_offset),
    SHMDS_FIELD(d::table_state, next_serial, meaning::u64_count),
};
static_assert(fields_cover<d::table_state>(table_state_fields),
              "table_state changed: list its new field in table_state_fields so that the hostile "
              "writer corrupts it");

// The header's own members: identity, mutex and table state, each listed above.
constexpr std::array header_parts{
    field_def{"identity", offsetof(d::segment_header, identity), sizeof(d::segment_identity), 1,
              meaning::bytes_raw},
    field_def{"table_mutex", offsetof(d::segment_header, table_mutex), sizeof(pthread_mutex_t), 1,
              meaning::bytes_raw},
    field_def{"table", offsetof(d::segment_header, table), sizeof(d::table_state), 1, meaning::bytes_raw},
};
static_assert(fields_cover<d::segment_header>(header_parts),
              "segment_header changed: list its new member in header_parts and its fields below");

constexpr std::array entry_fields{
    SHMDS_FIELD(d::table_entry, state, meaning::u32_plain),
    SHMDS_FIELD(d::table_entry, kind, meaning::u32_plain),
    SHMDS_FIELD(d::table_entry, name_hash, meaning::u64_hash),
    SHMDS_ARRAY_FIELD(d::table_entry, name, meaning::bytes_string),
    SHMDS_FIELD(d::table_entry, block_offset, meaning::u64_offset),
    SHMDS_FIELD(d::table_entry, block_bytes, meaning::u64_offset),
    SHMDS_FIELD(d::table_entry, capacity, meaning::u64_count),
    SHMDS_FIELD(d::table_entry, element_size, meaning::u32_plain),
    SHMDS_FIELD(d::table_entry, element_align, meaning::u32_plain),
    SHMDS_FIELD(d::table_entry, type_hash, meaning::u64_hash),
    SHMDS_FIELD(d::table_entry, serial, meaning::u64_count),
    SHMDS_FIELD(d::table_entry, next_free, meaning::u32_index),
    SHMDS_FIELD(d::table_entry, reserved0, meaning::u32_plain),
    SHMDS_ARRAY_FIELD(d::table_entry, type_name, meaning::bytes_string),
    SHMDS_FIELD(d::table_entry, reserved1, meaning::u64_count),
};
static_assert(fields_cover<d::table_entry>(entry_fields),
              "table_entry changed: list its new field in entry_fields so that the hostile writer "
              "corrupts it");

constexpr std::array free_block_fields{
    SHMDS_FIELD(d::free_block, bytes, meaning::u64_offset),
    SHMDS_FIELD(d::free_block, next, meaning::u64_offset),
};
static_assert(fields_cover<d::free_block>(free_block_fields),
              "free_block changed: list its new field in free_block_fields");

constexpr std::array wait_channel_fields{
    SHMDS_FIELD(d::wait_channel, sequence, meaning::u32_lock),
    SHMDS_FIELD(d::wait_channel, reserved, meaning::u32_plain),
    SHMDS_ARRAY_FIELD(d::wait_channel, sleepers, meaning::bytes_raw),
};
static_assert(fields_cover<d::wait_channel>(wait_channel_fields),
              "wait_channel changed: list its new field in wait_channel_fields");

constexpr std::array ring_fields{
    SHMDS_FIELD(d::ring_control, head, meaning::u64_count),
    SHMDS_FIELD(d::ring_control, tail, meaning::u64_count),
    SHMDS_FIELD(d::ring_control, count, meaning::u64_count),
    SHMDS_FIELD(d::ring_control, capacity, meaning::u64_count),
};
static_assert(fields_cover<d::ring_control>(ring_fields),
              "ring_control (shm_queue) changed: list its new field in ring_fields");

constexpr std::array stack_fields{
    SHMDS_FIELD(d::stack_control, count, meaning::u64_count),
    SHMDS_FIELD(d::stack_control, capacity, meaning::u64_count),
};
static_assert(fields_cover<d::stack_control>(stack_fields),
              "stack_control (shm_stack) changed: list its new field in stack_fields");

// Wait channels are listed whole here and field by field through
// wait_channel_fields (see control_fields_of).
constexpr std::array spsc_fields{
    SHMDS_FIELD(d::spsc_control, tail, meaning::u64_count),
    SHMDS_FIELD(d::spsc_control, head, meaning::u64_count),
    SHMDS_FIELD(d::spsc_control, not_empty, meaning::bytes_raw),
    SHMDS_FIELD(d::spsc_control, not_full, meaning::bytes_raw),
    SHMDS_FIELD(d::spsc_control, capacity, meaning::u64_count),
    SHMDS_FIELD(d::spsc_control, producer_pid, meaning::i32_pid),
    SHMDS_FIELD(d::spsc_control, consumer_pid, meaning::i32_pid),
};
static_assert(fields_cover<d::spsc_control>(spsc_fields),
              "spsc_control changed: list its new field in spsc_fields so that the hostile writer "
              "corrupts it");

constexpr std::array spsc_slot_fields{
    SHMDS_FIELD(d::spsc_slot<std::uint64_t>, sequence, meaning::u64_count),
    SHMDS_FIELD(d::spsc_slot<std::uint64_t>, value, meaning::u64_count),
};
static_assert(fields_cover<d::spsc_slot<std::uint64_t>>(spsc_slot_fields),
              "spsc_slot changed: list its new field in spsc_slot_fields");

constexpr std::array mpmc_fields{
    SHMDS_FIELD(d::mpmc_control, tail, meaning::u64_count),
    SHMDS_FIELD(d::mpmc_control, head, meaning::u64_count),
    SHMDS_FIELD(d::mpmc_control, not_empty, meaning::bytes_raw),
    SHMDS_FIELD(d::mpmc_control, not_full, meaning::bytes_raw),
    SHMDS_FIELD(d::mpmc_control, capacity, meaning::u64_count),
    SHMDS_FIELD(d::mpmc_control, slot_stride, meaning::u64_offset),
    SHMDS_ARRAY_FIELD(d::mpmc_control, in_use, meaning::bytes_raw),
};
static_assert(fields_cover<d::mpmc_control>(mpmc_fields),
              "mpmc_control changed: list its new field in mpmc_fields so that the hostile writer "
              "corrupts it");

constexpr std::array concurrent_stack_fields{
    SHMDS_FIELD(d::concurrent_stack_control, lock, meaning::u32_lock),
    SHMDS_FIELD(d::concurrent_stack_control, reserved, meaning::u32_plain),
    SHMDS_FIELD(d::concurrent_stack_control, count, meaning::u64_count),
    SHMDS_FIELD(d::concurrent_stack_control, not_empty, meaning::bytes_raw),
    SHMDS_FIELD(d::concurrent_stack_control, not_full, meaning::bytes_raw),
    SHMDS_FIELD(d::concurrent_stack_control, capacity, meaning::u64_count),
    SHMDS_FIELD(d::concurrent_stack_control, recoveries, meaning::u64_count),
};
static_assert(fields_cover<d::concurrent_stack_control>(concurrent_stack_fields),
              "concurrent_stack_control changed: list its new field in concurrent_stack_fields so that "
              "the hostile writer corrupts it");

constexpr std::array message_fields{
    SHMDS_FIELD(d::message_control, tail, meaning::u64_count),
    SHMDS_FIELD(d::message_control, head, meaning::u64_count),
    SHMDS_FIELD(d::message_control, not_empty, meaning::bytes_raw),
    SHMDS_FIELD(d::message_control, not_full, meaning::bytes_raw),
    SHMDS_FIELD(d::message_control, capacity, meaning::u64_count),
    SHMDS_FIELD(d::message_control, max_message, meaning::u64_count),
    SHMDS_FIELD(d::message_control, producer_pid, meaning::i32_pid),
    SHMDS_FIELD(d::message_control, consumer_pid, meaning::i32_pid),
};
static_assert(fields_cover<d::message_control>(message_fields),
              "message_control changed: list its new field in message_fields so that the hostile writer "
              "corrupts it");

/// A message queue's record header, as the ring holds it (one 64-bit word:
/// length in the low half, type in the high; shm_message_queue.hpp).
struct message_record_header {
    std::uint32_t length;
    std::uint32_t type;
};
static_assert(sizeof(message_record_header) == d::record_header_bytes, "a record header is one word");
constexpr std::array message_record_fields{
    SHMDS_FIELD(message_record_header, length, meaning::u32_plain),
    SHMDS_FIELD(message_record_header, type, meaning::u32_plain),
};

// The MPMC slot word and value lie at offsets the layout computes.
using mpmc_layout = d::mpmc_layout<std::uint64_t>;

#undef SHMDS_FIELD
#undef SHMDS_ARRAY_FIELD

}  // namespace shmds_hostile
