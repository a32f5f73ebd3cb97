// bench/workloads/false_sharing.hpp: the false-sharing detector.
//
// Counters: K processes each increment only their own 8-byte counter, laid
// out packed (8 bytes apart), 64 or 128 bytes apart (spaced_counters), or as
// a structure library's allocator places K one-element arrays (given by an
// adapter: bench/adapters/shmds_counters.hpp). The slowdown of a layout
// against the 128-byte one, measured in the same run, is its false-sharing
// factor: about 1 when nothing is shared, several times more when it is.
//
// Ring: a minimal SPSC ring whose head and tail are adjacent (one line) or
// 128 bytes apart, otherwise identical, pushed through by two processes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/machine.hpp"
#include "harness/team.hpp"
#include "workloads/scenarios.hpp"

namespace shmds_bench {

enum class counter_layout { packed, line_64, line_128, allocator };

inline const char* to_string(counter_layout l) {
    switch (l) {
        case counter_layout::packed:
            return "packed";
        case counter_layout::line_64:
            return "64_apart";
        case counter_layout::line_128:
            return "128_apart";
        case counter_layout::allocator:
            return "allocator";
    }
    return "?";
}

/// Zeroed counters a fixed stride apart (8, 64 or 128 bytes) in memory
/// shared with the processes a team forks.
class spaced_counters {
public:
    spaced_counters(counter_layout layout, std::size_t members) {
        if (layout == counter_layout::allocator)
            throw std::invalid_argument("spaced_counters: the allocator's layout comes from an adapter");
        const std::size_t stride = layout == counter_layout::packed    ? 8
                                   : layout == counter_layout::line_64 ? 64
                                                                       : 128;
        if (128 + members * stride > sizeof(block::bytes))
            throw std::invalid_argument("spaced_counters: too many members for one block");
        // A 128-aligned start, so that "packed" shares one line whatever the base.
        for (std::size_t m = 0; m < members; ++m)
            pointers_.push_back(reinterpret_cast<std::uint64_t*>(block_->bytes + 128 + m * stride));
    }
    [[nodiscard]] const std::vector<std::uint64_t*>& pointers() const noexcept { return pointers_; }

private:
    struct block {
        alignas(128) std::byte bytes[4096]{};
    };
    shared<block> block_;
    std::vector<std::uint64_t*> pointers_;
};

/// Seconds for one process per counter to make `increments` each on its own
/// counter. The counters must be zero and shared with forked children.
inline double time_counters(const std::vector<std::uint64_t*>& counters, std::uint64_t increments) {
    const std::size_t members = counters.size();
    struct board {
        std::atomic<std::uint64_t> slowest_ns{0};
    };
    shared<board> b;
    const auto where = placement::for_members(members);
    team t(run_deadline);
    for (std::size_t m = 0; m < members; ++m) {
        t.spawn("incrementer " + std::to_string(m), where.cpus[m], [&, m] {
            // An atomic increment needs the line exclusively every time, as a
            // shared structure's control word would: a plain one could run
            // from the store buffer and hide the sharing.
            std::atomic_ref<std::uint64_t> counter(*counters[m]);
            t.arrive_and_wait();
            const std::uint64_t start = now_ns();
            for (std::uint64_t i = 0; i < increments; ++i) counter.fetch_add(1, std::memory_order_relaxed);
            store_max(b->slowest_ns, now_ns() - start);
        });
    }
    t.run("false-sharing counters");
    for (std::size_t m = 0; m < members; ++m)
        if (*counters[m] != increments)
            throw std::runtime_error("false-sharing counters: an increment was lost");
    return static_cast<double>(b->slowest_ns.load()) * 1e-9;
}

/// A deliberately minimal SPSC ring: head and tail `Gap` bytes apart.
template <std::size_t Gap>
struct test_ring {
    static_assert(Gap == 8 || Gap == 64 || Gap == 128, "head and tail adjacent, a line or a pair apart");
    static constexpr std::size_t slots = 1024;
    alignas(128) std::atomic<std::uint64_t> head{0};
    alignas(Gap) std::atomic<std::uint64_t> tail{0};  // Gap bytes after head
    alignas(128) std::uint64_t data[slots];
};
static_assert(offsetof(test_ring<8>, tail) - offsetof(test_ring<8>, head) == 8, "adjacent: one line");
static_assert(offsetof(test_ring<128>, tail) - offsetof(test_ring<128>, head) == 128, "padded: a pair apart");

/// Seconds to move `messages` through a test_ring<Gap> between two processes.
template <std::size_t Gap>
double time_ring(std::uint64_t messages) {
    shared<test_ring<Gap>> ring;
    struct board {
        std::atomic<std::uint64_t> start{0}, end{0};
    };
    shared<board> b;
    const auto where = placement::for_members(2);
    team t(run_deadline);
    t.spawn("producer", where.cpus[0], [&] {
        t.arrive_and_wait();
        b->start = now_ns();
        for (std::uint64_t i = 0; i < messages; ++i) {
            while (i - ring->head.load(std::memory_order_acquire) >= test_ring<Gap>::slots) {
            }
            ring->data[i % test_ring<Gap>::slots] = i;
            ring->tail.store(i + 1, std::memory_order_release);
        }
    });
    t.spawn("consumer", where.cpus[1], [&] {
        t.arrive_and_wait();
        for (std::uint64_t i = 0; i < messages; ++i) {
            while (ring->tail.load(std::memory_order_acquire) <= i) {
            }
            if (ring->data[i % test_ring<Gap>::slots] != i) throw std::runtime_error("ring out of order");
            ring->head.store(i + 1, std::memory_order_release);
        }
        b->end = now_ns();
    });
    t.run("false-sharing ring");
    return static_cast<double>(b->end - b->start) * 1e-9;
}

}  // namespace shmds_bench
