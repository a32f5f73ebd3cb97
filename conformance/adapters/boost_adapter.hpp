// conformance/adapters/boost_adapter.hpp: Boost.Interprocess 1.74 (Debian's
// libboost-dev, header-only) under the conformance contract
// (shmconf/contract.hpp). Its purpose is to show where Boost differs from the
// requirements, so the adapter passes Boost's behaviour through and adds a
// check only where going on without it would be undefined behaviour.
// Known failures, with reasons: boost_expectations.txt next to this file.
//
// What each piece of the contract maps to, and why:
//
//   segment            boost::interprocess::managed_shared_memory itself (it
//                      is movable): create_only / open_only / open_or_create.
//                      Contract names start with '/'; Boost's do not (it adds
//                      the slash itself), so one leading '/' is stripped and
//                      nothing else is checked: Boost has no name rules of
//                      its own, so shm_open decides. Sizes go to Boost as
//                      they are (it refuses sizes below its own metadata with
//                      size_error), with its default permissions (0644).
//   remove             shared_memory_object::remove (never throws).
//   exists             shared_memory_object opened read-only: present when
//                      it opens, or when it exists but we may not open it.
//   attach_count       left out (optional in the contract): Boost keeps no
//                      count of attached processes, and no automatic cleanup
//                      (removed from Boost on purpose), so REF-001 and the
//                      counting halves of REF-004 and REF-006 are UNSUPPORTED.
//   categorize         interprocess_exception::get_error_code() (Boost's
//                      errno translation), boost::interprocess::bad_alloc
//                      (segment full), std::out_of_range (array::at) and the
//                      adapter's own `adapter_error`. EINVAL from shm_open
//                      reaches us as `invalid_argument`, which does not say
//                      which argument: it is `other`, not `invalid_name`.
//   array<T>           Boost's own named array: find_or_construct<T>(name)[n]
//                      and find<T>(name). Boost stores the length; make of an
//                      existing name with another length is reported as
//                      `mismatch` by the adapter from that stored length.
//                      Boost does not check the type on find.
//   queue, mpmc_queue  a mutex-guarded ring (locked_ring below), the same
//                      ring the benchmarks time (compare/peers/
//                      boost_locked_ring.hpp): a named control block holding
//                      an interprocess_mutex, two conditions, head, count and
//                      capacity, and an offset_ptr to its slots, a named T[n]
//                      under a derived name. Every operation takes
//                      the mutex, so it is process-safe and serves as the
//                      MPMC queue too. Chosen over boost::interprocess::
//                      message_queue because a message_queue is a separate
//                      shared-memory object, not a structure inside the
//                      segment: it cannot be found in the segment by name and
//                      would outlive the segment's removal.
//   stack,             the same locked ring used LIFO.
//   concurrent_stack
//   spsc_queue         boost::lockfree::spsc_queue with a run-time capacity,
//                      constructed in the segment. Its buffer is a named T[n+1]
//                      under a derived name, handed to the queue by a tiny
//                      allocator holding an offset_ptr (so nothing in the
//                      segment depends on where it is mapped). size() is
//                      Boost's read_available(), which Boost documents as
//                      valid only on the consumer's side. No role checks.
//   destroy            the contract's destroy is untyped; Boost's destroy<T>
//                      needs a type only to run destructors, which are
//                      trivial here (the ring's mutex and conditions end in
//                      pthread_mutex_destroy and pthread_cond_destroy, which
//                      free nothing on Linux and have no waiter to wait for
//                      once the structure is destroyed), so it destroys the
//                      name and its derived storage name as bytes.
//
// Derived names: "<name>\x01ring" (ring slots) and "<name>\x01spsc" (SPSC
// buffer). A contract structure name is printable ASCII, so it never
// collides with them. Where they exist they also tell the ring and SPSC
// layouts apart: opening one as the other would read one layout as another
// (undefined behaviour), so that, and a slot storage whose byte size does not
// match capacity x sizeof(T) (out-of-bounds access), are refused with
// `mismatch`. That is all the adapter checks; Boost checks neither kind nor
// type, and a FIFO ring opened as a stack (the same layout) is not refused.
//
// Capabilities: every structure; no cleanup after crashed attachers, no
// robust locks (1.74 has none), no element type checks, no reservation (plain
// ftruncate: SIGBUS on a full /dev/shm), no SPSC role checks. No
// damage_segment hook: Boost follows offsets in its index and control blocks
// unchecked, so a damaged segment would crash the test program rather than
// fail a test (BAD-002 and BAD-003 report UNSUPPORTED).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <exception>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <boost/interprocess/errors.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/offset_ptr.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include "boost_locked_ring.hpp"  // compare/peers: the ring the benchmarks time
#include "shmconf/contract.hpp"

