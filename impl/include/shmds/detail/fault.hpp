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
