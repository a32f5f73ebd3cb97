// conformance/adapters/shmds_adapter.hpp: the project's own library under
// the conformance contract (shmconf/contract.hpp). Every structure variant.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shmds/shmds.hpp>

#include "shmconf/contract.hpp"

namespace shmconf_adapters {

struct shmds_library {
    static std::string name() { return "shmds"; }
    static constexpr shmconf::capabilities caps{.array = true,
                                                .queue = true,
                                                .spsc_queue = true,
                                                .mpmc_queue = true,
                                                .stack = true,
                                                .concurrent_stack = true,
                                                .cleans_up_after_crashed_attachers = true,
                                                .locks_survive_owner_death = true,
                                                .checks_element_types = true,
                                                .reserves_memory_at_creation = true,
                                                .checks_spsc_roles = true,
                                                .message_queue = true};

    static shmconf::error_category categorize(const std::exception_ptr& e) {
        using shmconf::error_category;
        try {
            std::rethrow_exception(e);
        } catch (const shmds::error& x) {
            switch (x.code()) {
                case shmds::errc::invalid_name:
                    return error_category::invalid_name;
                case shmds::errc::invalid_size:
                    return error_category::invalid_size;
                case shmds::errc::not_found:
                    return error_category::not_found;
                case shmds::errc::already_exists:
                    return error_category::already_exists;
                case shmds::errc::kind_mismatch:
                case shmds::errc::type_mismatch:
                case shmds::errc::capacity_mismatch:
                case shmds::errc::size_mismatch:
                    return error_category::mismatch;
                case shmds::errc::table_full:
                case shmds::errc::segment_full:
                    return error_category::out_of_space;
                case shmds::errc::corrupted:
                    return error_category::corrupted;
                case shmds::errc::timeout:
                    return error_category::timeout;
                case shmds::errc::role_taken:
                    return error_category::role_taken;
                case shmds::errc::untrusted:
                    return error_category::permission_denied;
                default:
                    return error_category::other;
            }
        } catch (const std::out_of_range&) {
            return error_category::out_of_range;
        } catch (const std::system_error& x) {
            if (x.code().value() == ENOSPC) return error_category::out_of_space;
            if (x.code().value() == EACCES || x.code().value() == EPERM)
                return error_category::permission_denied;
            return error_category::other;
        } catch (...) {
            return error_category::other;
        }
    }

    using segment = shmds::posix_shm;
    static segment create(const std::string& n, std::size_t bytes) {
        return segment(shmds::create_only, n, bytes);
    }
    static segment open(const std::string& n) { return segment(shmds::open_only, n); }
    static segment open_or_create(const std::string& n, std::size_t bytes) { return segment(n, bytes); }
    static bool remove(const std::string& n) { return shmds::posix_shm::remove(n); }
    static bool exists(const std::string& n) { return shmds::posix_shm::exists(n); }
    static std::size_t attach_count(segment& s) { return s.attach_count(); }

#ifdef SHMDS_FAULT_INJECTION  // the suite's shmds programs define it (conformance/CMakeLists.txt)
    /// stall_at (shmconf::stalls_at_points), through the library's fault
    /// points: "detach.after_last_check" is "segment.detach.decided" (after
    /// the last-attacher test, before the attach slot is given up),
    /// "create.before_ready" is "segment.create.formatted" (the state word
    /// still says initialising), "wait.announced" is the library's own,
    /// "push.claimed" is the MPMC queue's "mpmc.push.claimed",
    /// "table.before_lock" is "table.lock.about_to_take" (every time the
    /// table's lock is about to be taken), "send.published" the message
    /// queue's "message.send.published" (after the store of tail).
    static bool stall_at(std::string_view point, std::chrono::milliseconds how_long) {
        static constexpr std::pair<std::string_view, const char*> library_points[] = {
            {"detach.after_last_check", "segment.detach.decided"},
            {"create.before_ready", "segment.create.formatted"},
            {"wait.announced", "wait.announced"},
            {"push.claimed", "mpmc.push.claimed"},
            {"table.before_lock", "table.lock.about_to_take"},
            {"send.published", "message.send.published"}};
        for (const auto& [contract_point, library_point] : library_points) {
            if (point != contract_point) continue;
            stall_point_ = library_point;
            stall_for_ = how_long;
            shmds::detail::fault_hook = [](const char* at) {
                if (std::strcmp(at, stall_point_) == 0) std::this_thread::sleep_for(stall_for_);
            };
            return true;
        }
        return false;
    }
    static inline const char* stall_point_ = "";
    static inline std::chrono::milliseconds stall_for_{0};
#endif

    template <class T>
    using array = shmds::shm_array<T>;
    template <class T>
    using queue = shmds::shm_queue<T>;
    template <class T>
    using spsc_queue = shmds::shm_spsc_queue<T>;
    /// The MPMC queue, its count named size_estimate() by the library; the
    /// contract's size() asks no more than a snapshot.
    template <class T>
    struct mpmc_queue : shmds::shm_mpmc_queue<T> {
        using shmds::shm_mpmc_queue<T>::shm_mpmc_queue;
        [[nodiscard]] std::size_t size() const noexcept { return this->size_estimate(); }
    };
    template <class T>
    using stack = shmds::shm_stack<T>;
    template <class T>
    using concurrent_stack = shmds::shm_concurrent_stack<T>;