namespace shmconf_adapters {

namespace boost_detail {

namespace bip = boost::interprocess;

/// The adapter's own failures (a name not found, a stored length or layout
/// that differs, a question Boost cannot answer), with their category.
class adapter_error : public std::runtime_error {
public:
    adapter_error(shmconf::error_category category, const std::string& what)
        : std::runtime_error("boost adapter: " + what), category_(category) {}
    shmconf::error_category category() const noexcept { return category_; }

private:
    shmconf::error_category category_;
};

/// The contract's "/name" as Boost spells it ("name"); anything else as is.
inline std::string segment_name(const std::string& n) {
    return !n.empty() && n[0] == '/' ? n.substr(1) : n;
}

/// The name under which a structure's element storage lives.
inline std::string storage_name(const std::string& structure, const char* layout) {
    return structure + '\x01' + layout;
}

/// Whether `name` is in the segment's table (any type: bytes never fail
/// Boost's length-divisibility assertion).
inline bool named(bip::managed_shared_memory& m, const std::string& name) {
    return m.find<char>(name.c_str()).first != nullptr;
}

/// Bytes of the named storage `name`, or nullopt when it is absent.
inline std::optional<std::size_t> storage_bytes(bip::managed_shared_memory& m, const std::string& name) {
    const auto [p, bytes] = m.find<char>(name.c_str());
    if (p == nullptr) return std::nullopt;
    return bytes;
}

/// Finds the structure `name` through `checked` (which refuses another layout)
/// or creates it: `slots` zeroed T under its storage name, then a Block
/// (capacity, slots) under `name`, the storage removed again if that fails.
/// Atomic with respect to other processes (under the segment's own lock). An
/// existing structure of another capacity is a `mismatch`.
template <class T, class Block, class Checked>
Block* find_or_create_block(bip::managed_shared_memory& m, const std::string& name, std::size_t capacity,
                            std::size_t slots, const char* layout, Checked checked) {
    Block* b = nullptr;
    auto find_or_create = [&] {
        if (named(m, name)) {
            b = checked(m, name);
            if (b->capacity != capacity)
                throw adapter_error(shmconf::error_category::mismatch, "'" + name + "' has capacity " +
                                                                           std::to_string(b->capacity) + ", not " +
                                                                           std::to_string(capacity));
            return;
        }
        const std::string storage = storage_name(name, layout);
        T* first = m.construct<T>(storage.c_str())[slots]();
        try {
            b = m.construct<Block>(name.c_str())(capacity, first);
        } catch (...) {
            m.destroy<T>(storage.c_str());
            throw;
        }
    };
    m.atomic_func(find_or_create);  // (takes an lvalue)
    return b;
}

// ---- array ---------------------------------------------------------------------------------------

/// Boost's named array T[n]. The handle points into this process's mapping;
/// it is valid while the segment handle it came from is.
template <class T>
class array {
public:
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied between processes as bytes");

