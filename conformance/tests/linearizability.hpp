// linearizability.hpp: is a recorded history of try_push and try_pop calls,
// made by several processes, linearizable with respect to a bounded FIFO
// queue or LIFO stack? Dependency-free (the standard library only), so that
// it can be tested on hand-made histories by itself.
//
// The history (operations, each with the interval in which it ran; pending
// ones never returned) and the record a history actor leaves are in
// linearizability_history.hpp; the search in linearizability_search.hpp.
// Linearizable means that every operation can be given one instant inside its
// interval at which it took effect, so that the operations, in the order of
// those instants, are a legal sequential history of the model with the
// results recorded. In particular a try_pop that returned nothing took effect
// at an instant where the model was empty (the "snapshot" of Q-006), and a
// try_push that returned false at one where it was full.
//
// A failure is explained: facts about values, whether only the end state is
// wrong, and else the shortest failing prefix, where its search got furthest,
// what could not come next there and the calls around that point.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "linearizability_history.hpp"
#include "linearizability_search.hpp"

namespace shmconf::lin {

struct options {
    /// False: results of nothing (try_pop) and false (try_push) are not
    /// checked; such calls are taken to have had no effect at all. What is
    /// left is about elements only: none lost or duplicated or invented, in
    /// an order the model allows, never more than `capacity` held.
    bool check_failed_results = true;
    /// The model's content once every operation has taken effect, oldest
    /// first, when known (e.g. empty, because the structure was drained).
    std::optional<std::vector<std::uint64_t>> final_content;
    /// Model steps one search may take before answering `undecided`.
    std::uint64_t step_budget = 2'000'000;
    /// Explain a failure (costs a few more searches, only on failure).
    bool explain = true;
};
struct result {
    verdict outcome = verdict::undecided;
    /// Why not (or why undecided), for a test's failure message; empty when linearizable.
    std::string explanation;
    std::uint64_t steps = 0;
    /// When linearizable: one linearization, as indices into the history
    /// (pending operations that took effect included, the others left out).
    std::vector<std::size_t> witness;
};
namespace detail {

/// Facts about values that explain most failures at a glance.
inline std::vector<std::string> value_notes(const std::vector<operation>& history, const model& m,
                                            const std::optional<std::vector<std::uint64_t>>& final_content,
                                            std::uint64_t origin) {
    std::vector<std::string> notes;
    std::vector<std::pair<std::uint64_t, std::size_t>> pushes, pops;  // (value, index), sorted
    for (std::size_t i = 0; i < history.size(); ++i) {
        const operation& op = history[i];
        if (op.kind == op_kind::push && (op.ok || op.pending)) pushes.emplace_back(op.value, i);
        if (op.kind == op_kind::pop && op.ok && !op.pending) pops.emplace_back(op.value, i);
    }
    std::sort(pushes.begin(), pushes.end());
    std::sort(pops.begin(), pops.end());
    auto first_push = [&](std::uint64_t v) -> const std::pair<std::uint64_t, std::size_t>* {
        const auto p = std::lower_bound(pushes.begin(), pushes.end(), std::make_pair(v, std::size_t{0}));
        return p != pushes.end() && p->first == v ? &*p : nullptr;
    };
    auto initially = [&](std::uint64_t v) {
        return std::find(m.initial.begin(), m.initial.end(), v) != m.initial.end();
    };
    for (std::size_t k = 0; k < pops.size() && notes.size() < 4; ++k) {
        const auto [v, i] = pops[k];
        const auto* push = first_push(v);
        if (k > 0 && pops[k - 1].first == v)
            notes.push_back("value " + format_value(v) +
                            " popped twice: " + describe(history, pops[k - 1].second, origin) + " and " +
                            describe(history, i, origin));
        else if (!push && !initially(v))
            notes.push_back("value " + format_value(v) +
                            " popped but never pushed: " + describe(history, i, origin));
        else if (push && !initially(v) && !history[push->second].pending &&
                 history[i].return_ns < history[push->second].call_ns)
            notes.push_back("value " + format_value(v) +
                            " popped before its push was called: " + describe(history, i, origin) +
                            ", then " + describe(history, push->second, origin));
    }
    if (final_content) {
        std::size_t lost = 0;
        std::string which;
        for (const auto& [v, i] : pushes) {
            if (history[i].pending) continue;
            const bool popped =
                std::binary_search(pops.begin(), pops.end(), std::make_pair(v, std::size_t{0}),
                                   [](const auto& a, const auto& b) { return a.first < b.first; });
            const bool kept =
                std::find(final_content->begin(), final_content->end(), v) != final_content->end();
            if (!popped && !kept && ++lost <= 3) which += "\n    " + describe(history, i, origin);
        }
        if (lost > 0)
            notes.push_back(std::to_string(lost) +
                            " value(s) pushed, never popped, and not there at the end (a pending pop may have"
                            " taken one):" +
                            which);
    }
    return notes;
}

/// Throws std::invalid_argument for a malformed history or model.
inline void validate(const std::vector<operation>& history, const model& m, const options& o) {
    if (m.capacity == 0) throw std::invalid_argument("linearizability: a model of capacity 0");
    if (m.initial.size() > m.capacity)
        throw std::invalid_argument("linearizability: initial content over capacity");
    if (o.final_content && o.final_content->size() > m.capacity)
        throw std::invalid_argument("linearizability: final content over capacity");
    for (std::size_t i = 0; i < history.size(); ++i)
        if (!history[i].pending && history[i].return_ns < history[i].call_ns)
            throw std::invalid_argument("linearizability: operation #" + std::to_string(i) +
                                        " returns before its call");
}

/// The operations that are checked, and the index of each in the history.
struct checked_operations {
    std::vector<operation> ops;
    std::vector<std::size_t> origin;
};

/// What is checked: without check_failed_results, calls that returned
/// nothing or false are left out (they had no effect).
inline checked_operations to_check(const std::vector<operation>& history, const options& o) {
    checked_operations c;
    for (std::size_t i = 0; i < history.size(); ++i)
        if (o.check_failed_results || history[i].pending || history[i].ok) {
            c.ops.push_back(history[i]);
            c.origin.push_back(i);
        }
    return c;
}

/// "a FIFO queue of capacity 4 ...": what the history was checked as.
inline std::string checked_as(const model& m, const options& o) {
    return std::string(m.order == discipline::fifo ? "a FIFO queue" : "a LIFO stack") + " of capacity " +
           std::to_string(m.capacity) + (m.initial.empty() ? "" : " (not empty at the start)") +
           (o.check_failed_results ? "" : ", results of nothing and false not checked");
}

/// The earliest call in the history: the origin of the times printed.
inline std::uint64_t earliest_call(const std::vector<operation>& history) {
    std::uint64_t origin_ns = std::numeric_limits<std::uint64_t>::max();
    for (const operation& op : history) origin_ns = std::min(origin_ns, op.call_ns);
    return origin_ns;
}

/// Where the shortest failing prefix of the checked operations ends.
struct prefix_end {
    bool at_a_return;   ///< false: no prefix ending at a return fails, only the whole history
    std::uint64_t cut;  ///< the time it ends at (the largest there is for the whole history)
};

/// The shortest failing prefix, ending at the return of some operation:
/// linearizability of prefixes is monotone, so a binary search finds it.
inline prefix_end shortest_failing_prefix(const std::vector<operation>& ops, const model& m,
                                          std::uint64_t step_budget) {
    std::vector<std::uint64_t> ends;
    for (const operation& op : ops)
        if (!op.pending) ends.push_back(op.return_ns);
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
    std::size_t lo = 0, hi = ends.size();  // the answer is in [lo, hi); hi: the whole history
    std::vector<std::size_t> cut_origin;
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        const std::vector<operation> prefix = prefix_at(ops, ends[mid], cut_origin);
        search s(prefix, m, nullptr, step_budget);
        if (s.run() == verdict::not_linearizable)
            hi = mid;
        else
            lo = mid + 1;  // linearizable, or undecided: look later
    }
    const std::uint64_t cut = lo < ends.size() ? ends[lo] : std::numeric_limits<std::uint64_t>::max();
    return {lo < ends.size(), cut};
}

/// The operations of `history` that returned at `cut` (the end of the
/// failing prefix), among those checked.
inline std::string returning_at(const std::vector<operation>& history, const checked_operations& c,
                                std::uint64_t cut, std::uint64_t origin_ns) {
    std::string text = "\n  Already the history up to the return of";
    for (std::size_t i = 0; i < c.ops.size(); ++i)
        if (!c.ops[i].pending && c.ops[i].return_ns == cut)
            text += "\n    " + describe(history, c.origin[i], origin_ns);
    text += "\n  has none (operations returning later taken as pending).";
    return text;
}

/// The operations that cannot come next where the search over the failing
/// prefix got furthest (six at the most), with why; `origin` maps a checked
/// operation to the history, `cut_origin` one of the prefix to the checked ones.
inline std::string describe_blocked(const std::vector<operation>& history,
                                    const std::vector<std::size_t>& origin,
                                    const std::vector<std::size_t>& cut_origin,
                                    const std::vector<search::blocked>& blocked, std::uint64_t origin_ns) {
    std::string text;
    for (std::size_t k = 0; k < blocked.size() && k < 6; ++k) {
        const std::size_t i = origin[cut_origin[blocked[k].op]];
        std::string why = blocked[k].refusal.empty() ? "could come next, but leads to no linearization"
                                                     : blocked[k].refusal;
        if (history[i].pending) why.insert(0, "pending (may also never take effect); ");
        if (blocked[k].due) why += " (and it must take effect by its return)";
        text += "\n    ";
        text += describe(history, i, origin_ns);
        text += ": ";
        text += why;
    }
    if (blocked.size() > 6) text += "\n    (and " + std::to_string(blocked.size() - 6) + " more)";
    return text;
}

/// The calls around the failing point, of the whole history (those left
/// unchecked included): each process's last one before `from` and every one
/// overlapping [from, cut].
inline std::string calls_around(const std::vector<operation>& history, std::uint64_t from, std::uint64_t cut,
                                std::uint64_t origin_ns) {
    std::string text;
    auto end_of = [&](std::size_t i) {
        return history[i].pending ? std::numeric_limits<std::uint64_t>::max() : history[i].return_ns;
    };
    std::vector<std::size_t> around, last_before;  // last_before: one per process
    for (std::size_t i = 0; i < history.size(); ++i) {
        if (history[i].call_ns <= cut && end_of(i) >= from) {
            around.push_back(i);
        } else if (end_of(i) < from) {
            auto same = std::find_if(last_before.begin(), last_before.end(),
                                     [&](std::size_t j) { return history[j].process == history[i].process; });
            if (same == last_before.end())
                last_before.push_back(i);
            else if (end_of(i) > end_of(*same))
                *same = i;
        }
    }
    around.insert(around.end(), last_before.begin(), last_before.end());
    std::sort(around.begin(), around.end(),
              [&](std::size_t a, std::size_t b) { return history[a].call_ns < history[b].call_ns; });
    text += "\n  The calls around it, by call time:";
    const std::size_t shown = 14;
    for (std::size_t k = 0; k < around.size() && k < shown; ++k)
        text += "\n    " + describe(history, around[k], origin_ns);
    if (around.size() > shown) text += "\n    (and " + std::to_string(around.size() - shown) + " more)";
    return text;
}

/// Why `history`, not linearizable as `what`, is not (see the file comment).
inline std::string explain_failure(const std::vector<operation>& history, const checked_operations& c,
                                   const model& m, const options& o, const std::string& what) {
    const std::uint64_t origin_ns = earliest_call(history);
    std::string text = "not linearizable as " + what + ".";
    for (const std::string& note : value_notes(history, m, o.final_content, origin_ns)) text += "\n  " + note;

    // Without the end state, is every operation linearizable? Then only the
    // end is wrong (an element lost, or left over).
    if (o.final_content) {
        search without_end(c.ops, m, nullptr, o.step_budget);
        if (without_end.run() == verdict::linearizable) {
            std::deque<std::uint64_t> wanted(o.final_content->begin(), o.final_content->end());
            return text + "\n  Every operation linearizes, but never leaving " +
                   format_content(wanted, m.order) + " at the end.";
        }
    }

    const auto [at_a_return, cut] = shortest_failing_prefix(c.ops, m, o.step_budget);
    std::vector<std::size_t> cut_origin;
    const std::vector<operation> prefix = prefix_at(c.ops, cut, cut_origin);
    search s(prefix, m, nullptr, o.step_budget);
    if (s.run() != verdict::not_linearizable) return text;
    if (at_a_return) text += returning_at(history, c, cut, origin_ns);
    text += "\n  At best " + std::to_string(s.deepest_completed()) + " of its " +
            std::to_string(s.completed()) + " completed operations linearize, leaving " +
            s.content_at_deepest() + "; then none of these can come next:";
    const auto blocked = s.blocked_at_deepest();
    text += describe_blocked(history, c.origin, cut_origin, blocked, origin_ns);
    // The calls around that point: from the earliest call of those above to the cut.
    std::uint64_t from = cut;
    for (const auto& b : blocked) from = std::min(from, history[c.origin[cut_origin[b.op]]].call_ns);
    text += calls_around(history, from, cut, origin_ns);
    return text;
}

}  // namespace detail

/// Is `history` linearizable with respect to `m`? See the file comment.
/// Throws std::invalid_argument for a malformed history or model.
inline result check(const std::vector<operation>& history, const model& m, const options& o = {}) {
    detail::validate(history, m, o);
    const detail::checked_operations c = detail::to_check(history, o);
    const std::vector<std::uint64_t>* final_content = o.final_content ? &*o.final_content : nullptr;

    result r;
    detail::search whole(c.ops, m, final_content, o.step_budget);
    r.outcome = whole.run();
    r.steps = whole.steps();
    if (r.outcome == verdict::linearizable) {
        for (std::size_t i : whole.witness()) r.witness.push_back(c.origin[i]);
        return r;
    }
    const std::string what = detail::checked_as(m, o);
    if (r.outcome == verdict::undecided) {
        r.explanation = "undecided: no linearization found as " + what + " within " +
                        std::to_string(o.step_budget) + " steps (" + std::to_string(history.size()) +
                        " operations)";
        return r;
    }
    if (!o.explain) {
        r.explanation = "not linearizable as " + what;
        return r;
    }
    r.explanation = detail::explain_failure(history, c, m, o, what);
    return r;
}

}  // namespace shmconf::lin
