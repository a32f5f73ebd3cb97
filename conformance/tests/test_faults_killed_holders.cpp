// Faults, CRASH-002 and CRASH-003: a process killed while it holds a lock
// (a concurrent stack's, an MPMC queue's slots, the table's) blocks nobody
// for ever, and one killed in the middle of table updates (make, destroy)
// leaves the table consistent, with no space lost. The killed processes are
// fault actors (fault_actor.cpp); how the tests stay in control is in
// fault_support.hpp.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "fault_support.hpp"
#include "support.hpp"

namespace shmconf_fault_tests {
namespace {

// ---- CRASH-002: a process killed holding a lock blocks nobody for ever --------------------

/// Microseconds the surviving process rests between rounds: it leaves the
/// lock to the victim most of the time, so that more kills land while the
/// victim holds it.
const std::string survivor_pause = "200";

/// How long the others may take to get past a dead holder (a timeout from
/// each waiter is allowed in between, so this is longer than any sensible one).
constexpr auto recovery_limit = 15s;

/// This process's next operation after a kill: `own_operation`, where a
/// timeout is retried for recovery_limit. Returns false, with the failure
/// reported (`after` says after how many kills), when it did not complete.
bool own_operation_recovers(const std::function<void(impl::segment&)>& own_operation, impl::segment& seg,
                            const std::string& after, reporter& out) {
    try {
        retrying(
            [&] {
                own_operation(seg);
                return 0;
            },
            recovery_limit);
    } catch (...) {
        out.fail("this process's next operation" + after + " failed: " + describe(std::current_exception()) +
                 (impl::categorize(std::current_exception()) == error_category::timeout
                      ? " (still timing out after " + std::to_string(recovery_limit.count()) + " s)"
                      : ""));
        return false;
    }
    return true;
}

/// What the survivor's record said at a kill, to see what it did after.
struct survivor_at_kill {
    steady::time_point killed_at;
    u64 ok_before, failed_before;
};

/// Waits until the surviving process has completed two more operations
/// since the kill, within recovery_limit, and none failed but by a timeout.
/// Returns false, with the failure reported, when it did not.
bool survivor_recovers(fault_actor& survivor, const record_file& survivor_record,
                       const survivor_at_kill& then, const std::string& after, reporter& out) {
    while (survivor_record.load(word::ok) < then.ok_before + 2) {
        if (!survivor.running()) {
            out.fail("the surviving process ended" + after + " (status " + std::to_string(survivor.wait()) +
                     ")");
            return false;
        }
        if (steady::now() - then.killed_at > recovery_limit) {
            out.fail("the surviving process completed no operation within " +
                     std::to_string(recovery_limit.count()) + " s" + after +
                     " (its last error: " + survivor_record.last_error() + ", " +
                     std::to_string(survivor_record.load(word::failed) - then.failed_before) +
                     " failed operations since the kill)");
            return false;
        }
        std::this_thread::sleep_for(100us);
    }
    if (survivor_record.load(word::failed) != then.failed_before) {
        const std::string category = survivor_record.last_error();
        if (category != "timeout") {
            out.fail("the surviving process's operations failed with " + category + after);
            return false;
        }
    }
    return true;
}

/// A survivor (a fault actor) and victims (fault actors, one at a time) run
/// `survivor_args` and `victim_args` on one thing; each victim is killed at a random moment.
/// After each kill the survivor's and this process's next operations
/// (`own_operation`) must complete, within recovery_limit, where a timeout
/// is allowed and retried; an operation that fails any other way, or never
/// completes again, is a FAIL.
void killed_holders(const std::string& what, const std::function<void(impl::segment&)>& setup,
                    const std::vector<std::string>& survivor_args,
                    const std::vector<std::string>& victim_args,
                    const std::function<void(impl::segment&)>& own_operation) {
    fresh_segment name;
    dice random;
    const int kills = by_profile(40, 300);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        auto seg = impl::create(name.name(), 1 << 20);
        setup(seg);
        record_file survivor_record, victim_record;
        fault_actor survivor(survivor_record, name.name(), survivor_args);
        if (auto problem = wait_until_started(survivor, survivor_record); !problem.empty()) {
            out.fail("the surviving process could not start: " + problem);
            return;
        }
        u64 in_op = 0;
        std::chrono::microseconds slowest{0};
        auto after = [](int killed) { return " after " + std::to_string(killed) + " processes were killed"; };
        for (int k = 0; k < kills; ++k) {
            out.step("victim " + std::to_string(k) + " starting");
            victim_record.reset();
            fault_actor victim(victim_record, name.name(), victim_args);
            if (auto problem = wait_until_started(victim, victim_record); !problem.empty()) {
                out.fail("a new process could not operate" + after(k) + ": " + problem);
                return;
            }
            if (victim_record.load(word::failed) != 0 && victim_record.last_error() != "timeout") {
                out.fail("a new process's first operation failed with " + victim_record.last_error() +
                         after(k));
                return;
            }
            std::this_thread::sleep_for(random.delay(3000us));
            victim.kill();
            victim.wait();
            in_op += victim_record.load(word::in_op);
            const survivor_at_kill then{steady::now(), survivor_record.load(word::ok),
                                        survivor_record.load(word::failed)};
            // This process's next operation (a hang is caught by run_isolated).
            out.step(what + ": this process's next operation after kill " + std::to_string(k));
            if (!own_operation_recovers(own_operation, seg, after(k + 1), out)) return;
            // The survivor's next operations.
            out.step(what + ": the surviving process's next operations after kill " + std::to_string(k));
            if (!survivor_recovers(survivor, survivor_record, then, after(k + 1), out)) return;
            slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::microseconds>(
                                            steady::now() - then.killed_at));
        }
        out.note(std::to_string(kills) + " holders killed, " + percent(in_op, kills) +
                 " inside an operation call; slowest recovery " + std::to_string(slowest.count() / 1000) +
                 " ms");
    });
    judge(r, what);
}

