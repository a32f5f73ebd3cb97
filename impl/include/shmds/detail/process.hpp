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
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

class asymmetric_fence {
public:
    /// Registers this process so that sleepers' heavy fences reach it. Call
    /// before the first light() of the process (structure handles do).
    static void ensure_registered() noexcept { (void)membarrier_works(); }

    /// Waker side: after publishing, before reading the sleeper count.
    static void light() noexcept {
        if (membarrier_works())
            std::atomic_signal_fence(std::memory_order_seq_cst);
        else
            full_fence();
    }

    /// Sleeper side: after announcing itself, before looking again. Returns
    /// false when it could fence only its own thread (membarrier unsupported,
    /// or refused now: ENOMEM, a seccomp policy): the wakers must then fence
    /// for real too (waiting.hpp tells them so through the wait channel).
    [[nodiscard]] static bool heavy() noexcept {
        if (membarrier_works() && ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0)
            return true;
        full_fence();
        return false;
    }

private:
    static bool membarrier_works() noexcept {
        static const bool works = [] {
            long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
            if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return false;
            return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
        }();
        return works;
    }
};

}  // namespace shmds::detail
