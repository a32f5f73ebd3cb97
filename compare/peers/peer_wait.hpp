// compare/peers/peer_wait.hpp: how a peer that has a non-blocking and a
// blocking receive waits, for every peer alike: exactly as the project's own
// structures wait (spin, spin_then_sleep for 20 us, or sleep), so that a
// peer pays nothing in the harness that the project does not.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>

#include "harness/channel.hpp"

namespace shmds_compare {

/// How long spin_then_sleep polls before blocking (the project's default).
inline constexpr std::chrono::microseconds peer_spin_for{20};

/// Polls `attempt` while the wait strategy spins, then calls `block(time
/// left)` once. The first attempt reads no clock, and spinning reads it once
/// per 64 attempts. Returns whether an attempt or the block succeeded.
template <class Attempt, class Block>
bool peer_wait(shmds_bench::wait_mode wait, std::chrono::nanoseconds timeout, Attempt&& attempt,
               Block&& block) {
    if (attempt()) return true;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout;
    if (wait != shmds_bench::wait_mode::sleep) {
        const auto spin_until =
            wait == shmds_bench::wait_mode::spin ? deadline : std::min(deadline, start + peer_spin_for);
        for (unsigned round = 1;; ++round) {
            if (attempt()) return true;
            if ((round & 63) == 0 && std::chrono::steady_clock::now() >= spin_until) break;
        }
        if (wait == shmds_bench::wait_mode::spin) return attempt();
    }
    const auto left = deadline - std::chrono::steady_clock::now();
    return block(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::max(left, std::chrono::steady_clock::duration::zero())));
}

/// The block of peer_wait for a messaging library (ZeroMQ, NNG) whose
/// receive timeout is a socket option in whole milliseconds: with no time
/// `left`, one more `poll()`; otherwise the timeout rounded up (and at most
/// INT_MAX), given to `set_timeout` only when it differs from `last_set`
/// (the harness asks for the same timeout each time), then `receive()`.
template <class Millis, class SetTimeout, class Poll, class Receive>
bool receive_within(std::chrono::nanoseconds left, Millis& last_set, SetTimeout&& set_timeout, Poll&& poll,
                    Receive&& receive) {
    if (left <= std::chrono::nanoseconds::zero()) return poll();
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    const auto timeout_ms = static_cast<Millis>(std::min<long long>(ms, INT_MAX));
    if (timeout_ms != last_set) {
        set_timeout(timeout_ms);
        last_set = timeout_ms;
    }
    return receive();
}

}  // namespace shmds_compare
