// shmds/shm_table.hpp: the directory of named structures inside one segment.
//
// Size. About 930 lines holding four responsibilities (the public open_mode
// tags and structure_info, the hash index, the first-fit heap and the repair
// and quarantine logic). It is left whole until issue 18 splits it into
// detail/ pieces in one redesign, with the conformance mutants (patches
// against these headers) and the instruction-gate baseline moved with it.
//
// Ownership and invariants
// - The table lives in the segment (see detail/segment_layout.hpp); this class
//   is a process-local view of it and owns nothing. The posix_shm it came from
//   must outlive it.
// - The entries array is the only source of truth: an entry is a structure if
//   and only if its state is entry_used, and all its fields are written before
//   that state is stored. The hash index, the free-entry chain, the heap's
//   free list and the counters are derived from the entries.
// - Every read or write of the table happens under one process-shared robust
//   mutex in the header. An update sets `dirty` first and clears it last; a
//   process that dies in between leaves `dirty` set (and the mutex
//   owner-dead), and the next locker rebuilds everything derived from the
//   entries before going on. So a crash never leaves a structure half
//   registered, and space a dead creator had taken is reclaimed.
// - Every offset, size and index read from the segment is checked against the
//   mapping before it is used. Damage to derived state is repaired from the
//   entries; damage to an entry is a corrupted_error naming it.
//
// Find and create cost O(1) on average: open addressing with linear probing
// over a power-of-two index kept at most three-quarters full (live entries
// plus tombstones; a rebuild clears tombstones).
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <pthread.h>

#include "shmds/detail/fault.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/robust_mutex.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/element.hpp"
#include "shmds/error.hpp"
#include "shmds/names.hpp"

namespace shmds {

/// How a segment or structure is attached: create it (fail if it exists),
/// open it (fail if it does not), or whichever applies.
enum class open_mode { create_only, open_only, open_or_create };

struct create_only_t {
    explicit create_only_t() = default;
};
struct open_only_t {
    explicit open_only_t() = default;
};
struct open_or_create_t {
    explicit open_or_create_t() = default;
};
inline constexpr create_only_t create_only{};
inline constexpr open_only_t open_only{};
inline constexpr open_or_create_t open_or_create{};

/// A snapshot of one table entry, for listing and inspection.
struct structure_info {
    std::string name;
    structure_kind kind;
    std::uint64_t capacity;       ///< elements
    std::uint32_t element_size;   ///< sizeof(T)
    std::uint32_t element_align;  ///< alignof(T)
    std::string type_name;        ///< readable (demangled) element type
    std::uint64_t type_hash;
    std::uint64_t offset;  ///< first byte of the structure's block, from the segment base
    std::uint64_t bytes;   ///< size of the block
    std::uint64_t serial;  ///< creation number, unique within the segment's life
};

namespace detail {

/// What a structure type tells the table about the block it needs.
template <class L>
concept structure_layout = requires(std::byte* block, std::uint64_t capacity) {
    { L::kind } -> std::convertible_to<structure_kind>;
    { L::block_alignment } -> std::convertible_to<std::size_t>;
    { L::bytes_for(capacity) } -> std::same_as<std::optional<std::size_t>>;
    L::initialise(block, capacity);
};

struct opened_block {
    std::byte* block;
    std::uint64_t capacity;
    std::uint64_t serial;
    bool created;
};

/// Thrown inside the table when derived state (index, free lists, counters)
/// fails a check; the table repairs it from the entries and retries.
struct derived_state_damaged {};

}  // namespace detail

class shm_table {
public:
    /// A view of the table of the ready segment mapped at `base`, whose
    /// identity has been validated (posix_shm does this). Bounds come from
    /// that private copy, so a process that later scribbles over the header
    /// cannot move this process's bounds.
    shm_table(std::byte* base, const detail::segment_identity& validated, std::string segment_name,
              std::chrono::milliseconds lock_timeout) noexcept
        : base_(base),
          total_size_(validated.total_size),
          geometry_(*detail::compute_geometry(validated.alignment, validated.table_capacity)),
          segment_name_(std::move(segment_name)),
          lock_timeout_(lock_timeout),
          lock_kind_(detail::robust_mutex_kind()) {}

    /// Writes an empty table and initialises its robust mutex. Creator only,
    /// while the segment's state word is `initialising`.
    static void format(std::byte* base, const detail::segment_geometry& geometry) {
        auto* h = reinterpret_cast<detail::segment_header*>(base);
        detail::init_robust_mutex(&h->table_mutex, "the table lock");
        h->table = detail::table_state{};
        h->table.heap_top = geometry.heap_offset;
        h->table.heap_clean_from = geometry.heap_offset;
        h->table.next_serial = 1;
        // Entries and index are zero already: fresh pages from posix_fallocate.
    }

