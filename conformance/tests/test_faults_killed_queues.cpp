// Faults, CRASH-001: producers and consumers of the queues and the concurrent
// stack, killed at random moments in the middle of their operations, lose at
// most the element in flight. The killed processes are fault actors
// (fault_actor.cpp); how the tests stay in control is in fault_support.hpp.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fault_support.hpp"
#include "support.hpp"

namespace shmconf_fault_tests {
namespace {

/// The killed producers and consumers share this much: how many die.
int kills_by_profile() {
    return by_profile(12, 80);
}

/// A kind CRASH-001 is checked on: its name for the fault actors, whether
/// the adapter claims it (the test is UNSUPPORTED otherwise), and whether its
/// order is FIFO.
struct crash_kind {
    const char* name;
    bool claimed;
    const char* unclaimed;
    bool fifo;
};
constexpr crash_kind spsc{"spsc_queue", impl::caps.spsc_queue, "SPSC queues are not claimed", true};
constexpr crash_kind mpmc{"mpmc_queue", impl::caps.mpmc_queue, "MPMC queues are not claimed", true};
constexpr crash_kind stack{"concurrent_stack", impl::caps.concurrent_stack,
                           "concurrent stacks are not claimed", false};

/// Who is killed, for the messages: the structure's kind, its segment, and
/// the role (what it must do to be of use, what this process does meanwhile).
struct killed_life {
    const std::string& kind;
    const std::string& segment;
    const char* role;  // "producer" or "consumer"
    const char* verb;  // what the role does: "push" or "pop"
    const char* own;   // what this process does meanwhile: "popping" or "pushing"
};

/// One life of a producer or consumer: a fault actor with `args` started,
/// given a random moment in which this process calls `meanwhile` (the other
/// side's work), and killed. Adds to `in_op` whether it died inside an
/// operation call. Returns false, with the failure reported, when it could
/// not operate.
bool live_and_kill(const killed_life& who, int k, std::vector<std::string> args, record_file& record,
                   dice& random, const std::function<void()>& meanwhile, reporter& out, u64& in_op) {
    record.reset();
    fault_actor actor(record, who.segment, std::move(args));
    if (auto problem = wait_until_started(actor, record, meanwhile); !problem.empty()) {
        out.fail(concat(who.role, " ", std::to_string(k), " (after ", std::to_string(k),
                        " killed) could not ", who.verb, ": ") +
                 problem +
                 (who.kind == "spsc_queue" && k > 0
                      ? concat(" (the ", who.role, " role must be free once its holder is dead)")
                      : ""));
        return false;
    }
    out.step(concat(who.role, " ", std::to_string(k), " running, this process ", who.own));
    busy_until(steady::now() + random.delay(4000us), meanwhile);
    actor.kill();
    actor.wait();
    in_op += record.load(word::in_op);
    return true;
}

/// Pops with `pop` (retrying timeouts), giving each value to `take`, until
/// `all_out` says everything expected is out and nothing more came for
/// `settle`, or nothing came for `give_up`.
template <class Pop>
void drain(Pop&& pop, const std::function<void(u64)>& take, const std::function<bool()>& all_out,
           std::chrono::milliseconds settle, std::chrono::milliseconds give_up) {
    for (auto last = steady::now();;) {
        if (auto v = retrying(pop)) {
            take(*v);
            last = steady::now();
            continue;
        }
        const auto quiet = steady::now() - last;
        if ((all_out() && quiet > settle) || quiet > give_up) break;
        std::this_thread::sleep_for(100us);
    }
}

/// The sequences one killed producer pushed: [start, done) completed, `done`
/// itself possibly in flight when it was killed.
struct life {
    u64 start, done;
};

/// Judges what came out of the producers' structure (`popped`, in pop order)
/// against their lives: every completed push exactly once, nothing else but
/// in-flight elements, in sequence order when `fifo`.
void judge_popped(const std::vector<u64>& popped, const std::vector<life>& lives, bool fifo, int kills,
                  u64 in_op, reporter& out) {
    auto completed = [&](u64 seq) {
        for (const life& l : lives)
            if (seq >= l.start && seq < l.done) return true;
        return false;
    };
    u64 total_completed = 0;
    for (const life& l : lives) total_completed += l.done - l.start;
    std::map<u64, int> times;
    u64 strays = 0, in_flight = 0, out_of_order = 0;
    std::string first_stray, first_inversion;
    for (std::size_t i = 0; i < popped.size(); ++i) {
        const u64 v = popped[i];
        const u64 seq = v & 0xffffffffu;
        if (++times[v] > 1) continue;
        const bool known = v >> 32 == 1 && std::any_of(lives.begin(), lives.end(), [&](const life& l) {
                               return seq >= l.start && seq <= l.done;
                           });
        if (!known) {
            if (strays++ == 0) first_stray = std::to_string(v);
        } else if (!completed(seq)) {
            ++in_flight;
        }
        if (fifo && i > 0 && (popped[i - 1] & 0xffffffffu) >= seq && out_of_order++ == 0)
            first_inversion = std::to_string(popped[i - 1] & 0xffffffffu) + " before " + std::to_string(seq);
    }
    u64 duplicates = 0, missing = 0;
    std::string first_missing, first_duplicate;
    for (const auto& [v, n] : times)
        if (n > 1 && duplicates++ == 0)
            first_duplicate = std::to_string(v) + " (" + std::to_string(n) + " times)";
    for (const life& l : lives)
        for (u64 s = l.start; s < l.done; ++s)
            if (!times.count((u64{1} << 32) | s) && missing++ == 0) first_missing = std::to_string(s);
    if (missing)
        out.fail(std::to_string(missing) + " of " + std::to_string(total_completed) +
                 " completed pushes were never popped (first: sequence " + first_missing + ") after " +
                 std::to_string(kills) + " producers were killed");
    if (duplicates)
        out.fail(std::to_string(duplicates) + " values were popped twice (first: " + first_duplicate + ")");
    if (strays)
        out.fail(std::to_string(strays) + " popped values were never pushed (first: " + first_stray + ")");
    if (out_of_order)
        out.fail(std::to_string(out_of_order) +
                 " pops out of the producer's order (first: " + first_inversion + ")");
    out.note(std::to_string(kills) + " producers killed, " + percent(in_op, kills) +
             " inside an operation call; " + std::to_string(total_completed) + " completed pushes; " +
             std::to_string(in_flight) + " in-flight elements delivered");
}

/// Producers (fault actors, one at a time) push (1 << 32 | sequence), each
/// from where the last one's record stopped (skipping the element that was
/// in flight), and are killed at random moments; this process pops
/// meanwhile, then drains. Every completed push must come out exactly once,
/// nothing else but the in-flight elements, in sequence order for FIFO kinds.
template <class S>
void killed_producers(const crash_kind& claim, const char* action = "produce") {
    UNSUPPORTED_UNLESS(claim.claimed, claim.unclaimed);
    const std::string kind = claim.name;
    const bool fifo = claim.fifo;
    fresh_segment name;
    dice random;
    const int kills = kills_by_profile();
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        // Room for a whole life of pushes: a producer that finds its structure
        // full, or a consumer that finds it empty, spends its time between
        // operations, where a kill proves little.
        auto seg = impl::create(name.name(), 4 << 20);
        S q = impl::template make<S>(seg, "q", 16384);
        record_file record;
        std::vector<life> lives;
        std::vector<u64> popped;
        u64 in_op = 0;
        auto pop_one = [&] {
            if (auto v = retrying([&] { return q.try_pop(); })) popped.push_back(*v);
        };
        const killed_life who{kind, name.name(), "producer", "push", "popping"};
        u64 start = 0;
        for (int k = 0; k < kills; ++k) {
            out.step("producer " + std::to_string(k) + " starting");
            // Room for the producer: it should be pushing, not finding the queue full.
            for (std::optional<u64> v; (v = retrying([&] { return q.try_pop(); }));) popped.push_back(*v);
            if (!live_and_kill(who, k, {action, kind, "q", "1", std::to_string(start)}, record, random,
                               pop_one, out, in_op))
                return;
            lives.push_back({start, record.load(word::done)});
            start = lives.back().done + 1;  // the in-flight element's sequence is never reused
        }
        // Drain: until every completed push is out, then a quiet moment for strays.
        out.step("draining after the last kill");
        u64 total_completed = 0;
        for (const life& l : lives) total_completed += l.done - l.start;
        std::set<u64> seen_completed;
        auto count_completed = [&](u64 v) {
            for (const life& l : lives)
                if (v >> 32 == 1 && (v & 0xffffffffu) >= l.start && (v & 0xffffffffu) < l.done) {
                    seen_completed.insert(v);
                    return;
                }
        };
        for (u64 v : popped) count_completed(v);
        drain([&] { return q.try_pop(); },
              [&](u64 v) {
                  popped.push_back(v);
                  count_completed(v);
              },
              [&] { return seen_completed.size() == total_completed; }, 50ms, 3s);
        judge_popped(popped, lives, fifo, kills, in_op, out);
    });
    judge(r, kind + " with killed producers");
}