TEST(Crash, AStackLockHolderKilledBlocksNobody) {
    CHECKS_REQUIREMENTS("CRASH-002");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    UNSUPPORTED_UNLESS(impl::caps.locks_survive_owner_death,
                       "locks surviving their owner's death are not claimed");
    using S = impl::concurrent_stack<u64>;
    // A handle this process keeps across the kills, used first after each:
    // one that met the dead holder's lock already open. (A handle opened
    // afresh may take the dead holder's place, and with it the lock.)
    struct kept_handle {
        explicit kept_handle(impl::segment& seg) : s(impl::find<S>(seg, "s")) {}
        S s;
    };
    std::optional<kept_handle> kept;
    u64 v = 0;
    killed_holders(
        "concurrent_stack with killed lock holders",
        [](impl::segment& seg) {
            S s = impl::make<S>(seg, "s", 64);
            for (u64 i = 0; i < 32; ++i) (void)s.try_push(i);  // neither full nor empty: every call locks
        },
        {"hammer", "concurrent_stack", "s", survivor_pause}, {"hammer", "concurrent_stack", "s"},
        [&](impl::segment& seg) {
            if (!kept) kept.emplace(seg);
            (void)kept->s.try_push(++v);
            (void)kept->s.try_pop();
            S s = impl::find<S>(seg, "s");
            (void)s.try_push(++v);
            (void)s.try_pop();
        });
}

TEST(Crash, ATableLockHolderKilledBlocksNobody) {
    CHECKS_REQUIREMENTS("CRASH-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    UNSUPPORTED_UNLESS(impl::caps.locks_survive_owner_death,
                       "locks surviving their owner's death are not claimed");
    killed_holders(
        "the table with killed updaters",
        [](impl::segment& seg) { (void)impl::make<array>(seg, "anchor", 8); },
        {"hammer-table", "s", survivor_pause}, {"hammer-table", "v"},
        [](impl::segment& seg) {
            (void)impl::find<array>(seg, "anchor");
            (void)impl::make<array>(seg, "mine", 8);
            impl::destroy(seg, "mine");
        });
}

