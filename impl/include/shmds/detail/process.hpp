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
// a fork() child inherits the registration with the address space. A process
// where membarrier is unavailable fences for real on both sides; a sleeper
// whose heavy() could not use membarrier (unavailable, or refused at run
// time) makes every waker of its channel fence for real from then on.
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
    /// Registers this process so that sleepers' heavy fences reach it. Call
    /// before the first light() of the process (structure handles do).
    static void ensure_registered() noexcept { (void)membarrier_works(); }

    /// Waker side: after publishing, before reading the sleeper count.
    static void light() noexcept {
        SHMDS_MODEL_LIGHT_FENCE();
        if (membarrier_state.load(std::memory_order_relaxed) == works) [[likely]]
            std::atomic_signal_fence(std::memory_order_seq_cst);
        else
            light_without_membarrier();
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
    /// What registration answered, once asked. A constant-initialised word
    /// rather than a function-local static: every wake-up check of every
    /// push and pop reads it, and a relaxed load and one branch cost less
    /// than a static's guard check and its value (two loads, two branches).
    static inline std::atomic<int> membarrier_state{not_asked};

    static bool membarrier_works() noexcept {
        const int known = membarrier_state.load(std::memory_order_relaxed);
        if (known == not_asked) [[unlikely]]
            return register_for_membarrier();
        return known == works;
    }
    /// light() before the process asked, or where membarrier does not work.
    [[gnu::cold, gnu::noinline]] static void light_without_membarrier() noexcept {
        if (!membarrier_works()) full_fence();
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
