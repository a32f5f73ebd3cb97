// bench/workloads/scenarios.hpp: the multi-process workloads, each a
// template over any channel (see harness/channel.hpp). The members time
// themselves with the harness clock (harness/clock.hpp: the TSC where every
// CPU's counter is invariant and agrees, else CLOCK_MONOTONIC; either way one
// clock for all processes of a machine)
// and report through shared memory; latencies go into histograms that are
// merged afterwards.
//
//   throughput   P senders push for a set time (or a set count), C
//                receivers take everything; time from the first send to
//                the last receive, every message accounted for.
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

#include <sys/resource.h>

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
    /// CPU time each side used over its timed loop (run_latency; negative
    /// where not measured): the receiver's whole, waiting included; the
    /// sender's less the time it spun pacing the offered load.
    double sender_cpu_seconds = -1;
    double receiver_cpu_seconds = -1;
};

/// CPU time (user and system) this process has used, all its threads (a
/// transport's own I/O threads count), in nanoseconds.
inline std::uint64_t process_cpu_ns() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const auto ns = [](const timeval& t) {
        return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u +
               static_cast<std::uint64_t>(t.tv_usec) * 1000u;
    };
    return ns(usage.ru_utime) + ns(usage.ru_stime);
}

constexpr auto run_deadline = std::chrono::seconds(120);
constexpr auto poll = std::chrono::milliseconds(5);
/// How long the delivery check's receivers wait for more once every sender
/// has finished and nothing comes. Long: a transport that moves messages
/// through threads of its own (ZeroMQ's, NNG's) can be held up for more than
/// one poll by a busy machine, with messages still on their way (NNG failed
/// 4 checks in 60 so at 5 ms, none in 120 at 1 s). Waiting costs only a check
/// that did lose messages: the others end when the last one arrives.
inline constexpr auto quiet_after_senders = std::chrono::seconds(1);

/// A short correctness run, done before a channel is timed, so that a broken
/// adapter can never produce a flattering number: each of `senders` sends
/// `per_sender` numbered messages (the rest of each payload a pattern derived
/// from the number), and the receivers check that every message arrives
/// exactly once, whole, and in its sender's order. Throws naming the channel
/// and what went wrong.
template <channel Channel>
void check_delivery(const channel_config& config, std::size_t senders, std::size_t receivers,
                    std::uint64_t per_sender = 2000) {
    constexpr std::size_t max_senders = 64, max_per_sender = 4096;
    if (senders > max_senders || per_sender > max_per_sender)
        throw std::invalid_argument("check_delivery: at most 64 senders of 4096 messages");
    Channel ch(config);
    struct board {
        std::atomic<std::uint8_t> seen[max_senders][max_per_sender];
        std::atomic<std::uint64_t> received{0}, duplicates{0}, out_of_order{0}, garbled{0};
        std::atomic<std::uint64_t> senders_done{0};
    };
    shared<board> b;
    const std::uint64_t total = per_sender * senders;
    constexpr bool lifo = requires {
        requires Channel::lifo;
    };
    auto pattern = [](std::uint64_t value, std::size_t k) {
        return static_cast<std::byte>((value * 31 + k) & 0xff);
    };
    team t(run_deadline);
    for (std::size_t s = 0; s < senders; ++s) {
        t.spawn("sender " + std::to_string(s), -1, [&, s] {
            auto tx = ch.open_sender();
            std::vector<std::byte> payload(config.payload);
            t.arrive_and_wait();
            for (std::uint64_t i = 0; i < per_sender && !t.aborted(); ++i) {
                const std::uint64_t value = (std::uint64_t{s} << 40) | i;
                std::memcpy(payload.data(), &value, sizeof value);
                for (std::size_t k = sizeof value; k < payload.size(); ++k) payload[k] = pattern(value, k);
                tx.send(payload.data());
            }
            b->senders_done.fetch_add(1);
        });
    }
    for (std::size_t r = 0; r < receivers; ++r) {
        t.spawn("receiver " + std::to_string(r), -1, [&] {
            auto rx = ch.open_receiver();
            std::vector<std::byte> payload(config.payload);
            std::vector<std::int64_t> last(senders, -1);
            t.arrive_and_wait();
            std::chrono::steady_clock::time_point quiet_since{};
            while (b->received.load() < total && !t.aborted()) {
                if (!rx.receive_for(payload.data(), poll)) {
                    // Nothing for a while after every sender finished: a
                    // channel that lost messages has nothing more to give.
                    if (b->senders_done.load() != senders) continue;
                    const auto now = std::chrono::steady_clock::now();
                    if (quiet_since == std::chrono::steady_clock::time_point{}) quiet_since = now;
                    if (now - quiet_since >= quiet_after_senders) break;
                    continue;
                }
                quiet_since = {};
                std::uint64_t value = 0;
                std::memcpy(&value, payload.data(), sizeof value);
                const std::uint64_t sender = value >> 40, i = value & ((std::uint64_t{1} << 40) - 1);
                bool whole = sender < senders && i < per_sender;
                for (std::size_t k = sizeof value; whole && k < payload.size(); ++k)
                    whole = payload[k] == pattern(value, k);
                if (!whole) {
                    b->garbled.fetch_add(1);
                } else {
                    if (b->seen[sender][i].fetch_add(1) != 0) b->duplicates.fetch_add(1);
                    if (!lifo && static_cast<std::int64_t>(i) <= last[sender]) b->out_of_order.fetch_add(1);
                    last[sender] = static_cast<std::int64_t>(i);
                }
                b->received.fetch_add(1);
            }
        });
    }
    t.run(Channel::name() + " delivery check");
    std::string wrong;
    if (b->garbled.load() != 0) wrong += std::to_string(b->garbled.load()) + " garbled, ";
    if (b->duplicates.load() != 0) wrong += std::to_string(b->duplicates.load()) + " duplicated, ";
    if (b->out_of_order.load() != 0)
        wrong += std::to_string(b->out_of_order.load()) + " out of its sender's order, ";
    std::uint64_t missing = 0;
    for (std::size_t s = 0; s < senders; ++s)
        for (std::uint64_t i = 0; i < per_sender; ++i) missing += b->seen[s][i].load() == 0 ? 1 : 0;
    if (missing != 0) wrong += std::to_string(missing) + " missing, ";
    if (!wrong.empty())
        throw std::runtime_error(Channel::name() + " failed its delivery check (" + std::to_string(senders) +
                                 " x " + std::to_string(receivers) + ", " + std::to_string(total) +
                                 " messages of " + std::to_string(config.payload) +
                                 " B): " + wrong.substr(0, wrong.size() - 2));
}

