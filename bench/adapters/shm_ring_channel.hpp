// bench/adapters/shm_ring_channel.hpp: the cross-process yardsticks for the
// SPSC queue (shm_spsc_ring) and the MPMC queue (shm_mpmc_ring, at the end).
//
// The SPSC yardstick. A textbook single-producer single-consumer ring (head and tail
// 128 bytes apart, each side caching the other's index, as in Rigtorp's
// SPSCQueue; a power-of-two capacity, so a mask and no division) placed in a
// POSIX shared-memory segment and run between two processes through the
// same harness as shmds_spsc: the same workloads, the same message handling
// and the same two copies (the sender's bytes into the slot, the slot out to
// the receiver's bytes, as shmds_spsc's loans do), the same way of spinning (a pause after each failed
// attempt, the clock read once per 64). What it leaves out is what the
// library adds: names and a table, roles, validation against a hostile
// writer, crash recovery, wake-ups. So `shmds_spsc / shm_spsc_ring` is what
// those cost.
//
// The in-process rings (workloads/inprocess_ring.hpp) differ from it in two
// ways only: their two ends are threads of one process, and they move the
// 8-byte counter itself (no element, no copies).
//
// Spin only: a textbook ring has nothing to sleep on.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/channel.hpp"

namespace shmds_bench {

/// One failed attempt's pause, as the library's spinning waits make it.
inline void ring_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// A shared mapping of the segment `name`, whole, unmapped when destroyed.
class shm_ring_mapping {
public:
    shm_ring_mapping(const std::string& name, std::size_t bytes) : bytes_(bytes) {
        const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "shm_open " + name);
        void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        const int error = errno;
        ::close(fd);
        if (base == MAP_FAILED) throw std::system_error(error, std::generic_category(), "mmap " + name);
        base_ = static_cast<std::byte*>(base);
    }
    /// Makes the segment `name` (which must not exist), `bytes` long and
    /// reserved (zero-filled), and maps it.
    static shm_ring_mapping create(const std::string& name, std::size_t bytes) {
        const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "shm_open " + name);
        const int reserved = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
        ::close(fd);
        if (reserved != 0) {
            ::shm_unlink(name.c_str());
            throw std::system_error(reserved, std::generic_category(), "posix_fallocate " + name);
        }
        return shm_ring_mapping(name, bytes);
    }
    shm_ring_mapping(shm_ring_mapping&& other) noexcept
        : base_(std::exchange(other.base_, nullptr)), bytes_(other.bytes_) {}
    shm_ring_mapping& operator=(shm_ring_mapping&&) = delete;
    ~shm_ring_mapping() {
        if (base_) ::munmap(base_, bytes_);
    }
    std::byte* base() const noexcept { return base_; }

private:
    std::byte* base_ = nullptr;
    std::size_t bytes_;
};

template <std::size_t Payload>
class shm_spsc_ring {
    using element = message<Payload>;

    /// The shared indices, each on a line of its own; the slots follow.
    /// Indices count messages from 0 and never wrap (2^64 of them).
    struct indices {
        alignas(128) std::atomic<std::uint64_t> head{0};  ///< next to read; the receiver's
        alignas(128) std::atomic<std::uint64_t> tail{0};  ///< next to write; the sender's
    };
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                  "the indices are shared between processes");
    static constexpr std::size_t slots_offset = sizeof(indices);  // a multiple of 128
    static_assert(slots_offset % 128 == 0, "the slots start on a line of their own");

