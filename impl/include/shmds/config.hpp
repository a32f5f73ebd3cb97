// shmds/config.hpp: constants that are part of the shared-memory layout.
//
// Everything here is baked into segments that other processes (possibly built
// with another compiler or other flags) map, so none of it may depend on the
// build: no std::hardware_destructive_interference_size, no NDEBUG.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shmds {

/// Cache-line size assumed by the shared layout. Fixed, because two processes
/// built with different -march flags must agree on every offset.
inline constexpr std::size_t cache_line_size = 64;

/// Distance that keeps two hot fields out of each other's way on parts that
/// prefetch cache lines in adjacent pairs (Intel's spatial prefetcher). Used
/// for producer/consumer index separation.
inline constexpr std::size_t false_sharing_range = 128;

/// Version of the segment format. Bumped whenever any shared layout, or the
/// meaning of a shared word or lock, changes; an opener refuses a segment
/// written with another version. 3: the last bit of each wait channel's
/// sleeper set became the fence bit (at most 127 participants), and every
/// attacher holds an attach slot, which counting relies on. 4: the
/// concurrent stack's lock became a futex word naming its holder's
/// participant id (detail/participant_mutex.hpp) instead of a glibc mutex.
/// 5: the fence bit moved to the top of a wait channel's first sleeper word,
/// which participants 63 and up also set, so that a waker's check for
/// sleepers reads one word (detail/waiting.hpp). 6: a seventh kind, the
/// message queue, which a library of version 5 would take for a damaged
/// entry and quarantine.
inline constexpr std::uint32_t format_version = 6;

/// Longest structure name, in bytes, not counting the terminating NUL that the
/// table stores after it.
inline constexpr std::size_t max_structure_name_length = 63;

/// Longest segment name accepted, counting the leading '/'. glibc refuses
/// names whose part after the slash is 254 bytes or longer (NAME_MAX - 1).
inline constexpr std::size_t max_segment_name_length = 254;

/// Largest table capacity a segment may be created with (entry indices are
/// stored as 32-bit numbers and the index needs twice as many slots).
inline constexpr std::uint32_t max_table_capacity = 1u << 24;

/// Largest alignment a structure may require: offsets are relative to a
/// page-aligned mapping, so only alignments up to a page are guaranteed.
inline constexpr std::size_t max_structure_alignment = 4096;

}  // namespace shmds