    /// Finds `name`. Any process; blocks only for the table lock (bounded by
    /// the segment's timeout). Returns nullopt when absent; throws
    /// invalid_argument_error for a bad name, corrupted_error, timeout_error.
    [[nodiscard]] std::optional<structure_info> find(std::string_view name) const {
        detail::check_structure_name(segment_name_, name);
        lock_guard lock(*this);
        return with_repair([&]() -> std::optional<structure_info> {
            auto hit = probe(name, detail::fnv1a64(name));
            if (!hit.entry) return std::nullopt;
            return info_of(checked_entry(*hit.entry));
        });
    }

    [[nodiscard]] bool contains(std::string_view name) const { return find(name).has_value(); }

    /// Every structure, in entry order. Any process.
    [[nodiscard]] std::vector<structure_info> list() const {
        lock_guard lock(*this);
        std::vector<structure_info> out;
        for (std::uint32_t i = 0; i < state().entries_high_water && i < geometry_.table_capacity; ++i)
            if (entries()[i].state == detail::entry_used) out.push_back(info_of(checked_entry(i)));
        return out;
    }

    /// Removes the structure `name` and frees its space for reuse. Any
    /// process; the caller guarantees no handle to it is still used (their
    /// memory is handed to the next structure created). Throws
    /// not_found_error when absent.
    void destroy(std::string_view name) {
        detail::check_structure_name(segment_name_, name);
        lock_guard lock(*this);
        with_repair([&] {
            auto hit = probe(name, detail::fnv1a64(name));
            if (!hit.entry)
                throw not_found_error("cannot destroy structure '" + std::string(name) + "': segment '" +
                                      segment_name_ + "' has no structure of that name");
            const std::uint32_t index = *hit.entry;
            const detail::table_entry& e = entries()[index];
            const bool damaged = entry_problem(e).has_value();
            const std::uint64_t offset = e.block_offset;
            const std::uint64_t bytes = e.block_bytes;
            // Check the free list before the commit point, after which
            // failing half-way is not an option.
            if (!damaged) walk_free_list([](std::uint64_t, const detail::free_block&) { return false; });
            begin_update();
            unpublish(index);  // the commit point: from here on the structure is gone
            SHMDS_FAULT_POINT("table.destroy.unpublished");
            if (damaged) {
                repair();  // its block's bounds cannot be trusted: rebuild the heap from the others
                return;
            }
            try {
                free_block(offset, bytes);
            } catch (const detail::derived_state_damaged&) {
                repair();
                return;
            }
            SHMDS_FAULT_POINT("table.destroy.block_freed");
            remove_from_index(hit.slot);
            SHMDS_FAULT_POINT("table.destroy.unindexed");
            chain_free_entry(index);
            end_update();
        });
    }

    /// Every structure whose entry passes validation, read without the table
    /// lock, for inspecting a segment no live process is attached to (a
    /// stale one): nothing writes it then, and a lock its dead holder left
    /// cannot block the reader. `damaged` receives the number of used entries
    /// that fail validation. Reads only; throws only std::bad_alloc.
    [[nodiscard]] std::vector<structure_info> list_unattached(std::size_t& damaged) const {
        std::vector<structure_info> out;
        damaged = 0;
        for (std::uint32_t i = 0; i < geometry_.table_capacity; ++i) {
            const detail::table_entry& e = entries()[i];
            if (e.state != detail::entry_used) continue;
            if (entry_problem(e))
                ++damaged;
            else
                out.push_back(info_of(e));
        }
        return out;
    }

    /// Number of structures. Any process.
    [[nodiscard]] std::size_t size() const {
        lock_guard lock(*this);
        return state().used_entries;
    }

    /// Most structures this segment can hold (chosen at creation).
    [[nodiscard]] std::size_t capacity() const noexcept { return geometry_.table_capacity; }

    /// Bytes of heap not held by any structure (sum of all gaps; one
    /// structure of this size may not fit if they are scattered).
    [[nodiscard]] std::size_t bytes_free() const {
        lock_guard lock(*this);
        return with_repair([&] {
            std::uint64_t total = total_size_ - state().heap_top;
            walk_free_list([&](std::uint64_t, const detail::free_block& node) {
                total += node.bytes;
                return false;
            });
            return static_cast<std::size_t>(total);
        });
    }

    [[nodiscard]] const std::string& segment_name() const noexcept { return segment_name_; }

