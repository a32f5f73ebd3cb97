// The linearizability checker (linearizability.hpp) on hand-made histories,
// before the suite trusts it with recorded ones: what it must accept, what it
// must refuse, and that it stays fast (or says undecided) on long histories.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "linearizability.hpp"

namespace {

using shmconf::lin::check;
using shmconf::lin::discipline;
using shmconf::lin::model;
using shmconf::lin::op_kind;
using shmconf::lin::operation;
using shmconf::lin::options;
using shmconf::lin::result;
using shmconf::lin::verdict;

/// A history written as calls: process, interval, result.
class history {
public:
    history& push(int p, std::uint64_t v, bool ok, std::uint64_t call, std::uint64_t ret) {
        ops_.push_back({p, op_kind::push, v, ok, call, ret, false});
        return *this;
    }
    history& pop(int p, std::optional<std::uint64_t> v, std::uint64_t call, std::uint64_t ret) {
        ops_.push_back({p, op_kind::pop, v.value_or(0), v.has_value(), call, ret, false});
        return *this;
    }
    history& pending_push(int p, std::uint64_t v, std::uint64_t call) {
        ops_.push_back({p, op_kind::push, v, false, call, 0, true});
        return *this;
    }
    history& pending_pop(int p, std::uint64_t call) {
        ops_.push_back({p, op_kind::pop, 0, false, call, 0, true});
        return *this;
    }
    const std::vector<operation>& ops() const { return ops_; }

private:
    std::vector<operation> ops_;
};

constexpr std::nullopt_t nothing = std::nullopt;

model fifo(std::size_t capacity, std::vector<std::uint64_t> initial = {}) {
    return {discipline::fifo, capacity, std::move(initial)};
}
model lifo(std::size_t capacity, std::vector<std::uint64_t> initial = {}) {
    return {discipline::lifo, capacity, std::move(initial)};
}

result verify(const history& h, const model& m, const options& o = {}) {
    return check(h.ops(), m, o);
}

/// Options: results of nothing and false left unchecked.
options unchecked() {
    options o;
    o.check_failed_results = false;
    return o;
}
/// Options: the content at the end is known.
options ending_with(std::vector<std::uint64_t> content, options o = {}) {
    o.final_content = std::move(content);
    return o;
}

#define EXPECT_LINEARIZABLE(r) EXPECT_EQ((r).outcome, verdict::linearizable) << (r).explanation
#define EXPECT_NOT_LINEARIZABLE(r) \
    EXPECT_EQ((r).outcome, verdict::not_linearizable) << "a linearization was found where none exists"

// ---- Linearizable histories ---------------------------------------------------------------------

TEST(LinearizabilityChecker, AcceptsASequentialHistory) {
    history h;
    h.push(0, 1, true, 0, 1).push(0, 2, true, 2, 3).pop(0, 1, 4, 5).pop(0, 2, 6, 7).pop(0, nothing, 8, 9);
    const result r = verify(h, fifo(4));
    EXPECT_LINEARIZABLE(r);
    EXPECT_EQ(r.witness, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
    EXPECT_TRUE(r.explanation.empty());
}

TEST(LinearizabilityChecker, AcceptsOverlappingPushesInEitherOrder) {
    for (const std::uint64_t first : {1u, 2u}) {
        history h;
        h.push(0, 1, true, 0, 10).push(1, 2, true, 5, 15).pop(0, first, 20, 25).pop(0, 3 - first, 30, 35);
        EXPECT_LINEARIZABLE(verify(h, fifo(4))) << "popped " << first << " first";
        EXPECT_LINEARIZABLE(verify(h, lifo(4))) << "popped " << first << " first";
    }
}

TEST(LinearizabilityChecker, AcceptsAPopOverlappingThePushOfItsValue) {
    history h;
    h.push(0, 7, true, 0, 10).pop(1, 7, 5, 6);  // the pop is inside the push's interval
    EXPECT_LINEARIZABLE(verify(h, fifo(1)));
}

TEST(LinearizabilityChecker, AcceptsAnEmptyPopThatOverlapsAPush) {
    // nothing, at a moment during the call where the queue was empty.
    history h;
    h.push(0, 1, true, 10, 20).pop(1, nothing, 5, 15).pop(1, 1, 30, 31);
    EXPECT_LINEARIZABLE(verify(h, fifo(2)));
}

TEST(LinearizabilityChecker, AcceptsAnEmptyPopThatOverlapsThePopOfTheLastElement) {
    history h;
    h.push(0, 1, true, 0, 1).pop(0, 1, 10, 20).pop(1, nothing, 12, 18);
    EXPECT_LINEARIZABLE(verify(h, fifo(2)));
}

TEST(LinearizabilityChecker, AcceptsAFullPushThatOverlapsThePopMakingRoom) {
    history h;
    h.push(0, 1, true, 0, 5).push(1, 2, false, 6, 10).pop(0, 1, 7, 9).push(1, 3, true, 11, 12);
    EXPECT_LINEARIZABLE(verify(h, fifo(1)));
    EXPECT_LINEARIZABLE(verify(h, lifo(1)));
}

TEST(LinearizabilityChecker, AcceptsAPendingPushThatHappened) {
    history h;
    h.pending_push(1, 7, 5).pop(0, 7, 10, 20);
    EXPECT_LINEARIZABLE(verify(h, fifo(2)));
}

TEST(LinearizabilityChecker, AcceptsAPendingPushThatDidNotHappen) {
    history h;
    h.pending_push(1, 7, 5).pop(0, nothing, 10, 20).push(0, 8, true, 21, 22).pop(0, 8, 23, 24);
    const result r = verify(h, fifo(2), ending_with({}));
    EXPECT_LINEARIZABLE(r);
    EXPECT_EQ(r.witness.size(), 3u) << "the pending push takes no place";
}

TEST(LinearizabilityChecker, AcceptsAPendingPopThatHappenedOrNot) {
    history took;  // the pending pop took 1: the queue is empty afterwards
    took.push(0, 1, true, 0, 5).pending_pop(1, 6).pop(0, nothing, 10, 20);
    EXPECT_LINEARIZABLE(verify(took, fifo(2)));
    history left;  // it did not: 1 is still there
    left.push(0, 1, true, 0, 5).pending_pop(1, 6).pop(0, 1, 10, 20);
    EXPECT_LINEARIZABLE(verify(left, fifo(2)));
}

TEST(LinearizabilityChecker, AcceptsAPendingOperationWhenOnlyTheEndStateNeedsIt) {
    // Nothing after the pending push sees its value, but the drained end does.
    history h;
    h.push(0, 1, true, 0, 1).pending_push(1, 2, 2).pop(0, 1, 3, 4);
    EXPECT_LINEARIZABLE(verify(h, fifo(2), ending_with({2})));
    EXPECT_LINEARIZABLE(verify(h, fifo(2), ending_with({})));
}

TEST(LinearizabilityChecker, AcceptsAStackHistory) {
    history h;
    h.push(0, 1, true, 0, 1)
        .push(0, 2, true, 2, 3)
        .pop(1, 2, 4, 5)
        .push(1, 3, true, 6, 7)
        .pop(0, 3, 8, 9)
        .pop(0, 1, 10, 11);
    EXPECT_LINEARIZABLE(verify(h, lifo(2)));
}

TEST(LinearizabilityChecker, StartsFromTheInitialContent) {
    history h;
    h.pop(0, 5, 0, 1).push(0, 7, true, 2, 3).pop(0, 6, 4, 5);
    EXPECT_LINEARIZABLE(verify(h, fifo(2, {5, 6})));
    EXPECT_NOT_LINEARIZABLE(verify(h, lifo(2, {5, 6})));
    history full;
    full.push(0, 1, false, 0, 1);
    EXPECT_LINEARIZABLE(verify(full, fifo(2, {5, 6})));
}

TEST(LinearizabilityChecker, LeavesFailedResultsUncheckedWhenAskedTo) {
    history h;  // an empty pop while 1 is there, a full push while there is room
    h.push(0, 1, true, 0, 5).pop(0, nothing, 10, 20).push(1, 2, false, 21, 22).pop(1, 1, 30, 31);
    EXPECT_NOT_LINEARIZABLE(verify(h, fifo(2)));
    EXPECT_LINEARIZABLE(verify(h, fifo(2), unchecked()));
}

// ---- Histories with no linearization ------------------------------------------------------------

TEST(LinearizabilityChecker, RefusesFifoOrderViolatedBetweenNonOverlappingOperations) {
    history h;
    h.push(0, 1, true, 0, 1).push(1, 2, true, 2, 3).pop(0, 2, 4, 5).pop(1, 1, 6, 7);
    const result r = verify(h, fifo(4));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("#2 p0 pop() -> 2"), std::string::npos) << r.explanation;
    EXPECT_NE(r.explanation.find("the front is 1"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityChecker, RefusesAValuePoppedTwice) {
    history h;
    h.push(0, 1, true, 0, 1).pop(0, 1, 2, 3).pop(1, 1, 2, 4);
    const result r = verify(h, fifo(4));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("popped twice"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityChecker, RefusesAValuePoppedThatWasNeverPushed) {
    history h;
    h.push(0, 1, true, 0, 1).pop(1, 99, 0, 4);
    const result r = verify(h, fifo(4));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("never pushed"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityChecker, RefusesAPopThatReturnedBeforeThePushWasCalled) {
    history h;
    h.pop(1, 1, 0, 5).push(0, 1, true, 10, 15);
    const result r = verify(h, fifo(4));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("before its push was called"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityChecker, RefusesAStackBehavingAsAQueue) {
    history h;
    h.push(0, 1, true, 0, 1).push(0, 2, true, 2, 3).pop(1, 1, 4, 5).pop(1, 2, 6, 7);
    EXPECT_LINEARIZABLE(verify(h, fifo(2)));
    const result r = verify(h, lifo(2));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("the top is 2"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityChecker, RefusesAnEmptyPopWhileTheQueueIsNonEmptyForTheWholeCall) {
    history alone;
    alone.push(0, 1, true, 0, 5).pop(1, nothing, 10, 20);
    const result r = verify(alone, fifo(4));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("not empty"), std::string::npos) << r.explanation;
    // Two elements, and one pop overlapping the empty one: never empty.
    history overlapped;
    overlapped.push(0, 1, true, 0, 1).push(0, 2, true, 2, 3).pop(0, 1, 10, 20).pop(1, nothing, 12, 18);
    EXPECT_NOT_LINEARIZABLE(verify(overlapped, fifo(4)));
    // A pending push does not help: it can only add.
    overlapped.pending_push(2, 9, 11);
    EXPECT_NOT_LINEARIZABLE(verify(overlapped, fifo(4)));
    // But a pending pop of another process can have emptied it.
    history emptied;
    emptied.push(0, 1, true, 0, 1).pending_pop(2, 5).pop(1, nothing, 10, 20);
    EXPECT_LINEARIZABLE(verify(emptied, fifo(4)));
}

TEST(LinearizabilityChecker, RefusesFullReportedWhenNotFull) {
    history h;
    h.push(0, 1, true, 0, 5).push(1, 2, false, 10, 15);
    const result r = verify(h, fifo(2));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("not full (1 of 2 held)"), std::string::npos) << r.explanation;
    EXPECT_NOT_LINEARIZABLE(verify(h, lifo(2)));
}

TEST(LinearizabilityChecker, RefusesMoreThanTheCapacity) {
    history h;
    h.push(0, 1, true, 0, 1).push(1, 2, true, 2, 3);
    EXPECT_NOT_LINEARIZABLE(verify(h, fifo(1)));
    EXPECT_NOT_LINEARIZABLE(verify(h, fifo(1), unchecked()));
}

TEST(LinearizabilityChecker, RefusesALostElementThroughTheEndState) {
    history h;  // 2 is pushed and never popped, yet the queue was drained
    h.push(0, 1, true, 0, 1).push(0, 2, true, 2, 3).pop(1, 1, 4, 5).pop(1, nothing, 6, 7);
    EXPECT_NOT_LINEARIZABLE(verify(h, fifo(2)));
    const options drained = ending_with({}, unchecked());
    EXPECT_LINEARIZABLE(verify(h, fifo(2), unchecked()));
    const result r = verify(h, fifo(2), drained);
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("never popped"), std::string::npos) << r.explanation;
    EXPECT_NE(r.explanation.find("#1 p0 push(2)"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityChecker, APendingOperationExcusesOneEffectOnly) {
    history twice;  // a pending pop cannot make a value come out twice
    twice.push(0, 1, true, 0, 1).pending_pop(2, 1).pop(0, 1, 2, 3).pop(1, 1, 4, 5);
    EXPECT_NOT_LINEARIZABLE(verify(twice, fifo(4)));
    history early;  // a pending push has no effect before its call
    early.pop(0, 7, 0, 5).pending_push(1, 7, 10);
    EXPECT_NOT_LINEARIZABLE(verify(early, fifo(4)));
}

TEST(LinearizabilityChecker, ExplainsWithTheShortestFailingPrefix) {
    history h;  // fine up to #3, which pops 2 before 1; much more follows
    h.push(0, 1, true, 0, 1).push(0, 2, true, 2, 3).push(1, 3, true, 2, 4).pop(1, 2, 5, 6);
    for (std::uint64_t t = 10, v = 10; v < 60; ++v, t += 4)
        h.push(0, v, true, t, t + 1).pop(1, v, t + 2, t + 3);
    const result r = verify(h, fifo(8));
    EXPECT_NOT_LINEARIZABLE(r);
    EXPECT_NE(r.explanation.find("up to the return of\n    #3 p1 pop() -> 2"), std::string::npos)
        << r.explanation;
    EXPECT_LT(r.explanation.size(), 2000u) << r.explanation;
}

TEST(LinearizabilityChecker, RefusesMalformedInput) {
    history backwards;
    backwards.push(0, 1, true, 5, 4);
    EXPECT_THROW(verify(backwards, fifo(1)), std::invalid_argument);
    EXPECT_THROW(verify(history{}, fifo(0)), std::invalid_argument);
    EXPECT_THROW(verify(history{}, fifo(1, {1, 2})), std::invalid_argument);
}

// ---- Size and budget ----------------------------------------------------------------------------

/// A random history that is linearizable by construction: each process's
/// operations take effect at a random instant inside their interval, on a
/// real model; processes overlap freely. The last operation of some
/// processes is made pending (its effect kept or dropped).
std::vector<operation> simulated(discipline order, std::size_t capacity, int processes, int per_process,
                                 std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    struct planned {
        operation op;
        std::uint64_t at;
    };
    std::vector<planned> plan;
    for (int p = 0; p < processes; ++p) {
        std::uint64_t t = rng() % 50;
        for (int i = 0; i < per_process; ++i) {
            operation op;
            op.process = p;
            op.kind = rng() % 2 ? op_kind::push : op_kind::pop;
            op.value = (std::uint64_t(p) << 32) | std::uint64_t(i);
            op.call_ns = t;
            op.return_ns = t + 1 + rng() % 120;
            plan.push_back({op, op.call_ns + rng() % (op.return_ns - op.call_ns + 1)});
            t = op.return_ns + 1 + rng() % 30;
        }
    }
    std::sort(plan.begin(), plan.end(), [](const planned& a, const planned& b) { return a.at < b.at; });
    std::deque<std::uint64_t> content;
    std::vector<operation> out;
    for (planned& x : plan) {
        operation& op = x.op;
        if (op.kind == op_kind::push) {
            op.ok = content.size() < capacity;
            if (op.ok) content.push_back(op.value);
        } else {
            op.ok = !content.empty();
            if (op.ok) {
                op.value = order == discipline::fifo ? content.front() : content.back();
                if (order == discipline::fifo)
                    content.pop_front();
                else
                    content.pop_back();
            }
        }
        out.push_back(op);
    }
    return out;
}

TEST(LinearizabilityChecker, DecidesHundredsOfOperationsQuickly) {
    for (const discipline order : {discipline::fifo, discipline::lifo})
        for (std::uint64_t seed = 1; seed <= 5; ++seed) {
            const auto ops = simulated(order, 4, 3, 150, seed);
            const auto start = std::chrono::steady_clock::now();
            const result r = check(ops, {order, 4, {}});
            const auto took = std::chrono::steady_clock::now() - start;
            EXPECT_EQ(r.outcome, verdict::linearizable) << "seed " << seed << ": " << r.explanation;
            EXPECT_LT(took, std::chrono::seconds(2)) << "seed " << seed << ", " << r.steps << " steps";
        }
}

TEST(LinearizabilityChecker, FindsOneCorruptedResultInHundredsOfOperations) {
    auto ops = simulated(discipline::fifo, 4, 3, 150, 42);
    for (operation& op : ops)
        if (op.kind == op_kind::pop && op.ok && op.call_ns > 2000) {
            op.value = 0xdead;  // a value nobody pushed
            break;
        }
    const auto start = std::chrono::steady_clock::now();
    const result r = check(ops, {discipline::fifo, 4, {}});
    EXPECT_EQ(r.outcome, verdict::not_linearizable);
    EXPECT_NE(r.explanation.find("57005 popped but never pushed"), std::string::npos) << r.explanation;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(LinearizabilityChecker, PendingOperationsOfKilledProcessesStayLinearizable) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        auto ops = simulated(discipline::fifo, 3, 3, 40, seed);
        // Processes 1 and 2 were killed in their last call: it returns nothing known.
        for (int p : {1, 2}) {
            const auto last = std::find_if(ops.rbegin(), ops.rend(), [p](const operation& o) { return o.process == p; });
            ASSERT_NE(last, ops.rend()) << "process " << p << " made no call";
            last->pending = true;
            last->ok = false;
        }
        const result r = check(ops, {discipline::fifo, 3, {}});
        EXPECT_EQ(r.outcome, verdict::linearizable) << "seed " << seed << ": " << r.explanation;
    }
}

TEST(LinearizabilityChecker, DecidesThousandsOfMostlySequentialOperations) {
    // What a kill test leaves: one process going on alone long after the other.
    auto ops = simulated(discipline::fifo, 4, 2, 200, 3);
    std::uint64_t t = 0;
    for (const operation& op : ops) t = std::max(t, op.return_ns);
    std::uint64_t v = 1'000'000;
    for (int i = 0; i < 3000; ++i, t += 10) {
        ops.push_back({1, op_kind::push, v, true, t + 1, t + 3, false});
        ops.push_back({1, op_kind::pop, v++, true, t + 5, t + 7, false});
    }
    const auto start = std::chrono::steady_clock::now();
    const result r = check(ops, {discipline::fifo, 4, {}});
    // The first part leaves elements behind, so the pops of the second part
    // do not all fit; either way the answer comes quickly.
    EXPECT_NE(r.outcome, verdict::undecided) << r.explanation;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

/// Whether some order of `ops` (each pending one in or out) respecting real
/// time is legal for `m`: every order tried, nothing remembered.
bool brute_force(const std::vector<operation>& ops, const model& m, std::vector<bool>& done,
                 std::deque<std::uint64_t>& content) {
    bool all = true;
    for (std::size_t i = 0; i < ops.size(); ++i) all = all && (done[i] || ops[i].pending);
    if (all) return true;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (done[i]) continue;
        bool preceded = false;
        for (std::size_t j = 0; j < ops.size(); ++j)
            preceded =
                preceded || (!done[j] && j != i && !ops[j].pending && ops[j].return_ns < ops[i].call_ns);
        if (preceded) continue;
        const operation& op = ops[i];
        const bool fifo = m.order == discipline::fifo;
        auto next = [&] { return fifo ? content.front() : content.back(); };
        auto remove = [&] { fifo ? content.pop_front() : content.pop_back(); };
        auto restore = [&](std::uint64_t x) { fifo ? content.push_front(x) : content.push_back(x); };
        done[i] = true;
        bool found = false;
        if (op.kind == op_kind::push && (op.ok || op.pending)) {
            if (content.size() < m.capacity) {
                content.push_back(op.value);
                found = brute_force(ops, m, done, content);
                content.pop_back();
            }
        } else if (op.kind == op_kind::push) {
            found = content.size() == m.capacity && brute_force(ops, m, done, content);
        } else if (op.ok || op.pending) {
            if (!content.empty() && (op.pending || next() == op.value)) {
                const std::uint64_t x = next();
                remove();
                found = brute_force(ops, m, done, content);
                restore(x);
            }
        } else {
            found = content.empty() && brute_force(ops, m, done, content);
        }
        done[i] = false;
        if (found) return true;
    }
    return false;
}

TEST(LinearizabilityChecker, AgreesWithTryingEveryOrderOnSmallHistories) {
    std::mt19937_64 rng(2024);
    int agreed_yes = 0, agreed_no = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        const discipline order = trial % 2 ? discipline::fifo : discipline::lifo;
        const std::size_t capacity = 1 + rng() % 2;
        std::vector<operation> ops = simulated(order, capacity, 3, 1 + static_cast<int>(rng() % 3), rng());
        // Disturb a result now and then, make some calls pending.
        for (operation& op : ops) {
            if (rng() % 6 == 0) op.ok = !op.ok;
            if (rng() % 8 == 0 && op.kind == op_kind::pop) op.value = rng() % 2 ? 0 : (1ull << 32);
            if (rng() % 7 == 0) op.pending = true;
        }
        // A process's calls after a pending one cannot exist: drop them.
        std::vector<operation> kept;
        std::vector<int> dead;
        std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.call_ns < b.call_ns; });
        for (const operation& op : ops) {
            if (std::find(dead.begin(), dead.end(), op.process) != dead.end()) continue;
            kept.push_back(op);
            if (op.pending) dead.push_back(op.process);
        }
        const model m{order, capacity, {}};
        std::vector<bool> done(kept.size(), false);
        std::deque<std::uint64_t> content;
        const bool expected = brute_force(kept, m, done, content);
        const result r = check(kept, m);
        ASSERT_EQ(r.outcome, expected ? verdict::linearizable : verdict::not_linearizable)
            << "trial " << trial << ": " << r.explanation;
        (expected ? agreed_yes : agreed_no)++;
    }
    EXPECT_GT(agreed_yes, 300);
    EXPECT_GT(agreed_no, 300);
}

TEST(LinearizabilityChecker, SaysUndecidedWhenTheBudgetRunsOut) {
    const auto ops = simulated(discipline::lifo, 8, 3, 100, 7);
    options tiny;
    tiny.step_budget = 20;
    const result r = check(ops, {discipline::lifo, 8, {}}, tiny);
    EXPECT_EQ(r.outcome, verdict::undecided);
    EXPECT_NE(r.explanation.find("undecided"), std::string::npos) << r.explanation;
}

}  // namespace