/// Judges what the consumers and the drain took (`consumed`, in the order
/// they took them) against the `pushed` pushes: none lost but at most one per
/// kill, none taken twice, nothing never pushed, in push order when `fifo`.
void judge_consumed(const std::vector<u64>& consumed, u64 pushed, bool fifo, int kills, u64 in_op,
                    reporter& out) {
    std::map<u64, int> times;
    u64 strays = 0, out_of_order = 0, duplicates = 0;
    std::string first_inversion;
    for (std::size_t i = 0; i < consumed.size(); ++i) {
        const u64 v = consumed[i];
        if (++times[v] == 2) ++duplicates;
        if (v >> 32 != 2 || (v & 0xffffffffu) >= pushed) ++strays;
        if (fifo && i > 0 && consumed[i - 1] >= v && out_of_order++ == 0)
            first_inversion =
                std::to_string(consumed[i - 1] & 0xffffffffu) + " before " + std::to_string(v & 0xffffffffu);
    }
    u64 missing = 0;
    for (u64 s = 0; s < pushed; ++s) missing += times.count((u64{2} << 32) | s) == 0;
    if (missing > static_cast<u64>(kills))
        out.fail(std::to_string(missing) + " of " + std::to_string(pushed) +
                 " pushed values were lost with " + std::to_string(kills) +
                 " consumers killed (at most one per kill)");
    if (duplicates) out.fail(std::to_string(duplicates) + " values were taken twice");
    if (strays) out.fail(std::to_string(strays) + " values taken were never pushed");
    if (out_of_order)
        out.fail(std::to_string(out_of_order) + " values taken out of push order (first: " + first_inversion +
                 ")");
    out.note(std::to_string(kills) + " consumers killed, " + percent(in_op, kills) +
             " inside an operation call; " + std::to_string(pushed) + " pushed, " + std::to_string(missing) +
             " lost in flight");
}