public:
    static constexpr std::size_t max_senders = 1;
    static constexpr std::size_t max_receivers = 1;
    static constexpr bool yardstick = true;  // a ring, not a peer, in the results
    static std::string name() { return "shm_spsc_ring"; }
    static constexpr int copies = 2;  // into the slot, out of it
    static bool supports(wait_mode wait) { return wait == wait_mode::spin; }

    explicit shm_spsc_ring(const channel_config& config)
        : name_("/shmds-bench-ring-" + config.tag),
          capacity_(std::bit_ceil(std::max<std::size_t>(config.capacity, 2))) {
        const shm_ring_mapping ring = shm_ring_mapping::create(name_, bytes_for(capacity_));
        new (ring.base()) indices;  // (fresh pages are zero: the slots need nothing)
    }
    ~shm_spsc_ring() { ::shm_unlink(name_.c_str()); }
    shm_spsc_ring(const shm_spsc_ring&) = delete;
    shm_spsc_ring& operator=(const shm_spsc_ring&) = delete;

    class end {
    public:
        end(const std::string& name, std::size_t capacity)
            : mapping_(name, bytes_for(capacity)),
              shared_(std::launder(reinterpret_cast<indices*>(mapping_.base()))),
              slots_(reinterpret_cast<element*>(mapping_.base() + slots_offset)),
              mask_(capacity - 1),
              head_(shared_->head.load(std::memory_order_acquire)),
              tail_(shared_->tail.load(std::memory_order_acquire)),
              head_cache_(head_),
              tail_cache_(tail_) {}

        /// Spins while the ring is full.
        void send(const std::byte* bytes) {
            while (tail_ - head_cache_ > mask_) {
                head_cache_ = shared_->head.load(std::memory_order_acquire);
                if (tail_ - head_cache_ > mask_) ring_pause();
            }
            std::memcpy(slots_[tail_ & mask_].bytes.data(), bytes, Payload);
            shared_->tail.store(++tail_, std::memory_order_release);
        }

        /// Spins until a message comes (true) or `timeout` passes (false).
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            if (head_ == tail_cache_ && !refresh()) {
                const auto deadline = std::chrono::steady_clock::now() + timeout;
                for (unsigned round = 1; !refresh(); ++round) {
                    if ((round & 63) == 0 && std::chrono::steady_clock::now() >= deadline) return false;
                    ring_pause();
                }
            }
            std::memcpy(bytes, slots_[head_ & mask_].bytes.data(), Payload);
            shared_->head.store(++head_, std::memory_order_release);
            return true;
        }

    private:
        bool refresh() {
            tail_cache_ = shared_->tail.load(std::memory_order_acquire);
            return head_ != tail_cache_;
        }

        shm_ring_mapping mapping_;  // (first: the pointers below point into it)
        indices* shared_;
        element* slots_;
        std::uint64_t mask_;
        std::uint64_t head_, tail_;              ///< this end's own index (the other's is unused)
        std::uint64_t head_cache_, tail_cache_;  ///< the other end's index, as last seen
    };

    end open_sender() const { return end(name_, capacity_); }
    end open_receiver() const { return end(name_, capacity_); }

private:
    static std::size_t bytes_for(std::size_t capacity) { return slots_offset + capacity * sizeof(element); }

    std::string name_;
    std::size_t capacity_;
};

/// The cross-process yardstick for the MPMC queue: Vyukov's bounded MPMC
/// queue, textbook (a sequence word in each cell, cells packed, one
/// compare-and-swap on the shared enqueue or dequeue position per message,
/// positions 128 bytes apart, a power-of-two capacity), in a shared-memory
/// segment, through the same harness and copies as shm_spsc_ring. It claims
/// a position by moving a counter all senders share, where shmds_mpmc claims
/// the slot itself and names its owner (so that a dead claimer's slot can be
/// recovered); like shmds_mpmc, it pays a locked read-modify-write on each
/// side of every message, which the SPSC rings do not. So `shmds_mpmc /
/// shm_mpmc_ring` is what the library adds, and `shm_mpmc_ring /
/// shm_spsc_ring` what any queue of this kind costs against an SPSC ring on
/// the same machine. Spin only. A sender that dies mid-message stops it for
/// good (nothing recovers a claimed cell): a yardstick, not a structure.
template <std::size_t Payload>
class shm_mpmc_ring {
    using element = message<Payload>;
    struct cell {
        std::atomic<std::uint64_t> sequence;  ///< position p: free for p; full with p at p + 1
        element value;
    };
    struct positions {
        alignas(128) std::atomic<std::uint64_t> enqueue{0};
        alignas(128) std::atomic<std::uint64_t> dequeue{0};
    };
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                  "the positions are shared between processes");
    static constexpr std::size_t cells_offset = sizeof(positions);
    static_assert(cells_offset % 128 == 0, "the cells start on a line of their own");

