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
// supports (1 for SPSC-like transports). Optional: `static bool
// supports(shmds::wait_strategy)` when some ways of waiting do not apply (the
// benchmark then says so), `static std::string unavailable()` when the
// machine refuses this payload (a kernel limit, say: the reason, or ""), and
// `lifo = true` for stacks (the delivery check then skips the order check).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>

#include <shmds/wait.hpp>

namespace shmds_bench {

struct channel_config {
    std::string tag;              ///< unique per run: names the channel's resources
    std::size_t payload = 8;      ///< bytes per message (at least 8: the first 8 carry a timestamp)
    std::size_t capacity = 1024;  ///< messages the channel holds, where it has a capacity
    shmds::wait_strategy wait = shmds::wait_strategy::spin;
};

template <class C>
concept channel = requires(C& ch, const channel_config& config, const std::byte* in, std::byte* out) {
    { C::name() } -> std::convertible_to<std::string>;
    { C::max_senders } -> std::convertible_to<std::size_t>;
    { C::max_receivers } -> std::convertible_to<std::size_t>;
    {ch.open_sender()};
    {ch.open_receiver()};
    ch.open_sender().send(in);
    { ch.open_receiver().receive_for(out, std::chrono::milliseconds(1)) } -> std::same_as<bool>;
};

/// Wait strategy names as they appear in benchmark names.
inline const char* to_string(shmds::wait_strategy w) {
    switch (w) {
        case shmds::wait_strategy::spin:
            return "spin";
        case shmds::wait_strategy::spin_then_sleep:
            return "spin_then_sleep";
        case shmds::wait_strategy::sleep:
            return "sleep";
    }
    return "?";
}

}  // namespace shmds_bench
