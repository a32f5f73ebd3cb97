// bench/workloads/inprocess_ring.hpp: the yardsticks for SPSC throughput:
// two textbook single-producer single-consumer rings between two threads of
// one process, on the same two CPUs as the multi-process runs, 8-byte
// elements, a power-of-two capacity (a mask, no division), nothing else: no
// roles, no wake-ups, no bounds checks.
//   cached indices   head and tail 128 bytes apart, each side caching the
//                    other's index (as in Rigtorp's SPSCQueue);
//   slot sequences   each slot carries the position it holds, so the
//                    consumer polls the slot itself (as in FastForward, and
//                    in the project's own SPSC queue).
// A cross-process queue cannot beat the hardware these use; the better of
// the two is the bar the SPSC queue is held to.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <thread>

#include <pthread.h>
#include <sched.h>

#include "harness/clock.hpp"

namespace shmds_bench {

enum class ring_design { cached_indices, slot_sequences };

struct inprocess_ring {
    static constexpr std::uint64_t slots = 1024;  // as the channels' default capacity
    alignas(128) std::atomic<std::uint64_t> head{0};
    alignas(128) std::atomic<std::uint64_t> tail{0};
    alignas(128) std::uint64_t data[slots];
};

struct inprocess_sequence_ring {
    static constexpr std::uint64_t slots = 1024;
    struct slot {
        std::atomic<std::uint64_t> sequence{0};  ///< position + 1 once written
        std::uint64_t value = 0;
    };
    alignas(128) std::atomic<std::uint64_t> head{0};
    alignas(128) slot data[slots];
};

/// Pins the calling thread to `cpu` (no-op for -1).
inline void pin_thread(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        throw std::runtime_error("could not pin a thread to CPU " + std::to_string(cpu));
}

/// Seconds to move `messages` 8-byte elements from a thread on `producer_cpu`
/// to one on `consumer_cpu`, from the producer's start to the consumer's end.
inline double time_inprocess_ring(ring_design design, std::uint64_t messages, int producer_cpu,
                                  int consumer_cpu) {
    auto ring = std::make_unique<inprocess_ring>();
    auto seq_ring = std::make_unique<inprocess_sequence_ring>();
    constexpr std::uint64_t mask = inprocess_ring::slots - 1;
    std::atomic<int> ready{0};
    std::uint64_t start = 0, end = 0;
    bool out_of_order = false;
    std::thread consumer([&] {
        pin_thread(consumer_cpu);
        ready.fetch_add(1);
        while (ready.load() < 2) {
        }
        if (design == ring_design::cached_indices) {
            std::uint64_t tail_cache = 0;
            for (std::uint64_t i = 0; i < messages; ++i) {
                while (i == tail_cache) tail_cache = ring->tail.load(std::memory_order_acquire);
                if (ring->data[i & mask] != i) out_of_order = true;
                ring->head.store(i + 1, std::memory_order_release);
            }
        } else {
            for (std::uint64_t i = 0; i < messages; ++i) {
                auto& s = seq_ring->data[i & mask];
                while (s.sequence.load(std::memory_order_acquire) != i + 1) {
                }
                if (s.value != i) out_of_order = true;
                seq_ring->head.store(i + 1, std::memory_order_release);
            }
        }
        end = now_ns();
    });
    cpu_set_t original;
    pthread_getaffinity_np(pthread_self(), sizeof original, &original);
    pin_thread(producer_cpu);
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    start = now_ns();
    std::uint64_t head_cache = 0;
    if (design == ring_design::cached_indices) {
        for (std::uint64_t i = 0; i < messages; ++i) {
            while (i - head_cache >= inprocess_ring::slots)
                head_cache = ring->head.load(std::memory_order_acquire);
            ring->data[i & mask] = i;
            ring->tail.store(i + 1, std::memory_order_release);
        }
    } else {
        for (std::uint64_t i = 0; i < messages; ++i) {
            while (i - head_cache >= inprocess_sequence_ring::slots)
                head_cache = seq_ring->head.load(std::memory_order_acquire);
            auto& s = seq_ring->data[i & mask];
            s.value = i;
            s.sequence.store(i + 1, std::memory_order_release);
        }
    }
    consumer.join();
    pthread_setaffinity_np(pthread_self(), sizeof original, &original);
    if (out_of_order) throw std::runtime_error("in-process ring: an element arrived out of order");
    return static_cast<double>(end - start) * 1e-9;
}

}  // namespace shmds_bench
