// bench/workloads/scenarios.hpp: the multi-process workloads, each a
// template over any channel (see harness/channel.hpp). The members time
// themselves with CLOCK_MONOTONIC (one clock for all processes of a machine)
// and report through shared memory; latencies go into histograms that are
// merged afterwards.
//
//   throughput   P senders push `messages` in total, C receivers take them;
//                time from the first send to the last receive.
//   ping_pong    one message bounces between two processes; each round
//                trip is recorded (less the clock's cost).
//   latency      one sender sends on a fixed schedule (open loop: the
//                timestamp is the *scheduled* time, so a sender held up by
//                a full channel does not hide the queueing delay) and the
//                receiver records arrival minus scheduled time.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/channel.hpp"
#include "harness/histogram.hpp"
#include "harness/machine.hpp"
#include "harness/team.hpp"

namespace shmds_bench {

/// Where a run's members go: pinned one per CPU while there are enough CPUs,
/// unpinned (and the run marked oversubscribed) otherwise.
struct placement {
    std::vector<int> cpus;  ///< -1 for unpinned members
    bool oversubscribed = false;

    static placement for_members(std::size_t members) {
        placement p;
        const std::vector<int> allowed = allowed_cpus();
        p.oversubscribed = members > allowed.size();
        for (std::size_t i = 0; i < members; ++i) p.cpus.push_back(p.oversubscribed ? -1 : allowed[i]);
        return p;
    }
};

struct throughput_result {
    std::uint64_t messages = 0;
    double seconds = 0;
    bool oversubscribed = false;
};

struct latency_result {
    latency_histogram histogram;  ///< nanoseconds
    double seconds = 0;
    std::uint64_t messages = 0;
    bool oversubscribed = false;
};

constexpr auto run_deadline = std::chrono::seconds(120);
constexpr auto poll = std::chrono::milliseconds(5);

template <channel Channel>
throughput_result run_throughput(const channel_config& config, std::size_t senders, std::size_t receivers,
                                 std::uint64_t messages) {
    if (senders > Channel::max_senders || receivers > Channel::max_receivers)
        throw std::invalid_argument(Channel::name() + " takes at most " +
                                    std::to_string(Channel::max_senders) + " senders and " +
                                    std::to_string(Channel::max_receivers) + " receivers");
    Channel ch(config);
    struct board {
        std::atomic<std::uint64_t> received{0};
        std::atomic<std::uint64_t> first_send{UINT64_MAX};
        std::atomic<std::uint64_t> last_receive{0};
    };
    shared<board> b;
    const auto where = placement::for_members(senders + receivers);
    team t(run_deadline);
    const std::uint64_t per_sender = messages / senders;
    const std::uint64_t total = per_sender * senders;
    for (std::size_t s = 0; s < senders; ++s) {
        t.spawn("sender " + std::to_string(s), where.cpus[s], [&] {
            auto tx = ch.open_sender();
            std::vector<std::byte> payload(config.payload);
            t.arrive_and_wait();
            store_min(b->first_send, now_ns());
            for (std::uint64_t i = 0; i < per_sender && !t.aborted(); ++i) {
                std::memcpy(payload.data(), &i, sizeof i);
                tx.send(payload.data());
            }
        });
    }
    for (std::size_t r = 0; r < receivers; ++r) {
        t.spawn("receiver " + std::to_string(r), where.cpus[senders + r], [&] {
            auto rx = ch.open_receiver();
            std::vector<std::byte> payload(config.payload);
            t.arrive_and_wait();
            // Counted locally and published in batches: a shared counter
            // touched per message would be measured along with the channel.
            std::uint64_t pending = 0;
            while (!t.aborted()) {
                if (rx.receive_for(payload.data(), poll) && ++pending < 256) continue;
                if (b->received.fetch_add(pending, std::memory_order_relaxed) + pending >= total) break;
                pending = 0;
            }
            store_max(b->last_receive, now_ns());
        });
    }
    t.run(Channel::name() + " throughput");
    if (b->received.load() != total)
        throw std::runtime_error(Channel::name() + " throughput: messages went missing");
    throughput_result result;
    result.messages = total;
    result.seconds = static_cast<double>(b->last_receive.load() - b->first_send.load()) * 1e-9;
    result.oversubscribed = where.oversubscribed;
    return result;
}

template <channel Channel>
latency_result run_ping_pong(const channel_config& config, std::uint64_t round_trips) {
    channel_config there = config, back = config;
    there.tag += "-there";
    back.tag += "-back";
    Channel forth_ch(there), back_ch(back);
    shared<latency_result> result;
    const auto where = placement::for_members(2);
    const std::uint64_t clock_cost = clock_cost_ns();
    const std::uint64_t warm_up = std::max<std::uint64_t>(100, round_trips / 10);
    team t(run_deadline);
    t.spawn("pinger", where.cpus[0], [&] {
        auto tx = forth_ch.open_sender();
        auto rx = back_ch.open_receiver();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        const std::uint64_t start = now_ns();
        for (std::uint64_t i = 0; i < warm_up + round_trips && !t.aborted(); ++i) {
            const std::uint64_t sent = now_ns();
            tx.send(payload.data());
            while (!rx.receive_for(payload.data(), poll))
                if (t.aborted()) return;
            const std::uint64_t rtt = now_ns() - sent;
            if (i >= warm_up) result->histogram.record(rtt > clock_cost ? rtt - clock_cost : 0);
        }
        result->seconds = static_cast<double>(now_ns() - start) * 1e-9;
        result->messages = round_trips;
    });
    t.spawn("ponger", where.cpus[1], [&] {
        auto rx = forth_ch.open_receiver();
        auto tx = back_ch.open_sender();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        for (std::uint64_t i = 0; i < warm_up + round_trips && !t.aborted(); ++i) {
            while (!rx.receive_for(payload.data(), poll))
                if (t.aborted()) return;
            tx.send(payload.data());
        }
    });
    t.run(Channel::name() + " ping-pong");
    latency_result out = *result;
    out.oversubscribed = where.oversubscribed;
    return out;
}

/// Open-loop one-way latency at `rate` messages per second.
template <channel Channel>
latency_result run_latency(const channel_config& config, double rate, std::uint64_t messages) {
    Channel ch(config);
    shared<latency_result> result;
    struct progress {
        std::atomic<std::uint64_t> received{0};
    };
    shared<progress> p;
    const auto where = placement::for_members(2);
    const auto interval = static_cast<std::uint64_t>(1e9 / rate);
    team t(run_deadline);
    t.spawn("sender", where.cpus[0], [&] {
        auto tx = ch.open_sender();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        const std::uint64_t start = now_ns() + 1000;
        for (std::uint64_t i = 0; i < messages && !t.aborted(); ++i) {
            const std::uint64_t scheduled = start + i * interval;
            while (now_ns() < scheduled) {
            }
            std::memcpy(payload.data(), &scheduled, sizeof scheduled);
            tx.send(payload.data());
        }
    });
    t.spawn("receiver", where.cpus[1], [&] {
        auto rx = ch.open_receiver();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        const std::uint64_t start = now_ns();
        while (p->received.load() < messages && !t.aborted()) {
            if (!rx.receive_for(payload.data(), poll)) continue;
            const std::uint64_t arrived = now_ns();
            std::uint64_t scheduled = 0;
            std::memcpy(&scheduled, payload.data(), sizeof scheduled);
            result->histogram.record(arrived > scheduled ? arrived - scheduled : 0);
            p->received.fetch_add(1);
        }
        result->seconds = static_cast<double>(now_ns() - start) * 1e-9;
        result->messages = messages;
    });
    t.run(Channel::name() + " latency");
    latency_result out = *result;
    out.oversubscribed = where.oversubscribed;
    return out;
}

}  // namespace shmds_bench