template <channel Channel>
throughput_result run_throughput(const channel_config& config, std::size_t senders, std::size_t receivers,
                                 std::chrono::nanoseconds duration, std::uint64_t max_messages = UINT64_MAX) {
    if (senders > Channel::max_senders || receivers > Channel::max_receivers)
        throw std::invalid_argument(Channel::name() + " takes at most " +
                                    std::to_string(Channel::max_senders) + " senders and " +
                                    std::to_string(Channel::max_receivers) + " receivers");
    Channel ch(config);
    struct board {
        std::atomic<std::uint64_t> sent{0};
        std::atomic<std::uint64_t> senders_done{0};
        std::atomic<std::uint64_t> received{0};
        std::atomic<std::uint64_t> first_send{UINT64_MAX};
        std::atomic<std::uint64_t> last_receive{0};
    };
    shared<board> b;
    const auto where = placement::for_members(senders + receivers);
    team t(run_deadline);
    const std::uint64_t per_sender = std::max<std::uint64_t>(1, max_messages / senders);
    const auto run_ns = static_cast<std::uint64_t>(duration.count());
    for (std::size_t s = 0; s < senders; ++s) {
        t.spawn("sender " + std::to_string(s), where.cpus[s], [&] {
            auto tx = ch.open_sender();
            std::vector<std::byte> payload(config.payload);
            t.arrive_and_wait();
            const std::uint64_t start = now_ns();
            store_min(b->first_send, start);
            // Sends for `duration` (the clock read once per 64 messages), or
            // its share of max_messages, whichever comes first.
            std::uint64_t i = 0;
            for (; i < per_sender && !t.aborted(); ++i) {
                if ((i & 63) == 0 && now_ns() - start >= run_ns) break;
                std::memcpy(payload.data(), &i, sizeof i);
                tx.send(payload.data());
            }
            b->sent.fetch_add(i);
            b->senders_done.fetch_add(1);
        });
    }
    for (std::size_t r = 0; r < receivers; ++r) {
        t.spawn("receiver " + std::to_string(r), where.cpus[senders + r], [&] {
            auto rx = ch.open_receiver();
            std::vector<std::byte> payload(config.payload);
            t.arrive_and_wait();
            // Counted locally and published in batches: a shared counter
            // touched per message would be measured along with the channel.
            // The time of every 64th message is kept: the run ends at the
            // last one (at most 63 messages early), not at the timeout
            // that tells this receiver the senders are done.
            std::uint64_t pending = 0, got = 0, last_ok = 0;
            while (!t.aborted()) {
                if (rx.receive_for(payload.data(), poll)) {
                    if ((++got & 63) == 0) last_ok = now_ns();
                    if (++pending < 256) continue;
                }
                const std::uint64_t received =
                    b->received.fetch_add(pending, std::memory_order_relaxed) + pending;
                pending = 0;
                if (b->senders_done.load() == senders && received >= b->sent.load()) break;
            }
            store_max(b->last_receive, last_ok != 0 ? last_ok : now_ns());
        });
    }
    t.run(Channel::name() + " throughput");
    if (b->received.load() != b->sent.load())
        throw std::runtime_error(Channel::name() + " throughput: " + std::to_string(b->sent.load()) +
                                 " sent, " + std::to_string(b->received.load()) + " received");
    throughput_result result;
    result.messages = b->received.load();
    result.seconds = static_cast<double>(b->last_receive.load() - b->first_send.load()) * 1e-9;
    result.oversubscribed = where.oversubscribed;
    return result;
}