    using message_queue = shmds::shm_message_queue;
    /// A ring of `capacity` bytes (rounded up to the library's multiple of
    /// 8) for messages of up to `largest` bytes.
    static message_queue make_message_queue(segment& s, const std::string& n, std::size_t capacity,
                                            std::size_t largest) {
        return message_queue(s, n, (capacity + 7) / 8 * 8, largest);
    }
    static message_queue find_message_queue(segment& s, const std::string& n) {
        return message_queue(s, n);
    }

    /// Find or create `name` as S with `capacity` elements.
    template <class S>
    static S make(segment& s, const std::string& n, std::size_t capacity) {
        return S(s, n, capacity);
    }
    /// Open the existing `name` as S.
    template <class S>
    static S find(segment& s, const std::string& n) {
        return S(s, n);
    }
    static void destroy(segment& s, const std::string& n) { s.destroy(n); }

    /// The whole segment mapped read-write through a descriptor of its own,
    /// as another process writing into it would; unmapped when it goes.
    struct hostile_mapping {
        std::byte* bytes = nullptr;
        std::size_t size = 0;
        hostile_mapping(const std::string& segment, const char* who) {
            const int fd = ::shm_open(segment.c_str(), O_RDWR | O_CLOEXEC, 0);
            if (fd < 0)
                throw std::system_error(errno, std::generic_category(), std::string(who) + ": cannot open " + segment);
            struct stat st {};
            const bool sized = ::fstat(fd, &st) == 0 &&
                               static_cast<std::size_t>(st.st_size) >= sizeof(shmds::detail::segment_header);
            size = sized ? static_cast<std::size_t>(st.st_size) : 0;
            void* base = sized ? ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
            ::close(fd);
            if (base == MAP_FAILED) throw std::runtime_error(std::string(who) + ": cannot map " + segment);
            bytes = static_cast<std::byte*>(base);
        }
        ~hostile_mapping() { ::munmap(bytes, size); }
        hostile_mapping(const hostile_mapping&) = delete;
        hostile_mapping& operator=(const hostile_mapping&) = delete;
    };

    /// The hostile writer of BAD-002 and BAD-003: maps the segment's file
    /// itself (shm_open + mmap, as another process would, bypassing the
    /// library) and makes `what` wrong for `structure`:
    ///   format_version  the header's version becomes format_version + 1
    ///   table_entry     the entry's block offset points 2^46 bytes past the
    ///                   base (aligned, far outside any mapping)
    ///   control_block   positions out of range (queue: head; stack and
    ///                   concurrent stack: count; SPSC and message queue:
    ///                   head 3 capacities ahead of tail; MPMC, whose positions are hints the
    ///                   slots correct: both hints 2^40 positions behind)
    /// An array has no control block: std::invalid_argument.
    static void damage_segment(const std::string& segment, const std::string& structure, shmconf::damage what) {
        namespace d = shmds::detail;
        const hostile_mapping mapped(segment, "damage_segment");
        std::byte* const bytes = mapped.bytes;
        auto& header = *reinterpret_cast<d::segment_header*>(bytes);
        if (what == shmconf::damage::format_version) {
            header.identity.version = shmds::format_version + 1;
            return;
        }
        // The entry, by a scan of the table (the index is derived state).
        const d::segment_identity& id = header.identity;
        d::table_entry* entry = nullptr;
        for (std::uint32_t i = 0; i < id.table_capacity && entry == nullptr; ++i) {
            auto* e = reinterpret_cast<d::table_entry*>(bytes + id.entries_offset) + i;
            if (e->state == d::entry_used && std::string_view(e->name, ::strnlen(e->name, sizeof e->name)) == structure)
                entry = e;
        }
        if (entry == nullptr)
            throw std::invalid_argument("damage_segment: segment " + segment + " has no structure '" + structure + "'");
        if (what == shmconf::damage::table_entry) {
            entry->block_offset = std::uint64_t{1} << 46;
            return;
        }
        std::byte* const block = bytes + entry->block_offset;
        const auto kind = static_cast<shmds::structure_kind>(entry->kind);
        auto damage = [&](auto type) { damage_control_block(type, block, structure); };
        shmds::visit_structure_type<std::byte>(kind, damage);
    }