    /// Find or create `name` with `capacity` elements (zeroed when created).
    /// Throws `mismatch` when the stored length differs, bip::bad_alloc when
    /// the segment is full. Boost does not check that the stored type is T.
    static array make(bip::managed_shared_memory& m, const std::string& name, std::size_t capacity) {
        T* p = m.find_or_construct<T>(name.c_str())[capacity]();
        const std::size_t length = bip::managed_shared_memory::get_instance_length(p);
        if (length != capacity)
            throw adapter_error(shmconf::error_category::mismatch,
                                "array '" + name + "' has " + std::to_string(length) + " elements, not " +
                                    std::to_string(capacity));
        return array(p, length);
    }
    /// The existing `name`, with the length Boost stored (`not_found` if absent).
    static array find(bip::managed_shared_memory& m, const std::string& name) {
        const auto [p, length] = m.find<T>(name.c_str());
        if (p == nullptr) throw adapter_error(shmconf::error_category::not_found, "no structure '" + name + "'");
        return array(p, length);
    }

    std::size_t size() const noexcept { return size_; }
    /// Checked: std::out_of_range outside [0, size()).
    T& at(std::size_t i) const {
        if (i >= size_)
            throw std::out_of_range("boost adapter: index " + std::to_string(i) + " of an array of " +
                                    std::to_string(size_));
        return data_[i];
    }
    T& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    array(T* data, std::size_t size) : data_(data), size_(size) {}
    T* data_;
    std::size_t size_;
};

// ---- the locked ring (queue, mpmc_queue, stack, concurrent_stack) --------------------------------

/// The ring itself is the one the benchmarks time (compare/peers/
/// boost_locked_ring.hpp); here its block lives under the structure's name
/// and its slots under the derived name "<name>\x01ring".
template <class T>
using ring_block = shmds_boost::locked_ring_block<T>;

inline constexpr const char* ring_layout = "ring";

/// A handle on a ring_block, FIFO or LIFO. Any process, any thread may call
/// anything; every call but capacity() takes the mutex (blocking, with no
/// timeout: a process killed holding it blocks the others for ever, as
/// Boost 1.74's mutexes are not robust). Nothing throws after make/find.
template <class T, bool Lifo>
class locked_ring {
public:
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied between processes as bytes");
    using block = ring_block<T>;

    /// Find or create `name` with `capacity` elements, atomically with
    /// respect to other processes (under the segment's own lock).
    static locked_ring make(bip::managed_shared_memory& m, const std::string& name, std::size_t capacity) {
        return locked_ring(find_or_create_block<T, block>(m, name, capacity, capacity, ring_layout, checked));
    }
    /// The existing `name` (`not_found` if absent).
    static locked_ring find(bip::managed_shared_memory& m, const std::string& name) {
        if (!named(m, name)) throw adapter_error(shmconf::error_category::not_found, "no structure '" + name + "'");
        return locked_ring(checked(m, name));
    }

    /// False when full (Q-002, STK-002).
    [[nodiscard]] bool try_push(const T& v) {
        bip::scoped_lock<bip::interprocess_mutex> lock(b_->mutex);
        if (b_->full()) return false;
        b_->put(&v);
        return true;
    }
    /// The oldest (FIFO) or newest (LIFO) element; nothing when empty.
    [[nodiscard]] std::optional<T> try_pop() {
        bip::scoped_lock<bip::interprocess_mutex> lock(b_->mutex);
        if (b_->empty()) return std::nullopt;
        alignas(T) std::array<std::byte, sizeof(T)> raw;  // T need not be default-constructible
        b_->take(raw.data(), Lifo);
        return std::bit_cast<T>(raw);
    }
    std::size_t size() const {
        bip::scoped_lock<bip::interprocess_mutex> lock(b_->mutex);
        return b_->count;
    }
    std::size_t capacity() const noexcept { return b_->capacity; }

private:
    explicit locked_ring(block* b) : b_(b) {}

    /// The ring under `name`, refusing what would be undefined behaviour to
    /// read as one: another layout, or slots of another byte size.
    static block* checked(bip::managed_shared_memory& m, const std::string& name) {
        const auto bytes = storage_bytes(m, storage_name(name, ring_layout));
        if (!bytes)
            throw adapter_error(shmconf::error_category::mismatch, "'" + name + "' is not a locked ring");
        block* b = m.find<block>(name.c_str()).first;
        if (*bytes != b->capacity * sizeof(T))
            throw adapter_error(shmconf::error_category::mismatch,
                                "'" + name + "' holds elements of another size");
        return b;
    }

