// shmds/detail/segment_layout.hpp: the bytes of a segment, as every process
// sees them.
//
//   offset 0            segment_header: identity and geometry (immutable once
//                       ready), then on its own cache-line pair the table's
//                       robust mutex and mutable bookkeeping
//   entries_offset      table_capacity x table_entry: the source of truth for
//                       which structures exist
//   index_offset        index_slots x uint32: open-addressed hash index over
//                       the entries (derived; rebuilt after a crash)
//   heap_offset         structures' blocks, each aligned to `alignment`
//   total_size          end of the mapping
//
// Every cross-reference is an offset from the segment's base, never a pointer.
// Nothing here depends on build flags: a Debug and a Release process, or a
// GCC and a Clang one, agree on every byte (asserted below).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <pthread.h>

#include "shmds/config.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/structure_kind.hpp"

namespace shmds::detail {

/// "SHMDSEG1" read as a little-endian 64-bit word.
inline constexpr std::uint64_t segment_magic = 0x3147'4553'444d'4853ull;

/// Initialisation state word: openers map the segment but read nothing else
/// until they see `ready` (acquire), which the creator stores last (release).
enum init_state : std::uint32_t {
    state_uninitialised = 0,  // fresh zero pages from posix_fallocate
    state_initialising = 1,
    state_ready = 2,
};

/// Table bookkeeping that changes; read and written only under table_mutex.
/// Everything here except `dirty` and `next_serial` can be recomputed from the
/// entries, which is how a holder's death mid-update is repaired.
struct table_state {
    std::uint32_t dirty;               ///< 1 while an update is under way
    std::uint32_t free_entry_head;     ///< index + 1 of a destroyed entry to reuse; 0 = none
    std::uint32_t entries_high_water;  ///< entries at or above this index were never used
    std::uint32_t reserved0;
    std::uint64_t used_entries;
    std::uint64_t index_tombstones;
    std::uint64_t heap_top;         ///< end of the highest allocated block
    std::uint64_t heap_free_head;   ///< offset of the lowest free block below heap_top; 0 = none
    std::uint64_t heap_clean_from;  ///< bytes at or above were never written (still zero)
    std::uint64_t next_serial;      ///< creation number given to the next structure
};

/// The first 128 bytes: identity and geometry. Written once by the creator
/// before `state` becomes ready, immutable afterwards. Trivially copyable so
/// that an opener validates, and then uses, a private copy rather than bytes
/// another process could still change.
struct segment_identity {
    std::uint64_t magic;
    std::uint32_t state;  ///< init_state; accessed only through state_word()
    std::uint32_t version;
    std::uint64_t total_size;
    std::uint64_t segment_id;  ///< random, distinguishes incarnations of one name
    std::uint32_t alignment;   ///< every block starts on this boundary (64 or more)
    std::uint32_t table_capacity;
    std::uint32_t index_slots;
    std::uint32_t mode;
    std::uint64_t entries_offset;
    std::uint64_t index_offset;
    std::uint64_t heap_offset;
    std::int64_t created_unix_ns;
    std::int32_t creator_pid;
    std::uint32_t header_size;  ///< sizeof(segment_header) of the creator
    std::uint8_t reserved[40];
};

struct segment_header {
    segment_identity identity;
    // ---- table lock and bookkeeping: own cache-line pair, written often
    alignas(false_sharing_range) pthread_mutex_t table_mutex;
    table_state table;
};

/// The initialisation state word, as an atomic. The creator stores `ready`
/// with release after everything else; openers load it with acquire.
inline std::atomic_ref<std::uint32_t> state_word(segment_header& h) noexcept {
    return std::atomic_ref<std::uint32_t>(h.identity.state);
}

static_assert(std::is_trivially_copyable_v<segment_identity> && sizeof(segment_identity) == 128,
              "the identity must fill exactly the first 128 bytes and be copyable for validation");
static_assert(std::is_standard_layout_v<segment_header>,
              "the header is read through a cast of mapped bytes: it must be standard layout");
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free &&
                  std::atomic_ref<std::uint32_t>::required_alignment <= alignof(std::uint32_t),
              "the state word is shared between processes: it must be a plain lock-free word");
static_assert(offsetof(segment_header, table_mutex) == false_sharing_range,
              "lock traffic must never invalidate the line every opener reads");
static_assert(sizeof(pthread_mutex_t) + sizeof(table_state) <= false_sharing_range,
              "the table lock and its bookkeeping must fit one cache-line pair");
static_assert(sizeof(segment_header) == 2 * false_sharing_range,
              "header size is part of the format; change format_version if it moves");

enum entry_state : std::uint32_t {
    entry_free = 0,
    entry_used = 1,
    /// Found damaged by a repair: not findable, its block kept out of use
    /// (when its bounds are sane) in case a process still reads it.
    entry_quarantined = 2,
};

