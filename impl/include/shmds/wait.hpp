// shmds/wait.hpp: how a blocking call of a process-safe structure waits
// (public; each handle takes its own wait_options, so a spinning producer
// and a sleeping consumer work together). The protocol behind it, futex and
// membarrier, is in detail/waiting.hpp.
#pragma once

#include <chrono>

namespace shmds {

/// How a blocking call waits for room or for an element.
enum class wait_strategy {
    spin,             ///< poll without sleeping (lowest latency; burns a CPU)
    spin_then_sleep,  ///< poll for `spin_for`, then sleep on a futex
    sleep,            ///< sleep on a futex at once
};

struct wait_options {
    wait_strategy strategy = wait_strategy::spin_then_sleep;
    /// How long spin_then_sleep polls before sleeping.
    std::chrono::nanoseconds spin_for{std::chrono::microseconds(20)};
    /// Safety net: a sleeper looks again after this long even without a
    /// wake-up. Wake-ups are not lost, so this only bounds the damage of a
    /// bug or of processes that disagree about membarrier support; tests set
    /// it very long to prove that no wake-up is missing.
    std::chrono::nanoseconds recheck_after{std::chrono::milliseconds(200)};
};

}  // namespace shmds