    block* b_;
};

// ---- boost::lockfree::spsc_queue -----------------------------------------------------------------

/// The allocator the SPSC queue is built with: it hands out the one buffer
/// made for it (a named T[n+1]) and frees nothing (destroy frees the name).
/// It lives inside the queue, in shared memory, so it holds an offset_ptr.
template <class T>
struct given_buffer {
    using value_type = T;
    using pointer = bip::offset_ptr<T>;
    explicit given_buffer(T* b) : buffer(b) {}
    template <class U>
    given_buffer(const given_buffer<U>&) = delete;  // never rebound: one buffer, one type
    pointer allocate(std::size_t) const { return buffer; }
    void deallocate(pointer, std::size_t) const noexcept {}
    pointer buffer;
};

inline constexpr const char* spsc_layout = "spsc";

/// In shared memory under the structure's name: Boost's lock-free SPSC ring
/// (its two indices are atomics, address-free) and the capacity asked for
/// (Boost's runtime_sized_ringbuffer keeps n + 1 and does not say n).
template <class T>
struct spsc_block {
    using queue_type = boost::lockfree::spsc_queue<T, boost::lockfree::allocator<given_buffer<T>>>;
    spsc_block(std::size_t n, T* buffer) : capacity(n), queue(n, given_buffer<T>(buffer)) {}
    const std::size_t capacity;
    queue_type queue;
};

/// One producer and one consumer, across processes; Boost checks neither
/// role. try_push: producer only; try_pop and size: consumer only (Boost's
/// preconditions). Wait-free; nothing throws after make/find.
template <class T>
class spsc_queue {
public:
    static_assert(std::is_trivially_copyable_v<T>, "elements are copied between processes as bytes");
    using block = spsc_block<T>;

    static spsc_queue make(bip::managed_shared_memory& m, const std::string& name, std::size_t capacity) {
        // Boost's ring keeps capacity + 1 slots; wrapped to 0 it would loop
        // for ever, so refuse it as Boost refuses any overflowing count.
        if (capacity == std::numeric_limits<std::size_t>::max() && !named(m, name)) throw bip::bad_alloc();
        return spsc_queue(find_or_create_block<T, block>(m, name, capacity, capacity + 1, spsc_layout, checked));
    }
    static spsc_queue find(bip::managed_shared_memory& m, const std::string& name) {
        if (!named(m, name)) throw adapter_error(shmconf::error_category::not_found, "no structure '" + name + "'");
        return spsc_queue(checked(m, name));
    }

    [[nodiscard]] bool try_push(const T& v) { return b_->queue.push(v); }
    [[nodiscard]] std::optional<T> try_pop() {
        T v{};
        if (!b_->queue.pop(v)) return std::nullopt;
        return v;
    }
    /// Boost's read_available(): exact on the consumer's side only.
    std::size_t size() const { return b_->queue.read_available(); }
    std::size_t capacity() const noexcept { return b_->capacity; }

private:
    explicit spsc_queue(block* b) : b_(b) {}

    static block* checked(bip::managed_shared_memory& m, const std::string& name) {
        const auto bytes = storage_bytes(m, storage_name(name, spsc_layout));
        if (!bytes)
            throw adapter_error(shmconf::error_category::mismatch, "'" + name + "' is not an SPSC queue");
        block* b = m.find<block>(name.c_str()).first;
        if (*bytes != (b->capacity + 1) * sizeof(T))
            throw adapter_error(shmconf::error_category::mismatch,
                                "'" + name + "' holds elements of another size");
        return b;
    }

    block* b_;
};

}  // namespace boost_detail

struct boost_interprocess {
    static std::string name() { return "boost"; }
    static constexpr shmconf::capabilities caps{.array = true,
                                                .queue = true,
                                                .spsc_queue = true,
                                                .mpmc_queue = true,
                                                .stack = true,
                                                .concurrent_stack = true,
                                                .cleans_up_after_crashed_attachers = false,
                                                .locks_survive_owner_death = false,
                                                .checks_element_types = false,
                                                .reserves_memory_at_creation = false,
                                                .checks_spsc_roles = false};