TEST(Crash, AnMpmcParticipantKilledBlocksNobody) {
    CHECKS_REQUIREMENTS("CRASH-002");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    UNSUPPORTED_UNLESS(impl::caps.locks_survive_owner_death,
                       "locks surviving their owner's death are not claimed");
    using S = impl::mpmc_queue<u64>;
    constexpr u64 capacity = 64;
    // This process's handle joins before the first kill and is kept: a
    // handle opened after a kill would be a newcomer, which may take the dead
    // process's place and clean up after it; this checks that processes
    // already there recover by themselves. After each kill it goes round the
    // whole ring (a lap and one more), so a slot the victim died holding,
    // whether pushing or popping, is met whichever it was.
    std::optional<S> mine;
    u64 v = 0;
    killed_holders(
        "mpmc_queue with killed participants",
        [&](impl::segment& seg) {
            mine.emplace(impl::make<S>(seg, "q", capacity));
            for (u64 i = 0; i < capacity / 2; ++i) (void)mine->try_push(i);
        },
        {"hammer", "mpmc_queue", "q", survivor_pause}, {"hammer", "mpmc_queue", "q"},
        [&](impl::segment&) {
            for (u64 i = 0; i <= capacity; ++i) {
                const auto until = steady::now() + 5s;
                while (!mine->try_push(++v))
                    if (steady::now() > until)
                        throw std::runtime_error(
                            "push " + std::to_string(i) +
                            " of a lap found the queue full for 5 s "
                            "(about half of it held): a slot the killed process claimed was "
                            "never given back to the processes already attached");
                while (!mine->try_pop())
                    if (steady::now() > until)
                        throw std::runtime_error(
                            "pop " + std::to_string(i) +
                            " of a lap found the queue empty for 5 s "
                            "(about half of it held): a slot the killed process claimed was "
                            "never given back to the processes already attached");
            }
        });
}

// ---- CRASH-003: a process killed during a table update --------------------------------

/// The largest array of u64 `seg` can hold now, by bisection (make, destroy).
std::size_t largest_array(impl::segment& seg, std::size_t upper) {
    std::size_t lo = 0, hi = upper;
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo + 1) / 2;
        const auto c = shmconf::category_of<impl>([&] { (void)impl::make<array>(seg, "probe", mid); });
        if (c == error_category::none) {
            impl::destroy(seg, "probe");
            lo = mid;
        } else if (c == error_category::out_of_space || c == error_category::invalid_size) {
            hi = mid - 1;
        } else {
            throw std::runtime_error(std::string("making a probe array of ") + std::to_string(mid) +
                                     " elements failed with " + shmconf::to_string(c));
        }
    }
    return lo;
}

/// The arrays the updaters churn (make, destroy), by name and size. Large
/// enough that making one (zeroing its block) is much of what an updater
/// does, so kills often land between taking a block and publishing the
/// entry; 160 KiB in all, so every one fits at once.
const std::vector<std::pair<std::string, std::size_t>> churned_set{{"t0", 2048}, {"t1", 2560}, {"t2", 3072},
                                                                   {"t3", 3584}, {"t4", 4096}, {"t5", 4608}};

/// An array made before, and never touched by, the churning processes.
struct kept_array {
    const char* name;
    std::size_t count;
    u64 base;  // element i holds base + i
};
constexpr kept_array kept_arrays[] = {{"keep0", 32, 1000}, {"keep1", 48, 5000}};

void check_kept(impl::segment& seg, const kept_array& kept, const std::string& when, reporter& out) {
    const char* n = kept.name;
    array a = retrying([&] { return impl::find<array>(seg, n); });
    if (a.size() != kept.count)
        return out.fail(std::string(n) + " has " + std::to_string(a.size()) + " elements " + when + ", not " +
                        std::to_string(kept.count));
    for (std::size_t i = 0; i < kept.count; ++i)
        if (a.at(i) != kept.base + i)
            return out.fail(std::string(n) + "[" + std::to_string(i) + "] changed " + when);
}

