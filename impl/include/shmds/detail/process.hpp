// shmds/detail/process.hpp: per-process facts the concurrent structures rely
// on: the asymmetric fence that lets wakers skip a full fence on every
// operation.
//
// Asymmetric fence. A sleeper announces itself, then must see any element a
// waker published before the waker looked for sleepers; the waker publishes,
// then must see the announcement. Both orders need a StoreLoad fence. Here
// the waker pays only a compiler barrier (light()), and the sleeper, which is
// about to pay for a futex anyway, pays a membarrier(2) that forces a full
// fence on every thread of every registered process (heavy()). Every process
// that uses a concurrent structure registers when it first takes part in one;
// a fork() child inherits the registration with the address space.
//
// light() is a compiler barrier and nothing else, on every call: the fast
// path of every push and pop pays no check for the unusual case. That case
// is handled where it arises, through the wait channel's fence bit, which
// sends every waker of the channel to a slow path that fences for real
// (waiting.hpp): a process that cannot register (membarrier unsupported,
// or refused) sets it on a structure's channels when it joins the
// structure, before its first light(); a sleeper whose heavy() could not use
// membarrier (refused at run time) sets it on the channel it sleeps on.
#pragma once

#include <atomic>
#include <cstdint>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shmds/detail/atomics.hpp"

namespace shmds::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

#if defined(__SANITIZE_THREAD__)
#define SHMDS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMDS_TSAN 1
#endif
#endif

/// A sequentially consistent fence. ThreadSanitizer does not model
/// stand-alone fences (GCC refuses them under -fsanitize=thread); there a
/// seq_cst read-modify-write on a private word stands in, which it models.
inline void full_fence() noexcept {
#ifdef SHMDS_TSAN
    static std::atomic<int> word{0};
    word.fetch_add(0, std::memory_order_seq_cst);
#else
    thread_fence(std::memory_order_seq_cst);
#endif
}

class asymmetric_fence {
public:
    /// Registers this process, if it was not yet, so that sleepers' heavy
    /// fences reach it; returns whether they do. A participant calls it when
    /// it joins a structure, before its first light(), and when it returns
    /// false, sets the fence bit of the structure's wait channels
    /// (waiting.hpp: prepare_waker).
    [[nodiscard]] static bool registered() noexcept {
        SHMDS_MODEL_REGISTERED();
        return membarrier_works();
    }

    /// Waker side: after publishing, before reading the sleeper count. Only
    /// in a participant that has joined (see registered()).
    static void light() noexcept {
        SHMDS_MODEL_LIGHT_FENCE();
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }

    /// Sleeper side: after announcing itself, before looking again. Returns
    /// false when it could fence only its own thread (membarrier unsupported,
    /// or refused now: ENOMEM, a seccomp policy): the wakers must then fence
    /// for real too (waiting.hpp tells them so through the wait channel).
    [[nodiscard]] static bool heavy() noexcept {
        SHMDS_MODEL_HEAVY_FENCE();
        if (membarrier_works() && ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0)
            return true;
        full_fence();
        return false;
    }

private:
    enum : int { not_asked = 0, works = 1, does_not_work = 2 };
    /// What registration answered, once asked.
    static inline std::atomic<int> membarrier_state{not_asked};

    static bool membarrier_works() noexcept {
        const int known = membarrier_state.load(std::memory_order_relaxed);
        if (known == not_asked) [[unlikely]]
            return register_for_membarrier();
        return known == works;
    }
    /// Asks once per process (two threads asking at once both register,
    /// which is harmless). The answer is stored only after the kernel has
    /// registered the process, so whoever reads `works` may rely on it.
    [[gnu::cold, gnu::noinline]] static bool register_for_membarrier() noexcept {
        const bool registered = [] {
            long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
            if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return false;
            return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
        }();
        membarrier_state.store(registered ? works : does_not_work, std::memory_order_relaxed);
        return registered;
    }
};

}  // namespace shmds::detail
