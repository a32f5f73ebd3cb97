// shmds/shm_table.hpp: the directory of named structures inside one segment.
//
// The pieces: the table's bytes and the checks of an entry
// (detail/table_view.hpp), the name index (detail/table_index.hpp), the heap
// allocator (detail/table_heap.hpp) and the rebuild after a crash or damage
// (detail/table_repair.hpp). This class owns the lock and the public
// operations, and is the only one that decides when the others run. (It is
// just over the project's 450-line limit on purpose: what is left here is
// the order of those steps under the lock, which create, open, destroy and
// the lookups must keep alike, so it stays in one file to be checked whole.)
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
// Find and create cost O(1) on average (see detail/table_index.hpp).
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
#include "shmds/detail/table_heap.hpp"
#include "shmds/detail/table_index.hpp"
#include "shmds/detail/table_repair.hpp"
#include "shmds/detail/table_view.hpp"
#include "shmds/element.hpp"
#include "shmds/error.hpp"
#include "shmds/names.hpp"
#include "shmds/open_mode.hpp"
#include "shmds/structure_info.hpp"
#include "shmds/structure_kind.hpp"

namespace shmds {

class shm_table : private detail::table_view {
public:
    /// A view of the table of the ready segment mapped at `base`, whose
    /// identity has been validated (posix_shm does this). Bounds come from
    /// that private copy, so a process that later scribbles over the header
    /// cannot move this process's bounds.
    shm_table(std::byte* base, const detail::segment_identity& validated, std::string segment_name,
              std::chrono::milliseconds lock_timeout) noexcept
        : detail::table_view{base, validated.total_size,
                             *detail::compute_geometry(validated.alignment, validated.table_capacity)},
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
        return lookup(name, [](const detail::table_entry& e) { return detail::info_of(e); });
    }

    /// Finds `name` as find does, and returns where the structure lies and
    /// what it holds, without its names: allocates nothing. Any process;
    /// blocks only for the table lock; the same errors as find.
    [[nodiscard]] std::optional<structure_location> locate(std::string_view name) const {
        return lookup(name, [](const detail::table_entry& e) { return detail::location_of(e); });
    }

    /// True when `name` names a structure (locate, for a yes or no).
    [[nodiscard]] bool contains(std::string_view name) const { return locate(name).has_value(); }

    /// Every structure, in entry order. Any process.
    [[nodiscard]] std::vector<structure_info> list() const {
        lock_guard lock(*this);
        std::vector<structure_info> out;
        for (std::uint32_t i = 0; i < state().entries_high_water && i < geometry_.table_capacity; ++i)
            if (entries()[i].state == detail::entry_used) out.push_back(detail::info_of(checked_entry(i)));
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
            auto hit = name_index().probe(name, detail::fnv1a64(name));
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
            if (!damaged) heap().walk_free_list([](std::uint64_t, const detail::free_block&) { return false; });
            begin_update();
            unpublish(index);  // the commit point: from here on the structure is gone
            SHMDS_FAULT_POINT("table.destroy.unpublished");
            if (damaged) {
                repair();  // its block's bounds cannot be trusted: rebuild the heap from the others
                return;
            }
            try {
                heap().release(offset, bytes);
            } catch (const detail::derived_state_damaged&) {
                repair();
                return;
            }
            SHMDS_FAULT_POINT("table.destroy.block_freed");
            name_index().remove(hit.slot);
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
                out.push_back(detail::info_of(e));
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
            heap().walk_free_list([&](std::uint64_t, const detail::free_block& node) {
                total += node.bytes;
                return false;
            });
            return static_cast<std::size_t>(total);
        });
    }

    [[nodiscard]] const std::string& segment_name() const noexcept { return segment_name_; }

    /// Finds or creates the structure described by `request` with the layout
    /// `Layout`. Used by the structure classes; any process. A structure is
    /// published fully initialised or not at all. `parameter` goes to a new
    /// block's Layout::initialise when that takes one (the message queue's
    /// largest message); checking it against an existing block is the
    /// structure's business.
    template <detail::structure_layout Layout>
    detail::opened_block open(std::string_view name, open_mode mode, std::uint64_t capacity,
                              const type_fingerprint& type, std::uint64_t parameter = 0) {
        detail::check_structure_name(segment_name_, name);
        std::size_t bytes = 0;
        if (mode != open_mode::open_only) bytes = checked_bytes<Layout>(name, capacity, type);
        const std::size_t align = std::max<std::size_t>(Layout::block_alignment, geometry_.alignment);
        const std::uint64_t hash = detail::fnv1a64(name);

        lock_guard lock(*this);
        return with_repair([&]() -> detail::opened_block {
            auto hit = name_index().probe(name, hash);
            if (hit.entry) {
                if (mode == open_mode::create_only)
                    throw already_exists_error(describe(name) + " already exists as " +
                                               detail::describe_entry(entries()[*hit.entry]));
                return open_existing<Layout>(name, *hit.entry, capacity, type, align);
            }
            if (mode == open_mode::open_only)
                throw not_found_error(describe(name) + " does not exist (segment holds " +
                                      std::to_string(state().used_entries) + " structures)");
            return create<Layout>(name, hash, hit.slot, capacity, type, bytes, align, parameter);
        });
    }