/// After kill `k`: every churned name is found or created with its size,
/// answers to one structure only, and once destroyed is gone.
void check_churned(impl::segment& seg, int k, const std::string& when, reporter& out) {
    for (const auto& entry : churned_set) {
        const std::string& n = entry.first;  // (named, not bound: lambdas below capture them)
        const std::size_t c = entry.second;
        // Found or created, with its size: never lost, never a stray.
        auto a = retrying([&] { return impl::make<array>(seg, n, c); });
        if (a.size() != c)
            out.fail(concat("make of ", n, " gave ", std::to_string(a.size()), " elements ", when));
        a.at(1) = 77 + static_cast<u64>(k);
        if (impl::find<array>(seg, n).at(1) != 77 + static_cast<u64>(k))
            out.fail(concat("two structures answer to ", n, " ", when));
        // Destroyed, it is gone: no second entry under the name.
        retrying([&] {
            impl::destroy(seg, n);
            return 0;
        });
        const auto c2 = shmconf::category_of<impl>([&] { (void)impl::find<array>(seg, n); });
        if (c2 != error_category::not_found)
            out.fail(concat("after destroying ", n, " ", when, ", finding it gave ", shmconf::to_string(c2),
                            " (a second entry under the name?)"));
    }
}

TEST(Crash, AProcessKilledDuringTableUpdatesLeavesTheTableConsistent) {
    CHECKS_REQUIREMENTS("CRASH-003");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    dice random;
    const int kills = by_profile(30, 200);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        constexpr std::size_t segment_bytes = 1 << 20;
        auto seg = impl::create(name.name(), segment_bytes);
        for (const kept_array& kept : kept_arrays) {
            auto a = impl::make<array>(seg, kept.name, kept.count);
            for (std::size_t i = 0; i < kept.count; ++i) a.at(i) = kept.base + i;
        }
        std::vector<std::string> churn_args{"churn"};
        for (const auto& [n, c] : churned_set) churn_args.push_back(n + ":" + std::to_string(c));
        out.step("measuring the largest array before");
        const std::size_t largest_before = largest_array(seg, segment_bytes / sizeof(u64));
        std::size_t largest_after = largest_before;
        // Less than the smallest churned array: a leaked block of any of them shows.
        constexpr std::size_t slack = 32;
        record_file record;
        u64 in_op = 0, churned = 0;
        int killed = 0;
        for (int k = 0; k < kills && out.failures() == 0; ++k) {
            const std::string when = "after " + std::to_string(k + 1) + " killed updaters";
            out.step("updater " + std::to_string(k) + " starting");
            record.reset();
            fault_actor churner(record, name.name(), churn_args);
            if (auto problem = wait_until_started(churner, record); !problem.empty())
                return out.fail(concat("a new updater could not operate ", when, ": ", problem));
            std::this_thread::sleep_for(random.delay(3000us));
            churner.kill();
            churner.wait();
            ++killed;
            in_op += record.load(word::in_op);
            churned += record.load(word::ok);
            if (record.load(word::failed) != 0)
                out.fail("the updating process's operations failed with " + record.last_error() + " " + when);
            out.step("checking the table " + when);
            for (const kept_array& kept : kept_arrays) check_kept(seg, kept, when, out);
            check_churned(seg, k, when, out);
            // Every churned name destroyed: all the space is back, whatever the
            // killed process had taken.
            const std::size_t largest = largest_array(seg, segment_bytes / sizeof(u64));
            largest_after = std::min(largest_after, largest);
            if (largest + slack < largest_before)
                out.fail("space was lost: the largest array that fits went from " +
                         std::to_string(largest_before) + " to " + std::to_string(largest) + " elements " +
                         when + " (every churned name destroyed)");
        }
        out.note(std::to_string(killed) + " updaters killed, " + percent(in_op, killed) +
                 " inside a make or destroy; " + std::to_string(churned) +
                 " updates completed; largest array " + std::to_string(largest_before) +
                 " elements before, at least " + std::to_string(largest_after) + " after each kill");
    });
    judge(r, "the table with killed updaters");
}

}  // namespace
}  // namespace shmconf_fault_tests