public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 64;
    static constexpr bool yardstick = true;
    static std::string name() { return "shm_mpmc_ring"; }
    static constexpr int copies = 2;  // into the cell, out of it
    static bool supports(wait_mode wait) { return wait == wait_mode::spin; }

    explicit shm_mpmc_ring(const channel_config& config)
        : name_("/shmds-bench-mpmc-ring-" + config.tag),
          capacity_(std::bit_ceil(std::max<std::size_t>(config.capacity, 2))) {
        const shm_ring_mapping ring = shm_ring_mapping::create(name_, bytes_for(capacity_));
        new (ring.base()) positions;
        auto* cells = reinterpret_cast<cell*>(ring.base() + cells_offset);
        for (std::size_t i = 0; i < capacity_; ++i) new (&cells[i].sequence) std::atomic<std::uint64_t>(i);
    }
    ~shm_mpmc_ring() { ::shm_unlink(name_.c_str()); }
    shm_mpmc_ring(const shm_mpmc_ring&) = delete;
    shm_mpmc_ring& operator=(const shm_mpmc_ring&) = delete;

    class end {
    public:
        end(const std::string& name, std::size_t capacity)
            : mapping_(name, bytes_for(capacity)),
              shared_(std::launder(reinterpret_cast<positions*>(mapping_.base()))),
              cells_(reinterpret_cast<cell*>(mapping_.base() + cells_offset)),
              mask_(capacity - 1) {}

        /// Spins while the ring is full.
        void send(const std::byte* bytes) {
            std::uint64_t position = shared_->enqueue.load(std::memory_order_relaxed);
            cell* at = nullptr;
            for (;;) {
                at = &cells_[position & mask_];
                const auto lead =
                    static_cast<std::int64_t>(at->sequence.load(std::memory_order_acquire) - position);
                if (lead == 0 &&
                    shared_->enqueue.compare_exchange_weak(position, position + 1, std::memory_order_relaxed))
                    break;
                if (lead < 0) ring_pause();  // full
                if (lead != 0) position = shared_->enqueue.load(std::memory_order_relaxed);
            }
            std::memcpy(at->value.bytes.data(), bytes, Payload);
            at->sequence.store(position + 1, std::memory_order_release);
        }

        /// Spins until a message comes (true) or `timeout` passes (false).
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            std::uint64_t position = shared_->dequeue.load(std::memory_order_relaxed);
            cell* at = nullptr;
            std::chrono::steady_clock::time_point deadline{};  // (read the clock only once empty)
            for (unsigned empty_rounds = 0;;) {
                at = &cells_[position & mask_];
                const auto lead =
                    static_cast<std::int64_t>(at->sequence.load(std::memory_order_acquire) - (position + 1));
                if (lead == 0 &&
                    shared_->dequeue.compare_exchange_weak(position, position + 1, std::memory_order_relaxed))
                    break;
                if (lead < 0) {  // empty
                    if (empty_rounds++ == 0)
                        deadline = std::chrono::steady_clock::now() + timeout;
                    else if ((empty_rounds & 63) == 0 && std::chrono::steady_clock::now() >= deadline)
                        return false;
                    ring_pause();
                }
                if (lead != 0) position = shared_->dequeue.load(std::memory_order_relaxed);
            }
            std::memcpy(bytes, at->value.bytes.data(), Payload);
            at->sequence.store(position + mask_ + 1, std::memory_order_release);
            return true;
        }

    private:
        shm_ring_mapping mapping_;  // (first: the pointers below point into it)
        positions* shared_;
        cell* cells_;
        std::uint64_t mask_;
    };

    end open_sender() const { return end(name_, capacity_); }
    end open_receiver() const { return end(name_, capacity_); }

private:
    static std::size_t bytes_for(std::size_t capacity) { return cells_offset + capacity * sizeof(cell); }

    std::string name_;
    std::size_t capacity_;
};

}  // namespace shmds_bench