/// Consumers (fault actors, one at a time) pop and log what they got; they
/// are killed at random moments while this process pushes; then this
/// process drains. Logged plus drained values cover every push, missing at
/// most one per kill, never one twice, in push order for FIFO kinds.
template <class S>
void killed_consumers(const crash_kind& claim, const char* action = "consume") {
    UNSUPPORTED_UNLESS(claim.claimed, claim.unclaimed);
    const std::string kind = claim.name;
    const bool fifo = claim.fifo;
    fresh_segment name;
    dice random;
    const int kills = kills_by_profile();
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        // Room for a whole life of pushes: a producer that finds its structure
        // full, or a consumer that finds it empty, spends its time between
        // operations, where a kill proves little.
        auto seg = impl::create(name.name(), 4 << 20);
        S q = impl::template make<S>(seg, "q", 16384);
        record_file record(1u << 20);
        std::vector<u64> consumed;  // in the order the consumers took them
        u64 pushed = 0, in_op = 0;
        auto push_one = [&] {
            if (retrying([&] { return q.try_push((u64{2} << 32) | pushed); })) ++pushed;
        };
        const killed_life who{kind, name.name(), "consumer", "pop", "pushing"};
        for (int k = 0; k < kills; ++k) {
            out.step("consumer " + std::to_string(k) + " starting");
            // Something to pop at once: the consumer should be taking, not finding it empty.
            while (retrying([&] { return q.try_push((u64{2} << 32) | pushed); })) ++pushed;
            if (!live_and_kill(who, k, {action, kind, "q"}, record, random, push_one, out, in_op)) return;
            const auto got = record.logged();
            consumed.insert(consumed.end(), got.begin(), got.end());
        }
        out.step("draining through a second handle after the last kill");
        S drain_handle = impl::template find<S>(seg, "q");
        std::set<u64> distinct(consumed.begin(), consumed.end());
        drain([&] { return drain_handle.try_pop(); },
              [&](u64 v) {
                  consumed.push_back(v);
                  distinct.insert(v);
              },
              [&] { return distinct.size() >= pushed; }, 20ms, 300ms);
        judge_consumed(consumed, pushed, fifo, kills, in_op, out);
    });
    judge(r, kind + " with killed consumers");
}