    static shmconf::error_category categorize(const std::exception_ptr& e) {
        namespace bip = boost::interprocess;
        using shmconf::error_category;
        try {
            std::rethrow_exception(e);
        } catch (const boost_detail::adapter_error& x) {
            return x.category();
        } catch (const bip::bad_alloc&) {  // before interprocess_exception: its code is other_error
            return error_category::out_of_space;
        } catch (const bip::interprocess_exception& x) {
            switch (x.get_error_code()) {
                case bip::already_exists_error:
                    return error_category::already_exists;
                case bip::not_found_error:
                case bip::not_such_file_or_directory:
                    return error_category::not_found;
                case bip::security_error:
                    return error_category::permission_denied;
                case bip::out_of_space_error:
                case bip::out_of_memory_error:
                    return error_category::out_of_space;
                case bip::size_error:
                    return error_category::invalid_size;
                case bip::path_error:  // ENAMETOOLONG
                    return error_category::invalid_name;
                case bip::corrupted_error:
                    return error_category::corrupted;
                case bip::timeout_when_locking_error:
                case bip::timeout_when_waiting_error:
                    return error_category::timeout;
                default:  // invalid_argument (EINVAL: which argument?), io_error, ...
                    return error_category::other;
            }
        } catch (const std::out_of_range&) {
            return error_category::out_of_range;
        } catch (const std::bad_alloc&) {
            return error_category::out_of_space;
        } catch (...) {
            return error_category::other;
        }
    }

    using segment = boost::interprocess::managed_shared_memory;
    static segment create(const std::string& n, std::size_t bytes) {
        return segment(boost::interprocess::create_only, boost_detail::segment_name(n).c_str(), bytes);
    }
    static segment open(const std::string& n) {
        return segment(boost::interprocess::open_only, boost_detail::segment_name(n).c_str());
    }
    static segment open_or_create(const std::string& n, std::size_t bytes) {
        return segment(boost::interprocess::open_or_create, boost_detail::segment_name(n).c_str(), bytes);
    }
    static bool remove(const std::string& n) {
        return boost::interprocess::shared_memory_object::remove(boost_detail::segment_name(n).c_str());
    }
    static bool exists(const std::string& n) {
        namespace bip = boost::interprocess;
        try {
            bip::shared_memory_object probe(bip::open_only, boost_detail::segment_name(n).c_str(), bip::read_only);
            return true;
        } catch (const bip::interprocess_exception& x) {
            return x.get_error_code() == bip::security_error;  // there, but not ours to read
        }
    }

    template <class T>
    using array = boost_detail::array<T>;
    template <class T>
    using queue = boost_detail::locked_ring<T, false>;
    template <class T>
    using spsc_queue = boost_detail::spsc_queue<T>;
    template <class T>
    using mpmc_queue = boost_detail::locked_ring<T, false>;
    template <class T>
    using stack = boost_detail::locked_ring<T, true>;
    template <class T>
    using concurrent_stack = boost_detail::locked_ring<T, true>;

    /// Find or create `name` as S with `capacity` elements.
    template <class S>
    static S make(segment& s, const std::string& n, std::size_t capacity) {
        return S::make(s, n, capacity);
    }
    /// Open the existing `name` as S.
    template <class S>
    static S find(segment& s, const std::string& n) {
        return S::find(s, n);
    }
    /// Destroys `name` and its element storage, if any (trivial destructors:
    /// destroyed as bytes). Boost's destroy of an absent name does nothing.
    static void destroy(segment& s, const std::string& n) {
        auto destroy_all = [&] {
            s.destroy<char>(boost_detail::storage_name(n, boost_detail::ring_layout).c_str());
            s.destroy<char>(boost_detail::storage_name(n, boost_detail::spsc_layout).c_str());
            s.destroy<char>(n.c_str());
        };
        s.atomic_func(destroy_all);  // under the segment's lock, like make
    }
};

}  // namespace shmconf_adapters
