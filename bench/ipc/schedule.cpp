// bench/ipc/schedule.cpp: the transports a run measures (for_each_transport:
// a new transport is one line there, and its header among the includes) and
// the order its benchmarks are registered in. Times nothing itself: every
// run is a family's (families.hpp).
#include "ipc/schedule.hpp"

#include <algorithm>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "adapters/shm_ring_channel.hpp"
#include "adapters/shmds_channels.hpp"
#include "ipc/families.hpp"
#include "ipc/runs.hpp"

#if SHMDS_WITH_COMPARE
#include "peers/boost_channels.hpp"
#include "peers/kernel_channels.hpp"
#endif
#if SHMDS_WITH_MESSAGING
#include "peers/nng_channels.hpp"
#include "peers/zeromq_channels.hpp"
#endif

namespace shmds_bench::ipc {
namespace {

/// A transport, as a type: Channel<Payload> is its adapter for each payload.
template <template <std::size_t> class Channel>
struct transport {};

/// Calls `f(transport<C>{})` for every transport: the project's structures
/// and the cross-process yardstick ring, then (unless --no-compare) the
/// peers. Registering each scenario for all of them in turn runs them side
/// by side in time, on the same CPUs.
template <class F>
void for_each_transport(F&& f) {
    f(transport<shmds_spsc>{});
    f(transport<shmds_mpmc>{});
    f(transport<shmds_stack>{});
    f(transport<shmds_message_queue>{});
    f(transport<shm_spsc_ring>{});  // the cross-process yardsticks
    f(transport<shm_mpmc_ring>{});
#if SHMDS_WITH_COMPARE
    if (!options.compare) return;
    f(transport<shmds_compare::boost_lockfree_spsc>{});
    f(transport<shmds_compare::boost_locked_ring>{});
    f(transport<shmds_compare::boost_message_queue>{});
    f(transport<shmds_compare::posix_mq_channel>{});
    f(transport<shmds_compare::pipe_channel>{});
    f(transport<shmds_compare::unix_socket_channel>{});
#endif
#if SHMDS_WITH_MESSAGING
    f(transport<shmds_compare::zeromq_channel>{});
    f(transport<shmds_compare::nng_channel>{});
#endif
}

/// The in-process yardstick rings (see inprocess_ring.hpp), by the name their
/// benchmarks carry.
constexpr std::pair<ring_design, const char*> inprocess_rings[] = {
    {ring_design::cached_indices, "inprocess_spsc_ring"},
    {ring_design::slot_sequences, "inprocess_spsc_sequence_ring"},
};

/// A member of an interleaved group: registers its run in the slot it is given.
using member = std::function<void(const slot&)>;

/// Runs whose ratios make the headlines: every member runs once per round.
struct interleaved_group {
    std::string name;
    std::vector<member> members;
};

/// Registers every group's rounds spread over the whole run: round k of each
/// group (the groups, and the members within each, in an order shuffled
/// afresh every round, so that neither half of a ratio always runs first, on
/// a machine the other warmed), then the k-th share of the plain benchmarks.
/// A group's rounds thus sample the placements of the CPUs over the whole
/// run, not over the few minutes its rounds would take back to back: the
/// spread of its ratios, and so their confidence interval, includes how the
/// machine drifts during a run.
/// With --only-round=K just round K and its share are registered, in the
/// order a whole run with the same seed would give them: scripts/run-benchmarks
/// runs each round in a process of its own (see there why) and merges them.
void register_spread_over_run(std::vector<interleaved_group> groups,
                              const std::vector<std::function<void()>>& plain, std::mt19937_64& order) {
    const int rounds = options.pair_rounds > 0 ? options.pair_rounds : options.quick ? 2 : 24;
    if (options.only_round >= rounds)
        throw std::invalid_argument("--only-round=" + std::to_string(options.only_round) +
                                    ": there are only " + std::to_string(rounds) + " rounds (0 to " +
                                    std::to_string(rounds - 1) + ")");
    std::size_t next_plain = 0;
    for (int round = 0; round < rounds; ++round) {
        const bool wanted = options.only_round < 0 || options.only_round == round;
        std::shuffle(groups.begin(), groups.end(),
                     order);  // even when unwanted: the same order as a whole run
        for (interleaved_group& g : groups) {
            std::shuffle(g.members.begin(), g.members.end(), order);
            if (wanted)
                for (const member& m : g.members) m(slot{g.name, round});
        }
        const std::size_t share_end = plain.size() * static_cast<std::size_t>(round + 1) / rounds;
        for (; next_plain < share_end; ++next_plain)
            if (wanted) plain[next_plain]();
    }
}

/// The runs every headline ratio is taken from, as interleaved groups:
/// throughput of 8-byte elements, 1 x 1 (the in-process rings and every
/// transport with every way of waiting it has), ping-pong round trips (every
/// transport and way of waiting), and the false-sharing counters. A
/// transport that cannot wait some way is registered once, outside the
/// groups, to say why.
std::vector<interleaved_group> headline_groups() {
    using shmds_bench::wait_mode;
    const wait_mode all_waits[] = {wait_mode::spin, wait_mode::spin_then_sleep, wait_mode::sleep};
    interleaved_group throughput{"throughput_8B", {}};
    // (Each ring captured whole: clang 14 cannot capture a structured binding.)
    for (const auto& ring : inprocess_rings)
        throughput.members.emplace_back(
            [ring](const slot& s) { register_inprocess_ring(ring.first, ring.second, s); });
    interleaved_group ping_pong{"round_trips", {}};
    for (auto wait : all_waits)
        for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
            if (!cannot_run<C<8>>(wait, 1, 1).empty()) {
                register_throughput<C, 8>(wait, 1, 1);
                register_ping_pong<C>(wait);
                return;
            }
            throughput.members.emplace_back(
                [wait](const slot& s) { register_throughput<C, 8>(wait, 1, 1, s); });
            ping_pong.members.emplace_back([wait](const slot& s) { register_ping_pong<C>(wait, s); });
        });
    interleaved_group false_sharing{"false_sharing", {}};
    for (auto layout : {counter_layout::packed, counter_layout::line_64, counter_layout::allocator,
                        counter_layout::line_128})
        false_sharing.members.emplace_back(
            [layout](const slot& s) { register_false_sharing_counters(layout, s); });
    return {std::move(throughput), std::move(ping_pong), std::move(false_sharing)};
}