/// `round_trips` round trips (after a tenth as many to warm up), or as many
/// as fit in `duration`, whichever ends first.
template <channel Channel>
latency_result run_ping_pong(const channel_config& config, std::uint64_t round_trips,
                             std::chrono::nanoseconds duration = std::chrono::hours(1)) {
    channel_config there = config, back = config;
    there.tag += "-there";
    back.tag += "-back";
    there.round_trip = back.round_trip = true;
    Channel forth_ch(there), back_ch(back);
    shared<latency_result> result;
    struct board {
        std::atomic<int> pinger_done{0};
    };
    shared<board> b;
    const auto where = placement::for_members(2);
    const std::uint64_t clock_cost = clock_cost_ns();
    const std::uint64_t warm_up = std::max<std::uint64_t>(100, round_trips / 10);
    const auto run_ns = static_cast<std::uint64_t>(duration.count());
    team t(run_deadline);
    t.spawn("pinger", where.cpus[0], [&] {
        auto tx = forth_ch.open_sender();
        auto rx = back_ch.open_receiver();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        std::uint64_t start = now_ns(), measured = 0;
        for (std::uint64_t i = 0; i < warm_up + round_trips && !t.aborted(); ++i) {
            if (i == warm_up) start = now_ns();
            const std::uint64_t sent = now_ns();
            if (i > warm_up && sent - start >= run_ns) break;
            tx.send(payload.data());
            while (!rx.receive_for(payload.data(), poll))
                if (t.aborted()) return;
            const std::uint64_t rtt = now_ns() - sent;
            if (i >= warm_up) {
                result->histogram.record(rtt > clock_cost ? rtt - clock_cost : 0);
                ++measured;
            }
        }
        result->seconds = static_cast<double>(now_ns() - start) * 1e-9;
        result->messages = measured;
        b->pinger_done.store(1);
    });
    t.spawn("ponger", where.cpus[1], [&] {
        auto rx = forth_ch.open_receiver();
        auto tx = back_ch.open_sender();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        while (!t.aborted()) {
            if (!rx.receive_for(payload.data(), poll)) {
                if (b->pinger_done.load()) return;
                continue;
            }
            tx.send(payload.data());
        }
    });
    t.run(Channel::name() + " ping-pong");
    latency_result out = *result;
    out.oversubscribed = where.oversubscribed;
    return out;
}

/// Open-loop one-way latency at `rate` messages per second; with `rate` 0,
/// as fast as the sender can go (closed loop: the channel's own pace, which
/// is the "measured maximum" the fractions of load refer to, measured with
/// exactly this sender and receiver work).
template <channel Channel>
latency_result run_latency(const channel_config& config, double rate, std::uint64_t messages) {
    Channel ch(config);
    shared<latency_result> result;
    const auto where = placement::for_members(2);
    const auto interval = rate > 0 ? static_cast<std::uint64_t>(1e9 / rate) : 0;
    team t(run_deadline);
    t.spawn("sender", where.cpus[0], [&] {
        auto tx = ch.open_sender();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        const std::uint64_t cpu_start = process_cpu_ns();
        std::uint64_t paced_ns = 0;  // spun waiting for a message's time: the harness's, not the transport's
        const std::uint64_t start = now_ns() + 1000;
        for (std::uint64_t i = 0; i < messages && !t.aborted(); ++i) {
            std::uint64_t stamp = 0;
            if (interval == 0) {
                stamp = now_ns();
            } else {
                stamp = start + i * interval;
                const std::uint64_t began = now_ns();
                std::uint64_t at = began;
                while (at < stamp) at = now_ns();
                paced_ns += at - began;
            }
            std::memcpy(payload.data(), &stamp, sizeof stamp);
            tx.send(payload.data());
        }
        const std::uint64_t used = process_cpu_ns() - cpu_start;
        result->sender_cpu_seconds = static_cast<double>(used > paced_ns ? used - paced_ns : 0) * 1e-9;
    });
    t.spawn("receiver", where.cpus[1], [&] {
        auto rx = ch.open_receiver();
        std::vector<std::byte> payload(config.payload);
        t.arrive_and_wait();
        const std::uint64_t cpu_start = process_cpu_ns();
        const std::uint64_t start = now_ns();
        for (std::uint64_t received = 0; received < messages && !t.aborted();) {
            if (!rx.receive_for(payload.data(), poll)) continue;
            const std::uint64_t arrived = now_ns();
            std::uint64_t stamp = 0;
            std::memcpy(&stamp, payload.data(), sizeof stamp);
            result->histogram.record(arrived > stamp ? arrived - stamp : 0);
            ++received;
        }
        result->seconds = static_cast<double>(now_ns() - start) * 1e-9;
        result->receiver_cpu_seconds = static_cast<double>(process_cpu_ns() - cpu_start) * 1e-9;
        result->messages = messages;
    });
    t.run(Channel::name() + " latency");
    latency_result out = *result;
    out.oversubscribed = where.oversubscribed;
    return out;
}

}  // namespace shmds_bench
