// shmds/detail/durations.hpp: the one clamp for every wait the library
// takes from its caller (a blocking call's timeout, a segment's bound on
// waits for other processes), so that "wait for ever" never overflows a
// clock's arithmetic.
#pragma once

#include <chrono>

namespace shmds::detail {

/// The longest wait: "for ever" without overflowing the clock's arithmetic.
inline constexpr std::chrono::nanoseconds forever = std::chrono::hours(24 * 365 * 100);

/// True for a zero or negative timeout: the call is a poll, which must cost
/// no more than its try_ form (no clock, no announcement, no barrier).
template <class Rep, class Period>
constexpr bool is_poll(std::chrono::duration<Rep, Period> timeout) noexcept {
    return timeout <= std::chrono::duration<Rep, Period>::zero();
}

/// `timeout` clamped to [0, forever], in `To` (nanoseconds unless asked).
template <class To = std::chrono::nanoseconds, class Rep, class Period>
constexpr To bounded(std::chrono::duration<Rep, Period> timeout) noexcept {
    using namespace std::chrono;
    if (timeout <= duration<Rep, Period>::zero()) return To::zero();
    if (duration_cast<duration<double>>(timeout) >= duration<double>(forever))
        return duration_cast<To>(forever);
    return duration_cast<To>(timeout);
}

}  // namespace shmds::detail