inline constexpr std::size_t entry_name_bytes = max_structure_name_length + 1;
inline constexpr std::size_t entry_type_name_bytes = 48;

/// One named structure. Written completely while unpublished, then published
/// by setting `state` to entry_used, all under the table lock.
struct table_entry {
    std::uint32_t state;
    std::uint32_t kind;
    std::uint64_t name_hash;
    char name[entry_name_bytes];  ///< NUL-terminated
    std::uint64_t block_offset;   ///< from the segment base; aligned to `alignment`
    std::uint64_t block_bytes;    ///< multiple of `alignment`
    std::uint64_t capacity;       ///< element count the structure was created with
    std::uint32_t element_size;
    std::uint32_t element_align;
    std::uint64_t type_hash;
    std::uint64_t serial;
    std::uint32_t next_free;  ///< free-entry chain (index + 1), meaningful when free
    std::uint32_t reserved0;
    char type_name[entry_type_name_bytes];  ///< type_name<T>, truncated, NUL-terminated
    std::uint64_t reserved1;
};

static_assert(std::is_trivially_copyable_v<table_entry> && std::is_standard_layout_v<table_entry>,
              "table entries are shared bytes");
static_assert(sizeof(table_entry) == 192, "entry size is part of the format");

/// Index slot values: 0 empty, `index_tombstone` a removed entry, otherwise
/// entry index + 1.
inline constexpr std::uint32_t index_empty = 0;
inline constexpr std::uint32_t index_tombstone = 0xffff'ffffu;

/// Header in each free heap block, chained in increasing address order.
struct free_block {
    std::uint64_t bytes;
    std::uint64_t next;  ///< offset of the next free block, 0 = none
};

/// Where everything goes for a given alignment and table capacity. Computed
/// by the creator and recomputed by every opener to validate the header.
struct segment_geometry {
    std::uint32_t alignment;
    std::uint32_t table_capacity;
    std::uint32_t index_slots;
    std::uint64_t entries_offset;
    std::uint64_t index_offset;
    std::uint64_t heap_offset;
    /// Smallest segment that holds the header, the table and one block.
    std::uint64_t min_total_size;
};

/// nullopt when alignment or capacity is out of range.
constexpr std::optional<segment_geometry> compute_geometry(std::uint32_t alignment,
                                                           std::uint32_t table_capacity) noexcept {
    if (!is_power_of_two(alignment) || alignment < cache_line_size || alignment > max_structure_alignment)
        return std::nullopt;
    if (table_capacity == 0 || table_capacity > max_table_capacity) return std::nullopt;
    segment_geometry g{};
    g.alignment = alignment;
    g.table_capacity = table_capacity;
    // Load factor at most one half (live entries plus tombstones are kept
    // under three quarters), so probes stay short.
    g.index_slots = std::bit_ceil(std::max<std::uint32_t>(2 * table_capacity, 8));
    g.entries_offset = align_up(sizeof(segment_header), alignment);
    g.index_offset =
        align_up(g.entries_offset + std::uint64_t{table_capacity} * sizeof(table_entry), alignment);
    g.heap_offset =
        align_up(g.index_offset + std::uint64_t{g.index_slots} * sizeof(std::uint32_t), alignment);
    g.min_total_size = g.heap_offset + alignment;
    return g;
}

/// Why a ready identity does not describe a usable segment of `mapped_size`
/// bytes, or nullopt when it does.
inline std::optional<std::string> identity_problem(const segment_identity& h, std::uint64_t mapped_size) {
    if (h.magic != segment_magic) return "wrong magic number (not a shmds segment, or overwritten)";
    if (h.version != format_version)
        return "format version " + std::to_string(h.version) + ", this library reads version " +
               std::to_string(format_version);
    if (h.header_size != sizeof(segment_header))
        return "header size " + std::to_string(h.header_size) + ", expected " +
               std::to_string(sizeof(segment_header));
    if (h.total_size != mapped_size)
        return "header says " + std::to_string(h.total_size) + " bytes but the segment has " +
               std::to_string(mapped_size);
    auto g = compute_geometry(h.alignment, h.table_capacity);
    if (!g)
        return "invalid geometry (alignment " + std::to_string(h.alignment) + ", table capacity " +
               std::to_string(h.table_capacity) + ")";
    if (h.index_slots != g->index_slots || h.entries_offset != g->entries_offset ||
        h.index_offset != g->index_offset || h.heap_offset != g->heap_offset)
        return "table offsets do not match its geometry";
    if (g->min_total_size > mapped_size) return "table does not fit in the segment";
    return std::nullopt;
}

}  // namespace shmds::detail