    // damage_segment's control-block damage, one overload per structure.
    template <class E>
    static void damage_control_block(std::type_identity<shmds::shm_array<E>>, std::byte*,
                                     const std::string& name) {
        throw std::invalid_argument("damage_segment: " + name +
                                    " is an shm_array, which has no control block (its block is its elements)");
    }
    template <class E>
    static void damage_control_block(std::type_identity<shmds::shm_queue<E>>, std::byte* block,
                                     const std::string&) {
        auto* c = reinterpret_cast<shmds::detail::ring_control*>(block);
        c->head = c->capacity + 7;
    }
    template <class E>
    static void damage_control_block(std::type_identity<shmds::shm_stack<E>>, std::byte* block,
                                     const std::string&) {
        auto* c = reinterpret_cast<shmds::detail::stack_control*>(block);
        c->count = c->capacity + 7;
    }
    template <class E>
    static void damage_control_block(std::type_identity<shmds::shm_concurrent_stack<E>>, std::byte* block,
                                     const std::string&) {
        auto* c = reinterpret_cast<shmds::detail::concurrent_stack_control*>(block);
        c->count.store(c->capacity + 7);
    }
    template <class E>
    static void damage_control_block(std::type_identity<shmds::shm_spsc_queue<E>>, std::byte* block,
                                     const std::string&) {
        auto* c = reinterpret_cast<shmds::detail::spsc_control*>(block);
        c->head.store(c->tail.load() + 3 * c->capacity);
    }
    template <class E>
    static void damage_control_block(std::type_identity<shmds::shm_mpmc_queue<E>>, std::byte* block,
                                     const std::string&) {
        // Its positions are hints the slots correct: set both 2^40 positions
        // behind, which a walk of one step per position would take days to
        // correct.
        auto* c = reinterpret_cast<shmds::detail::mpmc_control*>(block);
        c->tail.store(c->tail.load() - (std::uint64_t{1} << 40));
        c->head.store(c->head.load() - (std::uint64_t{1} << 40));
    }
    static void damage_control_block(std::type_identity<shmds::shm_message_queue>, std::byte* block,
                                     const std::string&) {
        auto* c = reinterpret_cast<shmds::detail::message_control*>(block);
        c->head.store(c->tail.load() + 3 * c->capacity);
    }

    /// The table's bookkeeping is everything in table_state besides `dirty`
    /// and `next_serial`, the free blocks' headers and the hash index: state
    /// derived from the entries, checked for plausibility under the lock and
    /// rebuilt from the entries when it fails. Each variant makes one part of
    /// it wrong, either implausibly (a range check must catch it) or
    /// plausibly (only the allocator's check against live blocks can).
    static bool damage_table_bookkeeping(const std::string& segment, int variant) {
        namespace d = shmds::detail;
        const hostile_mapping mapped(segment, "damage_table_bookkeeping");
        std::byte* const bytes = mapped.bytes;
        const std::size_t size = mapped.size;
        auto& header = *reinterpret_cast<d::segment_header*>(bytes);
        const d::segment_identity& id = header.identity;
        d::table_state& t = header.table;
        auto* entries = reinterpret_cast<d::table_entry*>(bytes + id.entries_offset);
        auto free_block_at = [&](std::uint64_t offset) -> d::free_block& {
            if (offset < id.heap_offset || offset + sizeof(d::free_block) > size)
                throw std::runtime_error("damage_table_bookkeeping: " + segment + " has no free block to damage");
            return *reinterpret_cast<d::free_block*>(bytes + offset);
        };
        // The used entries' blocks: the lowest and the highest.
        std::uint32_t first_used = id.table_capacity;
        std::uint64_t lowest_block = 0, highest_block = 0;
        for (std::uint32_t i = 0; i < std::min(t.entries_high_water, id.table_capacity); ++i) {
            if (entries[i].state != d::entry_used) continue;
            if (first_used == id.table_capacity) first_used = i;
            if (lowest_block == 0 || entries[i].block_offset < lowest_block) lowest_block = entries[i].block_offset;
            highest_block = std::max(highest_block, entries[i].block_offset);
        }
        if (first_used == id.table_capacity)
            throw std::runtime_error("damage_table_bookkeeping: " + segment + " holds no structure");
        switch (variant) {
            case 0: t.entries_high_water = id.table_capacity + 5; return true;       // implausible
            case 1: t.used_entries = t.entries_high_water + 3; return true;          // implausible
            case 2: t.free_entry_head = first_used + 1; return true;                 // names a used entry
            case 3: t.index_tombstones = std::uint64_t{id.index_slots} + 1; return true;
            case 4: t.heap_top = id.total_size + id.alignment; return true;          // past the end
            case 5: t.heap_top += 8; return true;                                    // misaligned
            case 6: t.heap_top = highest_block; return true;                         // below a live block
            case 7: t.heap_free_head = id.heap_offset - id.alignment; return true;   // below the heap
            case 8: t.heap_free_head = lowest_block; return true;                    // a live block
            case 9: free_block_at(t.heap_free_head).bytes += 8; return true;         // not a multiple
            case 10: free_block_at(t.heap_free_head).next = t.heap_free_head + 8; return true;  // misaligned
            case 11: free_block_at(t.heap_free_head).next = t.heap_free_head; return true;      // a cycle
            case 12: free_block_at(t.heap_free_head).bytes = t.heap_top - t.heap_free_head; return true;  // over live
            case 13: t.heap_top = highest_block; t.dirty = 1; return true;           // an update left unfinished
            default: return false;
        }
    }
};

}  // namespace shmconf_adapters