    /// Finds or creates the structure described by `request` with the layout
    /// `Layout`. Used by the structure classes; any process. A structure is
    /// published fully initialised or not at all.
    template <detail::structure_layout Layout>
    detail::opened_block open(std::string_view name, open_mode mode, std::uint64_t capacity,
                              const type_fingerprint& type) {
        detail::check_structure_name(segment_name_, name);
        std::size_t bytes = 0;
        if (mode != open_mode::open_only) bytes = checked_bytes<Layout>(name, capacity, type);
        const std::size_t align = std::max<std::size_t>(Layout::block_alignment, geometry_.alignment);
        const std::uint64_t hash = detail::fnv1a64(name);

        lock_guard lock(*this);
        return with_repair([&]() -> detail::opened_block {
            auto hit = probe(name, hash);
            if (hit.entry) {
                if (mode == open_mode::create_only)
                    throw already_exists_error(describe(name) + " already exists as " +
                                               describe_entry(entries()[*hit.entry]));
                return open_existing<Layout>(name, *hit.entry, capacity, type, align);
            }
            if (mode == open_mode::open_only)
                throw not_found_error(describe(name) + " does not exist (segment holds " +
                                      std::to_string(state().used_entries) + " structures)");
            return create<Layout>(name, hash, hit.slot, capacity, type, bytes, align);
        });
    }

private:
    // ---- access to the shared bytes -------------------------------------------------

    detail::segment_header& header() const noexcept {
        return *reinterpret_cast<detail::segment_header*>(base_);
    }
    detail::table_state& state() const noexcept { return header().table; }
    detail::table_entry* entries() const noexcept {
        return reinterpret_cast<detail::table_entry*>(base_ + geometry_.entries_offset);
    }
    std::uint32_t* index_slots() const noexcept {
        return reinterpret_cast<std::uint32_t*>(base_ + geometry_.index_offset);
    }
    detail::free_block& free_block_at(std::uint64_t offset) const noexcept {
        return *reinterpret_cast<detail::free_block*>(base_ + offset);
    }

    // ---- the lock ----------------------------------------------------------------------

    /// Holds the table mutex. Recovers it when its previous holder died, and
    /// repairs the table whenever an update was left unfinished.
    class lock_guard {
    public:
        explicit lock_guard(const shm_table& table) : table_(table) {
            pthread_mutex_t* m = &table.header().table_mutex;
            const auto ms = table.lock_timeout_.count();
            int rc = detail::lock_robust_mutex(m, table.lock_timeout_, table.lock_kind_);
            if (rc == EOWNERDEAD) {
                // The holder died; `dirty` says whether it was mid-update.
                // Mark the mutex usable first so that a failed repair below
                // still leaves a working lock (and `dirty` set for the next).
                pthread_mutex_consistent(m);
                rc = 0;
            }
            if (rc == ETIMEDOUT)
                throw timeout_error("could not lock the table of segment '" + table.segment_name_ +
                                    "' within " + std::to_string(ms) +
                                    " ms: a process holding it is stopped or stuck");
            if (rc == ENOTRECOVERABLE)
                throw corrupted_error("the table lock of segment '" + table.segment_name_ +
                                      "' is unrecoverable: a previous holder died and the lock was "
                                      "released without being made consistent");
            if (rc != 0)
                throw corrupted_error("cannot lock the table of segment '" + table.segment_name_ +
                                      "': " + std::string(std::strerror(rc)) + " (the lock word is damaged)");
            try {
                if (table.state().dirty != 0 || !table.state_plausible()) table.repair();
            } catch (...) {
                detail::unlock_robust_mutex(m, table.lock_kind_);
                throw;
            }
        }
        ~lock_guard() { detail::unlock_robust_mutex(&table_.header().table_mutex, table_.lock_kind_); }
        lock_guard(const lock_guard&) = delete;
        lock_guard& operator=(const lock_guard&) = delete;

    private:
        const shm_table& table_;
    };

    /// Cheap range checks of the bookkeeping, run at every lock: garbage in
    /// any of these triggers a rebuild from the entries.
    bool state_plausible() const noexcept {
        const auto& g = geometry_;
        const auto& s = state();
        return s.entries_high_water <= g.table_capacity && s.used_entries <= s.entries_high_water &&
               s.free_entry_head <= s.entries_high_water && s.index_tombstones <= g.index_slots &&
               s.heap_top >= g.heap_offset && s.heap_top <= total_size_ && s.heap_top % g.alignment == 0 &&
               (s.heap_free_head == 0 ||
                (s.heap_free_head >= g.heap_offset && s.heap_free_head < s.heap_top)) &&
               s.heap_clean_from >= g.heap_offset;
    }

