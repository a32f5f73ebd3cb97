// bench/harness/channel.hpp: the one interface every transport implements
// for the multi-process workloads, so that a new transport (a shmds
// structure, a pipe, a Boost queue, ...) is one small adapter.
//
// A channel carries fixed-size messages one way. The parent constructs it
// before forking (it owns the named resources and removes them on
// destruction, whatever happened); each member process then opens its end:
//
//   Channel ch(config);                          // parent
//   auto tx = ch.open_sender();                  // in a producer process
//   tx.send(bytes);                              // blocks while full
//   auto rx = ch.open_receiver();                // in a consumer process
//   rx.receive_for(bytes, timeout) -> bool       // false when nothing came
//
// `bytes` points at config.payload bytes. Channel::name() names the
// transport in results; Channel::max_senders / max_receivers say what it
// supports (1 for SPSC-like transports); Channel::copies how many times a
// message's bytes are copied on their way from the sender's buffer to the
// receiver's (into and out of the kernel, a queue's slot, a library's
// message: every copy the transport makes; the report lists them). Optional: `static bool
// supports(wait_mode)` when some ways of waiting do not apply (the
// benchmark then says so), `static std::string unavailable()` when the
// machine refuses this payload (a kernel limit, say: the reason, or ""), and
// `lifo = true` for stacks (the delivery check then skips the order check).
//
// The harness knows no transport: the wait modes and the message type are
// its own, and each adapter maps them to its transport's.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>

namespace shmds_bench {

/// How a channel's blocking calls wait: poll without sleeping; poll for a
/// short while (the transport's default, about 20 us), then sleep in the
/// kernel; or sleep at once.
enum class wait_mode { spin, spin_then_sleep, sleep };

struct channel_config {
    std::string tag{};            ///< unique per run: names the channel's resources
    std::size_t payload = 8;      ///< bytes per message (at least 8: the first 8 carry a timestamp)
    std::size_t capacity = 1024;  ///< messages the channel holds, where it has a capacity
    wait_mode wait = wait_mode::spin;
    /// Set by the ping-pong workload: this channel is one direction of a
    /// request and reply between one sender and one receiver. A transport
    /// with a socket type for that (ZeroMQ's PAIR, NNG's pair0) uses it;
    /// the others carry a round trip as they carry a stream.
    bool round_trip = false;
};

/// A message of exactly N bytes, for transports that carry a fixed-size
/// element type.
template <std::size_t N>
struct message {
    static_assert(N >= 8, "messages carry an 8-byte timestamp");
    std::array<std::byte, N> bytes;
};

template <class C>
concept channel = requires(C& ch, const channel_config& config, const std::byte* in, std::byte* out) {
    { C::name() } -> std::convertible_to<std::string>;
    { C::max_senders } -> std::convertible_to<std::size_t>;
    { C::max_receivers } -> std::convertible_to<std::size_t>;
    { C::copies } -> std::convertible_to<int>;
    {ch.open_sender()};
    {ch.open_receiver()};
    ch.open_sender().send(in);
    { ch.open_receiver().receive_for(out, std::chrono::milliseconds(1)) } -> std::same_as<bool>;
};

/// Wait mode names as they appear in benchmark names.
inline const char* to_string(wait_mode w) {
    switch (w) {
        case wait_mode::spin:
            return "spin";
        case wait_mode::spin_then_sleep:
            return "spin_then_sleep";
        case wait_mode::sleep:
            return "sleep";
    }
    return "?";
}

}  // namespace shmds_bench
