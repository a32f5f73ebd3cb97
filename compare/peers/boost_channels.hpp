// compare/peers/boost_channels.hpp: Boost.Interprocess (1.74, Debian's
// libboost-dev) as benchmark channels (see bench/harness/channel.hpp), each
// used the way its documentation shows:
//
//   boost_message_queue    boost::interprocess::message_queue, its own named
//                          queue (one mutex, two condition variables).
//   boost_locked_ring      a ring in a managed_shared_memory segment, found
//                          by name (find_or_construct / find), its slots an
//                          array reached through an offset_ptr, guarded by an
//                          interprocess_mutex with two interprocess_conditions:
//                          the ring the conformance suite checks
//                          (boost_locked_ring.hpp).
//   boost_lockfree_spsc    boost::lockfree::spsc_queue (capacity fixed at
//                          compile time, so it holds no pointers) constructed
//                          in a managed segment: a common way to do SPSC over
//                          shared memory today. It cannot sleep: spin only.
//
// Waiting: `spin` polls with the non-blocking calls; `sleep` blocks in
// Boost's own timed calls; `spin_then_sleep` polls for 20 us, then blocks.
// Senders block while full (the lock-free queue polls: it has nothing to
// block on). The parent creates and removes every named resource.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/offset_ptr.hpp>
#include <boost/interprocess/sync/interprocess_condition.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include "harness/channel.hpp"
#include "peers/boost_locked_ring.hpp"
#include "peers/peer_wait.hpp"

namespace shmds_compare {

namespace bip = boost::interprocess;
using shmds_bench::channel_config;
using shmds_bench::message;

/// Boost's timed calls take an absolute UTC time.
inline boost::posix_time::ptime boost_deadline(std::chrono::nanoseconds from_now) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(from_now).count();
    return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::microseconds(us);
}

// ---- message_queue ------------------------------------------------------------------------------

template <std::size_t Payload>
class boost_message_queue {
public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 64;
    static std::string name() { return "boost_message_queue"; }
    static constexpr int copies = 2;  // into the queue's buffer, out of it

    explicit boost_message_queue(const channel_config& config)
        : wait_(config.wait), name_("shmds-cmp-bmq-" + config.tag) {
        bip::message_queue::remove(name_.c_str());
        bip::message_queue created(bip::create_only, name_.c_str(), config.capacity, Payload);
    }
    ~boost_message_queue() { bip::message_queue::remove(name_.c_str()); }
    boost_message_queue(const boost_message_queue&) = delete;
    boost_message_queue& operator=(const boost_message_queue&) = delete;

    class end {
    public:
        end(const std::string& name, shmds_bench::wait_mode wait)
            : queue_(std::make_unique<bip::message_queue>(bip::open_only, name.c_str())), wait_(wait) {}
        void send(const std::byte* bytes) { queue_->send(bytes, Payload, 0); }
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            bip::message_queue::size_type size = 0;
            unsigned priority = 0;
            const bool got = peer_wait(
                wait_, timeout, [&] { return queue_->try_receive(bytes, Payload, size, priority); },
                [&](auto left) {
                    return queue_->timed_receive(bytes, Payload, size, priority, boost_deadline(left));
                });
            if (got && size != Payload)
                throw std::runtime_error("boost message_queue: a message of the wrong size");
            return got;
        }

    private:
        std::unique_ptr<bip::message_queue> queue_;
        shmds_bench::wait_mode wait_;
    };

    end open_sender() const { return end(name_, wait_); }
    end open_receiver() const { return end(name_, wait_); }

private:
    shmds_bench::wait_mode wait_;
    std::string name_;
};

// ---- a locked ring in a managed segment ---------------------------------------------------------

/// The conformance suite's Boost ring (boost_locked_ring.hpp), living in the
/// managed segment under the name "ring", its slots the named array "slots".
template <std::size_t Payload>
using boost_ring = shmds_boost::locked_ring_block<message<Payload>>;

/// Bytes a managed segment needs for `bytes` of objects, with Boost's
/// per-allocation headers and its named-object index.
inline std::size_t managed_segment_bytes(std::size_t bytes) {
    return bytes + bytes / 8 + (1u << 20);
}

template <std::size_t Payload>
class boost_locked_ring {
public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 64;
    static std::string name() { return "boost_locked_ring"; }
    static constexpr int copies = 2;  // into the slot, out of it
    using ring = boost_ring<Payload>;
    using element = message<Payload>;
    static_assert(sizeof(element) == Payload, "the ring copies elements from and to Payload-byte buffers");