// Six tests, not one over a table of kinds: each kind and role is a test of
// its own name, which the expectations files and the report cite.

TEST(Crash, KilledSpscProducersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    killed_producers<impl::spsc_queue<u64>>(spsc);
}

TEST(Crash, KilledSpscConsumersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    killed_consumers<impl::spsc_queue<u64>>(spsc);
}

TEST(Crash, KilledMpmcProducersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    killed_producers<impl::mpmc_queue<u64>>(mpmc);
}

TEST(Crash, KilledMpmcConsumersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    killed_consumers<impl::mpmc_queue<u64>>(mpmc);
}

// LOAN-004: the same through loans. A producer's loan is its element in
// flight (written in place, not committed); a consumer's, the element it
// reads in place before releasing it.
template <class S>
constexpr bool lends = shmconf::loan_handle<S, u64>;

TEST(Crash, KilledSpscLoanHoldingProducersLoseAtMostTheirLoan) {
    CHECKS_REQUIREMENTS("LOAN-004");
    UNSUPPORTED_UNLESS(lends<impl::spsc_queue<u64>>, "the SPSC queue lends nothing");
    killed_producers<impl::spsc_queue<u64>>(spsc, "produce-loans");
}

TEST(Crash, KilledSpscLoanHoldingConsumersLoseAtMostTheirLoan) {
    CHECKS_REQUIREMENTS("LOAN-004");
    UNSUPPORTED_UNLESS(lends<impl::spsc_queue<u64>>, "the SPSC queue lends nothing");
    killed_consumers<impl::spsc_queue<u64>>(spsc, "consume-loans");
}

TEST(Crash, KilledMpmcLoanHoldingProducersLoseAtMostTheirLoan) {
    CHECKS_REQUIREMENTS("LOAN-004");
    UNSUPPORTED_UNLESS(lends<impl::mpmc_queue<u64>>, "the MPMC queue lends nothing");
    killed_producers<impl::mpmc_queue<u64>>(mpmc, "produce-loans");
}

TEST(Crash, KilledMpmcLoanHoldingConsumersLoseAtMostTheirLoan) {
    CHECKS_REQUIREMENTS("LOAN-004");
    UNSUPPORTED_UNLESS(lends<impl::mpmc_queue<u64>>, "the MPMC queue lends nothing");
    killed_consumers<impl::mpmc_queue<u64>>(mpmc, "consume-loans");
}

TEST(Crash, KilledStackPushersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    killed_producers<impl::concurrent_stack<u64>>(stack);
}

TEST(Crash, KilledStackPoppersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    killed_consumers<impl::concurrent_stack<u64>>(stack);
}

}  // namespace
}  // namespace shmconf_fault_tests
