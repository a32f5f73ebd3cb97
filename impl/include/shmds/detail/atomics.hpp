// shmds/detail/atomics.hpp: the atomic type, the stand-alone fence and the
// futex and membarrier entry points that the lock-free structures (the SPSC
// and MPMC queues and their wait channels) share between processes, named in
// one place.
//
// In every build of the library these are std::atomic,
// std::atomic_thread_fence and the system calls, at no cost. A test build
// may define SHMDS_ATOMICS_MODEL to a header of its own that puts a
// weak-memory model under them instead (impl/tests/model/weak_memory.hpp):
// then a load may return an older value that the C++ memory model still
// allows, and a memory order weaker than the algorithm needs shows up on
// x86-64 too, where the hardware itself would hide it. Such a header defines
// shmds::detail::atomic<T> (same size and alignment as std::atomic<T>: the
// shared layout does not change) and the SHMDS_MODEL_* hooks below.
#pragma once

#include <atomic>

#if defined(SHMDS_ATOMICS_MODEL)
#include SHMDS_ATOMICS_MODEL
#else
namespace shmds::detail {
template <class T>
using atomic = std::atomic<T>;

inline void thread_fence(std::memory_order order) noexcept {
    std::atomic_thread_fence(order);
}
}  // namespace shmds::detail

/// Hooks a model takes over: each may return from the function it opens.
/// futex_wait(word, expected, timeout) and futex_wake(word, count):
#define SHMDS_MODEL_FUTEX_WAIT(word, expected, timeout)
#define SHMDS_MODEL_FUTEX_WAKE(word, count)
/// asymmetric_fence::heavy(), light() and registered():
#define SHMDS_MODEL_HEAVY_FENCE()
#define SHMDS_MODEL_LIGHT_FENCE()
#define SHMDS_MODEL_REGISTERED()
#endif
