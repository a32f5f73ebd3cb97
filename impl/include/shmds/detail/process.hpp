// shmds/detail/process.hpp: per-process facts the concurrent structures rely
// on: a counter that changes in every fork() child, and the asymmetric fence
// that lets wakers skip a full fence on every operation.
//
// Asymmetric fence. A sleeper announces itself, then must see any element a
// waker published before the waker looked for sleepers; the waker publishes,
// then must see the announcement. Both orders need a StoreLoad fence. Here
// the waker pays only a compiler barrier (light()), and the sleeper, which is
// about to pay for a futex anyway, pays a membarrier(2) that forces a full
// fence on every thread of every registered process (heavy()). Every process
// that uses a concurrent structure registers when it first takes part in one;
// a fork() child inherits the registration with the address space. Where
// membarrier is unavailable both sides fall back to real fences.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace shmds::detail {

/// Incremented in every fork() child (by the participant-lock registry's
/// fork handler): handles that hold a role compare it to notice that they
/// were copied into a child and must not act for their parent.
inline std::atomic<std::uint64_t> fork_generation{0};

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

/// A process-wide intrusive list (Node has `prev` and `next`) for things a
/// fork() handler must visit. Its mutex is taken before a fork and released
/// after it in both processes, so the handlers see a list nobody is editing.
template <class Node>
class fork_aware_list {
public:
    void add(Node* node) {
        std::lock_guard lock(mutex_);
        node->next = head_;
        if (head_) head_->prev = node;
        head_ = node;
    }

    void remove(Node* node) noexcept {
        std::lock_guard lock(mutex_);
        if (node->prev) node->prev->next = node->next;
        if (node->next) node->next->prev = node->prev;
        if (head_ == node) head_ = node->next;
        node->prev = node->next = nullptr;
    }

    void lock_for_fork() { mutex_.lock(); }
    void unlock_after_fork() { mutex_.unlock(); }

    /// Visits every node; only between lock_for_fork and unlock_after_fork.
    template <class Visit>
    void for_each_while_locked(Visit&& visit) {
        for (Node* node = head_; node; node = node->next) visit(node);
    }

private:
    std::mutex mutex_;
    Node* head_ = nullptr;
};

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

    /// Sleeper side: after announcing itself, before looking again.
    static void heavy() noexcept {
        if (!membarrier_works() || ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) != 0)
            full_fence();
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