    // A process may die between any two stores; the only order that matters
    // is the program order of this process's stores (the kernel makes them
    // visible before the robust mutex reports the death), so compiler
    // barriers are enough.
    void begin_update() const noexcept {
        state().dirty = 1;
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    void end_update() const noexcept {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        state().dirty = 0;
    }

    /// Runs `op`; when it finds derived state damaged, rebuilds it from the
    /// entries and runs it once more. Caller holds the lock.
    template <class Op>
    std::invoke_result_t<Op&> with_repair(Op&& op) const {
        try {
            return op();
        } catch (const detail::derived_state_damaged&) {
            repair();
            try {
                return op();
            } catch (const detail::derived_state_damaged&) {
                throw corrupted_error("the table of segment '" + segment_name_ +
                                      "' is still inconsistent after a rebuild");
            }
        }
    }

    // ---- messages ---------------------------------------------------------------------

    std::string describe(std::string_view name) const {
        return "structure '" + std::string(name) + "' in segment '" + segment_name_ + "'";
    }

    static std::string describe_type(structure_kind kind, std::string_view type_name, std::uint32_t size,
                                     std::uint32_t align) {
        return std::string(to_string(kind)) + "<" + readable_type_name(type_name) + "> (element size " +
               std::to_string(size) + ", align " + std::to_string(align) + ")";
    }

    static std::string entry_type_name(const detail::table_entry& e) {
        return {e.type_name, ::strnlen(e.type_name, sizeof e.type_name)};
    }

    static std::string describe_entry(const detail::table_entry& e) {
        return describe_type(static_cast<structure_kind>(e.kind), entry_type_name(e), e.element_size,
                             e.element_align) +
               " of capacity " + std::to_string(e.capacity);
    }

    structure_info info_of(const detail::table_entry& e) const {
        return {std::string(e.name, ::strnlen(e.name, sizeof e.name)),
                static_cast<structure_kind>(e.kind),
                e.capacity,
                e.element_size,
                e.element_align,
                readable_type_name(entry_type_name(e)),
                e.type_hash,
                e.block_offset,
                e.block_bytes,
                e.serial};
    }

    // ---- entries ----------------------------------------------------------------------

    /// Why a used entry cannot be trusted, or nullopt.
    std::optional<std::string> entry_problem(const detail::table_entry& e) const {
        std::size_t name_length = ::strnlen(e.name, sizeof e.name);
        if (name_length == sizeof e.name) return "its name is not terminated";
        std::string_view name(e.name, name_length);
        if (!is_valid_structure_name(name)) return "its name is invalid";
        if (e.name_hash != detail::fnv1a64(name)) return "its name hash does not match its name";
        if (!is_known_kind(e.kind)) return "unknown kind " + std::to_string(e.kind);
        if (::strnlen(e.type_name, sizeof e.type_name) == sizeof e.type_name)
            return "its type name is not terminated";
        if (e.element_size == 0 || !detail::is_power_of_two(e.element_align) ||
            e.element_align > max_structure_alignment)
            return "invalid element size or alignment";
        if (e.capacity == 0) return "capacity 0";
        if (e.block_offset < geometry_.heap_offset || e.block_offset % geometry_.alignment != 0 ||
            e.block_bytes == 0 || e.block_bytes % geometry_.alignment != 0 ||
            !detail::range_within(e.block_offset, e.block_bytes, total_size_))
            return "its block [" + std::to_string(e.block_offset) + ", +" + std::to_string(e.block_bytes) +
                   ") lies outside the heap";
        return std::nullopt;
    }

    const detail::table_entry& checked_entry(std::uint32_t index) const {
        const detail::table_entry& e = entries()[index];
        if (auto problem = entry_problem(e))
            throw corrupted_error("table entry " + std::to_string(index) + " of segment '" + segment_name_ +
                                  "' is damaged: " + *problem);
        return e;
    }

    /// True when [offset, offset + bytes) overlaps the block of a used or
    /// quarantined entry: the free list or heap_top lie.
    bool overlaps_a_block(std::uint64_t offset, std::uint64_t bytes) const noexcept {
        const std::uint32_t high_water = std::min(state().entries_high_water, geometry_.table_capacity);
        for (std::uint32_t i = 0; i < high_water; ++i) {
            const detail::table_entry& e = entries()[i];
            // (Bounds outside the mapping are an entry's own damage, which
            // the repair quarantines; they hold nothing to protect.)
            if (e.state == detail::entry_free ||
                !detail::range_within(e.block_offset, e.block_bytes, total_size_))
                continue;
            if (e.block_offset < offset + bytes && offset < e.block_offset + e.block_bytes) return true;
        }
        return false;
    }

    std::uint32_t take_free_entry() const {
        auto& s = state();
        if (s.free_entry_head != 0) {
            std::uint32_t index = s.free_entry_head - 1;
            if (index >= s.entries_high_water || entries()[index].state != detail::entry_free)
                throw detail::derived_state_damaged{};
            s.free_entry_head = entries()[index].next_free;
            return index;
        }
        if (s.entries_high_water >= geometry_.table_capacity ||
            entries()[s.entries_high_water].state != detail::entry_free)
            throw detail::derived_state_damaged{};
        return s.entries_high_water++;
    }

    /// Marks the entry free: the single store that removes a structure.
    void unpublish(std::uint32_t index) const {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        entries()[index].state = detail::entry_free;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        --state().used_entries;
    }

    void chain_free_entry(std::uint32_t index) const {
        entries()[index].next_free = state().free_entry_head;
        state().free_entry_head = index + 1;
    }

    static bool same_name(const detail::table_entry& a, const detail::table_entry& b) noexcept {
        const std::size_t length = ::strnlen(a.name, sizeof a.name);
        return a.name_hash == b.name_hash && length == ::strnlen(b.name, sizeof b.name) &&
               std::memcmp(a.name, b.name, length) == 0;
    }

    // ---- index ------------------------------------------------------------------------

    struct probe_result {
        std::optional<std::uint32_t> entry;  ///< the entry holding the name
        std::uint32_t slot;                  ///< its slot, or where to insert it
    };

    probe_result probe(std::string_view name, std::uint64_t hash) const {
        const std::uint32_t slots = geometry_.index_slots;
        const std::uint32_t mask = slots - 1;
        const std::uint32_t* index = index_slots();
        std::optional<std::uint32_t> first_tombstone;
        std::uint32_t i = static_cast<std::uint32_t>(hash) & mask;
        for (std::uint32_t step = 0; step < slots; ++step, i = (i + 1) & mask) {
            std::uint32_t v = index[i];
            if (v == detail::index_empty) return {std::nullopt, first_tombstone.value_or(i)};
            if (v == detail::index_tombstone) {
                if (!first_tombstone) first_tombstone = i;
                continue;
            }
            std::uint32_t e = v - 1;
            if (e >= geometry_.table_capacity) throw detail::derived_state_damaged{};
            const detail::table_entry& entry = entries()[e];
            if (entry.state != detail::entry_used) throw detail::derived_state_damaged{};
            if (entry.name_hash == hash && ::strnlen(entry.name, sizeof entry.name) == name.size() &&
                std::memcmp(entry.name, name.data(), name.size()) == 0)
                return {e, i};
        }
        // Every slot is live or a tombstone: only damage can do that, because
        // insert_into_index keeps them under three quarters.
        throw detail::derived_state_damaged{};
    }

    void insert_into_index(std::uint32_t slot, std::uint32_t entry) const {
        std::uint32_t& v = index_slots()[slot];
        if (v == detail::index_tombstone) --state().index_tombstones;
        v = entry + 1;
        const auto& s = state();
        if ((s.used_entries + s.index_tombstones) * 4 > std::uint64_t{geometry_.index_slots} * 3)
            state().used_entries = rebuild_index();
    }

    void remove_from_index(std::uint32_t slot) const {
        const std::uint32_t mask = geometry_.index_slots - 1;
        std::uint32_t* index = index_slots();
        if (index[(slot + 1) & mask] != detail::index_empty) {
            index[slot] = detail::index_tombstone;
            ++state().index_tombstones;
            return;
        }
        // Nothing probes past an empty slot, so this slot and the tombstones
        // right before it can become empty.
        index[slot] = detail::index_empty;
        for (std::uint32_t i = (slot - 1) & mask; index[i] == detail::index_tombstone; i = (i - 1) & mask) {
            index[i] = detail::index_empty;
            --state().index_tombstones;
        }
    }

    /// Re-inserts every used entry; a second entry with a name already
    /// inserted is quarantined. Returns the number inserted.
    std::uint64_t rebuild_index() const {
        std::uint32_t* index = index_slots();
        std::fill_n(index, geometry_.index_slots, detail::index_empty);
        state().index_tombstones = 0;
        const std::uint32_t mask = geometry_.index_slots - 1;
        const std::uint32_t high_water = std::min(state().entries_high_water, geometry_.table_capacity);
        std::uint64_t inserted = 0;
        for (std::uint32_t e = 0; e < high_water; ++e) {
            detail::table_entry& entry = entries()[e];
            if (entry.state != detail::entry_used) continue;
            std::uint32_t i = static_cast<std::uint32_t>(entry.name_hash) & mask;
            bool duplicate = false;
            // Fewer entries than slots, so an empty slot comes; the bound is
            // for a process writing into the index meanwhile.
            for (std::uint32_t step = 0; index[i] != detail::index_empty && !duplicate; ++step) {
                const std::uint32_t other = index[i] - 1;
                if (step == geometry_.index_slots || other >= geometry_.table_capacity)
                    throw corrupted_error("the index of segment '" + segment_name_ +
                                          "' changed while its lock was held");
                duplicate = same_name(entries()[other], entry);
                i = (i + 1) & mask;
            }
            if (duplicate) {
                entry.state = detail::entry_quarantined;
                continue;
            }
            index[i] = e + 1;
            ++inserted;
        }
        return inserted;
    }

    // ---- heap -------------------------------------------------------------------------

    /// Calls visit(offset, node) with a checked copy of each free block, in
    /// address order, until it returns true. Returns the offset of the last
    /// block visited (0 if none). Each node is read once, so what is checked
    /// is what is used even if another process scribbles on it meanwhile.
    template <class Visit>
    std::uint64_t walk_free_list(Visit&& visit) const {
        const auto& g = geometry_;
        const std::uint64_t top = state().heap_top;
        if (top < g.heap_offset || top > total_size_ || top % g.alignment != 0)
            throw detail::derived_state_damaged{};
        std::uint64_t lowest_next = g.heap_offset;
        std::uint64_t last = 0;
        for (std::uint64_t at = state().heap_free_head; at != 0;) {
            // Strictly increasing offsets inside the heap: a damaged chain
            // can neither loop nor leave the mapping.
            if (at < lowest_next || at % g.alignment != 0 ||
                !detail::range_within(at, sizeof(detail::free_block), top))
                throw detail::derived_state_damaged{};
            const detail::free_block node = free_block_at(at);
            if (node.bytes == 0 || node.bytes % g.alignment != 0 ||
                !detail::range_within(at, node.bytes, top))
                throw detail::derived_state_damaged{};
            last = at;
            if (visit(at, node)) return at;
            lowest_next = at + node.bytes;
            at = node.next;
        }
        return last;
    }

    struct heap_fit {
        std::uint64_t start;           ///< where the block goes
        std::uint64_t node;            ///< free block it is carved from; 0 = from the top
        detail::free_block node_copy;  ///< that block as checked
        std::uint64_t prev_node;       ///< node before `node` (or the last node when from the top)
    };

    /// First fit for `bytes` aligned to `align`; nullopt when nothing fits.
    /// Reads only.
    std::optional<heap_fit> find_fit(std::uint64_t bytes, std::uint64_t align) const {
        std::uint64_t prev = 0;
        std::optional<heap_fit> fit;
        std::uint64_t last = walk_free_list([&](std::uint64_t at, const detail::free_block& node) {
            std::uint64_t start = detail::align_up(at, align);
            if (start - at <= node.bytes && bytes <= node.bytes - (start - at)) {
                fit = heap_fit{start, at, node, prev};
                return true;
            }
            prev = at;
            return false;
        });
        if (fit) return fit;
        std::uint64_t start = detail::align_up(state().heap_top, align);
        if (!detail::range_within(start, bytes, total_size_)) return std::nullopt;
        return heap_fit{start, 0, {}, last};
    }

    void link_after(std::uint64_t prev, std::uint64_t node) const {
        if (prev == 0)
            state().heap_free_head = node;
        else
            free_block_at(prev).next = node;
    }

    /// Takes the block chosen by find_fit. Caller has begun an update.
    void carve(const heap_fit& fit, std::uint64_t bytes) const {
        auto& s = state();
        const std::uint64_t end = fit.start + bytes;
        if (fit.node == 0) {
            const std::uint64_t gap = fit.start - s.heap_top;
            // Note the high-water mark before writing anything above it.
            s.heap_clean_from = std::max(s.heap_clean_from, end);
            if (gap != 0) {
                free_block_at(s.heap_top) = {gap, 0};
                link_after(fit.prev_node, s.heap_top);
            }
            s.heap_top = end;
            return;
        }
        const std::uint64_t node_end = fit.node + fit.node_copy.bytes;
        std::uint64_t next = fit.node_copy.next;
        if (end < node_end) {
            free_block_at(end) = {node_end - end, next};
            next = end;
        }
        if (fit.start > fit.node) {
            free_block_at(fit.node) = {fit.start - fit.node, next};
        } else {
            link_after(fit.prev_node, next);
        }
    }

    /// Returns [offset, offset + bytes) to the heap, merging with neighbours
    /// and lowering heap_top when it is the last block. Caller has begun an
    /// update. Validates the free list before writing anything.
    void free_block(std::uint64_t offset, std::uint64_t bytes) const {
        auto& s = state();
        struct neighbour {
            std::uint64_t at = 0;
            detail::free_block node{};
        } before_prev, prev, next;
        walk_free_list([&](std::uint64_t at, const detail::free_block& node) {
            if (at > offset) {
                next = {at, node};
                return true;
            }
            before_prev = prev;
            prev = {at, node};
            return false;
        });
        std::uint64_t end = offset + bytes;
        // A free block overlapping the one being freed means the list lies.
        if ((prev.at != 0 && prev.at + prev.node.bytes > offset) || (next.at != 0 && next.at < end) ||
            end > s.heap_top)
            throw detail::derived_state_damaged{};
        const bool merge_prev = prev.at != 0 && prev.at + prev.node.bytes == offset;
        const std::uint64_t start = merge_prev ? prev.at : offset;
        std::uint64_t after = next.at;
        if (next.at != 0 && next.at == end) {
            end = next.at + next.node.bytes;
            after = next.node.next;
        }
        if (end == s.heap_top) {
            // The merged block is the topmost: give it back to the top.
            s.heap_top = start;
            link_after(merge_prev ? before_prev.at : prev.at, 0);
            return;
        }
        free_block_at(start) = {end - start, after};
        if (!merge_prev) link_after(prev.at, start);
    }

    // ---- create and open --------------------------------------------------------------

    template <class Layout>
    std::size_t checked_bytes(std::string_view name, std::uint64_t capacity,
                              const type_fingerprint& type) const {
        if (capacity == 0)
            throw invalid_argument_error(errc::invalid_size,
                                         "cannot create " + describe(name) + " with capacity 0");
        auto bytes = Layout::bytes_for(capacity);
        if (!bytes)
            throw invalid_argument_error(errc::invalid_size,
                                         "cannot create " + describe(name) + ": capacity " +
                                             std::to_string(capacity) + " x " + std::to_string(type.size) +
                                             "-byte elements overflows the address space");
        return *bytes;
    }

    template <class Layout>
    detail::opened_block open_existing(std::string_view name, std::uint32_t index, std::uint64_t capacity,
                                       const type_fingerprint& type, std::size_t align) const {
        const detail::table_entry& e = checked_entry(index);
        const auto wanted = describe_type(Layout::kind, type.name, type.size, type.align);
        if (e.kind != static_cast<std::uint32_t>(Layout::kind))
            throw mismatch_error(errc::kind_mismatch,
                                 describe(name) + " is a " + describe_entry(e) + ", not a " + wanted);
        if (e.element_size != type.size || e.element_align != type.align || e.type_hash != type.name_hash)
            throw mismatch_error(errc::type_mismatch, describe(name) + " holds " + describe_entry(e) +
                                                          ", but was opened as " + wanted);
        if (capacity != 0 && capacity != e.capacity)
            throw mismatch_error(errc::capacity_mismatch, describe(name) + " has capacity " +
                                                              std::to_string(e.capacity) + ", but capacity " +
                                                              std::to_string(capacity) + " was requested");
        auto needed = Layout::bytes_for(e.capacity);
        if (!needed || *needed > e.block_bytes || e.block_offset % align != 0)
            throw corrupted_error(describe(name) + " is damaged: its block of " +
                                  std::to_string(e.block_bytes) + " bytes cannot hold capacity " +
                                  std::to_string(e.capacity));
        return {base_ + e.block_offset, e.capacity, e.serial, false};
    }

    template <class Layout>
    detail::opened_block create(std::string_view name, std::uint64_t hash, std::uint32_t slot,
                                std::uint64_t capacity, const type_fingerprint& type, std::size_t bytes,
                                std::size_t align) const {
        auto& s = state();
        if (s.free_entry_head == 0 && s.entries_high_water >= geometry_.table_capacity)
            throw out_of_space_error(errc::table_full,
                                     "cannot create " + describe(name) + ": the table is full (" +
                                         std::to_string(geometry_.table_capacity) +
                                         " entries; choose a larger table_capacity at creation)");
        auto block_bytes = detail::checked_align_up(bytes, geometry_.alignment);
        auto fit = block_bytes ? find_fit(*block_bytes, align) : std::nullopt;
        if (!fit)
            throw out_of_space_error(errc::segment_full, "cannot create " + describe(name) + ": it needs " +
                                                             std::to_string(bytes) +
                                                             " bytes and the segment has no free "
                                                             "block that large");
        // The free list and heap_top are derived state that passed only range
        // checks: before writing anything there, make sure no structure's
        // block lies in what is about to be written (the block, and the
        // free-block headers carve writes around it).
        if (fit->node != 0 ? overlaps_a_block(fit->node, fit->node_copy.bytes)
                           : overlaps_a_block(s.heap_top, fit->start + *block_bytes - s.heap_top))
            throw detail::derived_state_damaged{};

        begin_update();
        const std::uint32_t index = take_free_entry();
        SHMDS_FAULT_POINT("table.create.entry_taken");
        // Pages above the high-water mark are still the zeros posix_fallocate
        // gave; only memory used before needs clearing.
        const std::uint64_t clean_from = s.heap_clean_from;
        carve(*fit, *block_bytes);
        SHMDS_FAULT_POINT("table.create.block_taken");
        std::byte* block = base_ + fit->start;
        const std::uint64_t dirty_end = std::min<std::uint64_t>(fit->start + *block_bytes, clean_from);
        if (dirty_end > fit->start) std::memset(block, 0, dirty_end - fit->start);
        Layout::initialise(block, capacity);
        SHMDS_FAULT_POINT("table.create.initialised");

        detail::table_entry& e = entries()[index];
        e = detail::table_entry{};
        e.kind = static_cast<std::uint32_t>(Layout::kind);
        e.name_hash = hash;
        std::memcpy(e.name, name.data(), name.size());
        e.block_offset = fit->start;
        e.block_bytes = *block_bytes;
        e.capacity = capacity;
        e.element_size = type.size;
        e.element_align = type.align;
        e.type_hash = type.name_hash;
        e.serial = s.next_serial++;
        std::memcpy(e.type_name, type.name.data(), std::min(type.name.size(), sizeof e.type_name - 1));
        std::atomic_signal_fence(std::memory_order_seq_cst);
        e.state = detail::entry_used;  // published: every field above is written
        std::atomic_signal_fence(std::memory_order_seq_cst);
        SHMDS_FAULT_POINT("table.create.published");
        ++s.used_entries;
        insert_into_index(slot, index);
        SHMDS_FAULT_POINT("table.create.indexed");
        end_update();
        return {block, capacity, e.serial, true};
    }

    // ---- repair -----------------------------------------------------------------------

    /// Rebuilds everything derived from the entries. Caller holds the lock.
    /// Never gives up on the table: an entry that fails validation, overlaps
    /// another or repeats a name is quarantined (no longer findable; its
    /// block stays out of use when its bounds are sane), and everything else
    /// goes on working.
    void repair() const {
        begin_update();
        const auto& g = geometry_;
        auto& s = state();
        struct used_block {
            std::uint64_t offset;
            std::uint64_t bytes;
            std::uint32_t entry;
        };
        auto by_offset = [](const used_block& a, const used_block& b) { return a.offset < b.offset; };
        std::vector<used_block> healthy;
        std::vector<used_block> quarantined;
        std::uint32_t high_water = 0;
        for (std::uint32_t i = 0; i < g.table_capacity; ++i) {
            detail::table_entry& e = entries()[i];
            if (e.state == detail::entry_free) continue;
            high_water = i + 1;
            const used_block block{e.block_offset, e.block_bytes, i};
            if (e.state == detail::entry_used && !entry_problem(e)) {
                healthy.push_back(block);
            } else {
                e.state = detail::entry_quarantined;
                quarantined.push_back(block);
            }
        }

        // Blocks to keep out of use: healthy ones first; then quarantined
        // ones whose bounds are sane and that overlap nothing kept. Healthy
        // blocks that overlap mean an entry lies about its block: quarantine
        // the one overlapping the most others (a block_offset or block_bytes
        // written over usually lands on several honest neighbours), again
        // until none overlap; on a tie, the one further into the heap.
        std::sort(healthy.begin(), healthy.end(), by_offset);
        auto overlap = [](const used_block& a, const used_block& b) {
            return a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
        };
        std::vector<std::uint32_t> overlaps(healthy.size(), 0);
        for (std::size_t i = 0; i < healthy.size(); ++i)
            for (std::size_t j = i + 1; j < healthy.size() && overlap(healthy[i], healthy[j]); ++j) {
                ++overlaps[i];
                ++overlaps[j];
            }
        std::vector<bool> dropped(healthy.size(), false);
        for (;;) {
            std::size_t worst = healthy.size();
            for (std::size_t i = 0; i < healthy.size(); ++i)
                if (!dropped[i] && overlaps[i] != 0 &&
                    (worst == healthy.size() || overlaps[i] >= overlaps[worst]))
                    worst = i;
            if (worst == healthy.size()) break;
            dropped[worst] = true;
            entries()[healthy[worst].entry].state = detail::entry_quarantined;
            for (std::size_t j = 0; j < healthy.size(); ++j)
                if (j != worst && !dropped[j] && overlap(healthy[worst], healthy[j])) --overlaps[j];
        }
        std::vector<used_block> kept;
        for (std::size_t i = 0; i < healthy.size(); ++i)
            if (!dropped[i]) kept.push_back(healthy[i]);
        const std::size_t healthy_kept = kept.size();
        for (const used_block& q : quarantined) {
            if (q.offset < g.heap_offset || q.offset % g.alignment != 0 || q.bytes == 0 ||
                q.bytes % g.alignment != 0 || !detail::range_within(q.offset, q.bytes, total_size_))
                continue;
            if (std::none_of(kept.begin(), kept.end(), [&](const used_block& k) { return overlap(q, k); }))
                kept.push_back(q);
        }
        if (kept.size() != healthy_kept) std::sort(kept.begin(), kept.end(), by_offset);

        // The heap: gaps between kept blocks become the free list.
        s.heap_free_head = 0;
        std::uint64_t cursor = g.heap_offset;
        std::uint64_t last_free = 0;
        for (const used_block& b : kept) {
            if (b.offset > cursor) {
                free_block_at(cursor) = {b.offset - cursor, 0};
                link_after(last_free, cursor);
                last_free = cursor;
            }
            cursor = b.offset + b.bytes;
        }
        s.heap_top = cursor;
        SHMDS_FAULT_POINT("table.repair.heap_rebuilt");
        // Whoever died may have written anywhere it had claimed: trust no
        // memory to be zero any more.
        s.heap_clean_from = total_size_;

        // Entries: free ones below the high-water mark are chained for reuse.
        s.entries_high_water = high_water;
        s.free_entry_head = 0;
        for (std::uint32_t i = high_water; i-- > 0;)
            if (entries()[i].state == detail::entry_free) chain_free_entry(i);
        s.used_entries = rebuild_index();
        if (s.next_serial == 0) s.next_serial = 1;
        end_update();
    }

    std::byte* base_;
    std::size_t total_size_;
    detail::segment_geometry geometry_;
    std::string segment_name_;
    std::chrono::milliseconds lock_timeout_;
    int lock_kind_;  ///< what the lock's kind word must hold (robust_mutex_kind())
};

}  // namespace shmds