/// Every benchmark that is not part of a headline group (each repeated by
/// --benchmark_repetitions, its repetitions back to back), as registrations
/// to be made in this order.
std::vector<std::function<void()>> plain_benchmarks() {
    using shmds_bench::wait_mode;
    std::vector<std::function<void()>> plain{register_false_sharing_rings};
    std::vector<std::size_t> payloads = options.payloads;
    if (payloads.empty())
        payloads =
            options.quick ? std::vector<std::size_t>{8} : std::vector<std::size_t>{8, 64, 512, 4096, 65536};
    const auto waits =
        options.quick ? std::vector<wait_mode>{wait_mode::spin, wait_mode::sleep}
                      : std::vector<wait_mode>{wait_mode::spin, wait_mode::spin_then_sleep, wait_mode::sleep};
    // The payload sweep (8 bytes, 1 x 1, runs in the headline group).
    for (auto wait : waits)
        for (std::size_t payload : payloads)
            if (payload != 8)
                for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
                    plain.emplace_back([=] {
                        register_throughput_for<C>(payload, wait, 1, 1,
                                                   std::make_index_sequence<std::size(supported_payloads)>());
                    });
                });
    // Scaling with senders x receivers (spinning members beyond the CPUs are
    // marked oversubscribed; sleeping ones are fair game).
    for (auto wait : {wait_mode::spin, wait_mode::sleep})
        for (std::size_t s : options.senders)
            for (std::size_t r : options.receivers)
                if (s + r > 2 && !options.quick)
                    for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
                        plain.emplace_back([=] { register_throughput<C, 8>(wait, s, r); });
                    });
    // Latency under load, with the CPU each side spends per message: every
    // way of waiting (spin_then_sleep is what a service that must not burn
    // a core would pick), at 10%, 50% and 90% of each transport's peak.
    for (double fraction : {0.1, 0.5, 0.9}) {
        if (options.quick && fraction != 0.5) continue;
        for (auto wait : waits)
            for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
                plain.emplace_back([=] { register_latency<C>(wait, fraction); });
            });
    }
    return plain;
}

}  // namespace

std::string transports_for_context() {
    std::string list;
    const auto add = [&list](const std::string& name, const char* role) {
        list += (list.empty() ? "" : ",") + name + ":" + role;
    };
    for_each_transport([&]<template <std::size_t> class C>(transport<C>) {
        if constexpr (requires { C<8>::yardstick; })
            add(C<8>::name(), "ring");
        else
            add(C<8>::name(), C<8>::name().rfind("shmds_", 0) == 0 ? "project" : "peer");
    });
    for (const auto& ring : inprocess_rings) add(ring.second, "ring");
    return list;
}

std::string copies_for_context() {
    std::string list;
    for_each_transport([&list]<template <std::size_t> class C>(transport<C>) {
        list += (list.empty() ? "" : ",") + C<8>::name() + ":" + std::to_string(C<8>::copies);
    });
    return list;
}

void register_all() {
    if (options.only_round <= 0) register_limits();  // once per run, not once per round's process
    std::mt19937_64 order(options.seed);
    auto groups = headline_groups();
    register_spread_over_run(std::move(groups), plain_benchmarks(), order);
}

}  // namespace shmds_bench::ipc