private:
    /// What `describe` makes of the entry `name` names, or nullopt when
    /// there is none: find and locate, which differ only in that.
    template <class Describe>
    auto lookup(std::string_view name, Describe describe) const
        -> std::optional<std::invoke_result_t<Describe&, const detail::table_entry&>> {
        using described = std::invoke_result_t<Describe&, const detail::table_entry&>;
        detail::check_structure_name(segment_name_, name);
        lock_guard lock(*this);
        return with_repair([&]() -> std::optional<described> {
            auto hit = name_index().probe(name, detail::fnv1a64(name));
            if (!hit.entry) return std::nullopt;
            return describe(found_entry(*hit.entry));
        });
    }

    // ---- the lock ----------------------------------------------------------------------

    /// Holds the table mutex. Recovers it when its previous holder died, and
    /// repairs the table whenever an update was left unfinished.
    class lock_guard {
    public:
        explicit lock_guard(const shm_table& table) : table_(table) {
            SHMDS_FAULT_POINT("table.lock.about_to_take");
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

    // ---- entries ----------------------------------------------------------------------

    const detail::table_entry& checked_entry(std::uint32_t index) const {
        const detail::table_entry& e = entries()[index];
        if (auto problem = entry_problem(e)) throw_damaged_entry(index, *problem);
        return e;
    }

    /// checked_entry for the entry a probe just matched (its name needs no
    /// second look: fault_of).
    const detail::table_entry& found_entry(std::uint32_t index) const {
        const detail::table_entry& e = entries()[index];
        if (const entry_fault fault = fault_of(e, true); fault != entry_fault::none) [[unlikely]]
            throw_damaged_entry(index, describe_fault(fault, e));
        return e;
    }

    [[noreturn, gnu::cold]] void throw_damaged_entry(std::uint32_t index, const std::string& problem) const {
        throw corrupted_error("table entry " + std::to_string(index) + " of segment '" + segment_name_ +
                              "' is damaged: " + problem);
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
        const detail::table_entry& e = found_entry(index);
        // (Described only for a message: opening allocates nothing.)
        const auto wanted = [&] {
            return detail::describe_type(Layout::kind, type.name, type.size, type.align);
        };
        if (e.kind != static_cast<std::uint32_t>(Layout::kind))
            throw mismatch_error(errc::kind_mismatch, describe(name) + " is a " + detail::describe_entry(e) +
                                                          ", not a " + wanted());
        if (e.element_size != type.size || e.element_align != type.align || e.type_hash != type.name_hash)
            throw mismatch_error(errc::type_mismatch, describe(name) + " holds " + detail::describe_entry(e) +
                                                          ", but was opened as " + wanted());
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
                                std::size_t align, std::uint64_t parameter) const {
        auto& s = state();
        if (s.free_entry_head == 0 && s.entries_high_water >= geometry_.table_capacity)
            throw out_of_space_error(errc::table_full,
                                     "cannot create " + describe(name) + ": the table is full (" +
                                         std::to_string(geometry_.table_capacity) +
                                         " entries; choose a larger table_capacity at creation)");
        auto block_bytes = detail::checked_align_up(bytes, geometry_.alignment);
        auto fit = block_bytes ? heap().find_fit(*block_bytes, align) : std::nullopt;
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
        heap().carve(*fit, *block_bytes);
        SHMDS_FAULT_POINT("table.create.block_taken");
        std::byte* block = base_ + fit->start;
        const std::uint64_t dirty_end = std::min<std::uint64_t>(fit->start + *block_bytes, clean_from);
        if (dirty_end > fit->start) std::memset(block, 0, dirty_end - fit->start);
        if constexpr (requires { Layout::initialise(block, capacity, parameter); })
            Layout::initialise(block, capacity, parameter);
        else
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
        name_index().insert(slot, index, segment_name_);
        SHMDS_FAULT_POINT("table.create.indexed");
        end_update();
        return {block, capacity, e.serial, true};
    }

    // ---- the pieces ----------------------------------------------------------------

    detail::table_index name_index() const noexcept { return detail::table_index(*this); }
    detail::table_heap heap() const noexcept { return detail::table_heap(*this); }
    void repair() const { detail::repair_table(*this, segment_name_); }

    std::string segment_name_;
    std::chrono::milliseconds lock_timeout_;
    int lock_kind_;  ///< what the lock's kind word must hold (robust_mutex_kind())
};

}  // namespace shmds