    explicit boost_locked_ring(const channel_config& config)
        : wait_(config.wait), name_("shmds-cmp-bring-" + config.tag) {
        bip::shared_memory_object::remove(name_.c_str());
        bip::managed_shared_memory segment(bip::create_only, name_.c_str(),
                                           managed_segment_bytes(config.capacity * sizeof(element)));
        element* slots = segment.construct<element>("slots")[config.capacity]();
        segment.find_or_construct<ring>("ring")(config.capacity, slots);
    }
    ~boost_locked_ring() { bip::shared_memory_object::remove(name_.c_str()); }
    boost_locked_ring(const boost_locked_ring&) = delete;
    boost_locked_ring& operator=(const boost_locked_ring&) = delete;

    class end {
    public:
        end(const std::string& name, shmds_bench::wait_mode wait)
            : segment_(std::make_unique<bip::managed_shared_memory>(bip::open_only, name.c_str())),
              ring_(segment_->find<ring>("ring").first),
              wait_(wait) {
            if (ring_ == nullptr) throw std::runtime_error("boost_locked_ring: no object named 'ring'");
        }
        void send(const std::byte* bytes) {
            bip::scoped_lock<bip::interprocess_mutex> lock(ring_->mutex);
            ring_->not_full.wait(lock, [&] { return !ring_->full(); });
            ring_->put(bytes);
        }
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            return peer_wait(
                wait_, timeout,
                [&] {
                    bip::scoped_lock<bip::interprocess_mutex> lock(ring_->mutex);
                    return take(bytes);
                },
                [&](auto left) {
                    bip::scoped_lock<bip::interprocess_mutex> lock(ring_->mutex);
                    const auto until = boost_deadline(left);
                    if (!ring_->not_empty.timed_wait(lock, until, [&] { return !ring_->empty(); }))
                        return false;
                    return take(bytes);
                });
        }

    private:
        /// With the lock held.
        bool take(std::byte* bytes) {
            if (ring_->empty()) return false;
            ring_->take(bytes, false);
            return true;
        }

        std::unique_ptr<bip::managed_shared_memory> segment_;
        ring* ring_;
        shmds_bench::wait_mode wait_;
    };

    end open_sender() const { return end(name_, wait_); }
    end open_receiver() const { return end(name_, wait_); }

private:
    shmds_bench::wait_mode wait_;
    std::string name_;
};

// ---- boost::lockfree::spsc_queue in a managed segment -------------------------------------------

template <std::size_t Payload>
class boost_lockfree_spsc {
public:
    static constexpr std::size_t max_senders = 1;
    static constexpr std::size_t max_receivers = 1;
    static constexpr std::size_t capacity = 1024;  // compile-time: the queue holds its buffer inline
    static std::string name() { return "boost_lockfree_spsc"; }
    static constexpr int copies = 4;  // into an element, into the ring, out to an element, out to the bytes
    static bool supports(shmds_bench::wait_mode wait) { return wait == shmds_bench::wait_mode::spin; }
    using element = message<Payload>;
    using queue = boost::lockfree::spsc_queue<element, boost::lockfree::capacity<capacity>>;

    explicit boost_lockfree_spsc(const channel_config& config) : name_("shmds-cmp-blf-" + config.tag) {
        if (config.wait != shmds_bench::wait_mode::spin)
            throw std::invalid_argument("boost::lockfree::spsc_queue cannot sleep: it only spins");
        bip::shared_memory_object::remove(name_.c_str());
        bip::managed_shared_memory segment(bip::create_only, name_.c_str(),
                                           managed_segment_bytes(sizeof(queue)));
        segment.find_or_construct<queue>("queue")();
    }
    ~boost_lockfree_spsc() { bip::shared_memory_object::remove(name_.c_str()); }
    boost_lockfree_spsc(const boost_lockfree_spsc&) = delete;
    boost_lockfree_spsc& operator=(const boost_lockfree_spsc&) = delete;

    class end {
    public:
        explicit end(const std::string& name)
            : segment_(std::make_unique<bip::managed_shared_memory>(bip::open_only, name.c_str())),
              queue_(segment_->find<queue>("queue").first) {
            if (queue_ == nullptr) throw std::runtime_error("boost_lockfree_spsc: no object named 'queue'");
        }
        void send(const std::byte* bytes) {
            element e;
            std::memcpy(e.bytes.data(), bytes, Payload);
            while (!queue_->push(e)) {
            }
        }
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            element e;
            return peer_wait(
                shmds_bench::wait_mode::spin, timeout,
                [&] {
                    if (!queue_->pop(e)) return false;
                    std::memcpy(bytes, e.bytes.data(), Payload);
                    return true;
                },
                [](auto) { return false; });
        }

    private:
        std::unique_ptr<bip::managed_shared_memory> segment_;
        queue* queue_;
    };

    end open_sender() const { return end(name_); }
    end open_receiver() const { return end(name_); }

private:
    std::string name_;
};

}  // namespace shmds_compare
