// shmds/detail/fault.hpp: named points where tests inject faults.
//
// Compiled to nothing unless SHMDS_FAULT_INJECTION is defined (only the fault
// tests define it, for every file of their executable). A test sets
// fault_hook and, at the point it names, kills the process or stalls it, to
// check what the others see after a crash or a delay at exactly that step.
// Nothing here touches the shared layout.
#pragma once

#ifdef SHMDS_FAULT_INJECTION
namespace shmds::detail {
inline void (*fault_hook)(const char* point) = nullptr;
}  // namespace shmds::detail
#define SHMDS_FAULT_POINT(point)                                             \
    do {                                                                     \
        if (::shmds::detail::fault_hook) ::shmds::detail::fault_hook(point); \
    } while (0)
#else
#define SHMDS_FAULT_POINT(point) \
    do {                         \
    } while (0)
#endif

// SHMDS_INJECTED_WORK(): extra work on the push paths, compiled in only when
// SHMDS_INJECT_SLOWDOWN is defined to a count (the regression gate's tests
// build a benchmark that way to prove the gate notices). Nothing otherwise.
#ifdef SHMDS_INJECT_SLOWDOWN
#define SHMDS_INJECTED_WORK()                                                                  \
    do {                                                                                       \
        for (int shmds_injected = 0; shmds_injected < SHMDS_INJECT_SLOWDOWN; ++shmds_injected) \
            asm volatile("" ::: "memory");                                                     \
    } while (0)
#else
#define SHMDS_INJECTED_WORK() \
    do {                      \
    } while (0)
#endif
