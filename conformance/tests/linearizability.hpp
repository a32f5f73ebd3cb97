// linearizability.hpp: is a recorded history of try_push and try_pop calls,
// made by several processes, linearizable with respect to a bounded FIFO
// queue or LIFO stack? Dependency-free (the standard library only), so that
// it can be tested on hand-made histories by itself.
//
// A history is a list of operations, each with the interval in which it ran:
// its call time (taken before the call) and its return time (taken after),
// on a clock common to every process (CLOCK_MONOTONIC). Linearizable means
// that every operation can be given one instant inside its interval at which
// it took effect, so that the operations, in the order of those instants,
// are a legal sequential history of the model with the results recorded. In
// particular a try_pop that returned nothing took effect at an instant where
// the model was empty (the "snapshot" of Q-006), and a try_push that returned
// false at one where it was full.
//
// A *pending* operation is one whose process was killed before it returned:
// it may have taken effect (at any instant after its call, with whatever
// result) or not at all.
//
// The search is Wing & Gong's (linearize, one by one, an operation that no
// remaining operation precedes in real time; backtrack when none fits) with
// Lowe's memoisation: a configuration (set of operations linearized, content
// of the model) reached once is never explored again. Histories of a few
// hundred operations from two or three processes take milliseconds; a search
// that exceeds its step budget answers `undecided` rather than running on.
//
// Values are printed as HIGH:LOW when they do not fit in 32 bits (the
// conformance actors push ID << 32 | SEQUENCE), in decimal otherwise.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

namespace shmconf::lin {

enum class op_kind : std::uint32_t { push = 1, pop = 2 };

/// One call, as recorded.
struct operation {
    int process = 0;
    op_kind kind = op_kind::push;
    std::uint64_t value = 0;      ///< push: the value pushed; pop: the value returned (when `ok`)
    bool ok = false;              ///< push: returned true; pop: returned a value
    std::uint64_t call_ns = 0;    ///< taken before the call
    std::uint64_t return_ns = 0;  ///< taken after it returned; ignored when pending
    bool pending = false;         ///< never returned: took effect or not, with any result
};

enum class discipline { fifo, lifo };

/// The sequential specification: a bounded queue or stack whose try_push
/// returns false exactly when full and try_pop nothing exactly when empty.
struct model {
    discipline order = discipline::fifo;
    std::size_t capacity = 1;
    std::vector<std::uint64_t> initial;  ///< content at the start, oldest first
};

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

enum class verdict { linearizable, not_linearizable, undecided };

inline const char* to_string(verdict v) {
    switch (v) {
        case verdict::linearizable:
            return "linearizable";
        case verdict::not_linearizable:
            return "not linearizable";
        case verdict::undecided:
            return "undecided";
    }
    return "?";
}

struct result {
    verdict outcome = verdict::undecided;
    /// Why not (or why undecided), for a test's failure message; empty when linearizable.
    std::string explanation;
    std::uint64_t steps = 0;
    /// When linearizable: one linearization, as indices into the history
    /// (pending operations that took effect included, the others left out).
    std::vector<std::size_t> witness;
};

// ---- Formatting ---------------------------------------------------------------------------------

inline std::string format_value(std::uint64_t v) {
    if (v > 0xffffffffu) return std::to_string(v >> 32) + ":" + std::to_string(v & 0xffffffffu);
    return std::to_string(v);
}

/// Microseconds since `origin_ns`, with nanosecond digits.
inline std::string format_time(std::uint64_t t, std::uint64_t origin_ns) {
    char buffer[48];
    const std::uint64_t d = t >= origin_ns ? t - origin_ns : 0;
    std::snprintf(buffer, sizeof buffer, "%llu.%03llu", static_cast<unsigned long long>(d / 1000),
                  static_cast<unsigned long long>(d % 1000));
    return buffer;
}

/// "#3 p1 pop() -> 1:7 [1.250, 2.875] us", times since `origin_ns`.
inline std::string describe(const std::vector<operation>& history, std::size_t index,
                            std::uint64_t origin_ns) {
    const operation& op = history[index];
    std::string s = "#" + std::to_string(index) + " p" + std::to_string(op.process) + " ";
    if (op.kind == op_kind::push)
        s += "push(" + format_value(op.value) + ")" + (op.pending ? "" : op.ok ? " -> true" : " -> false");
    else
        s += std::string("pop()") + (op.pending ? ""
                                     : op.ok    ? " -> " + format_value(op.value)
                                                : " -> nothing");
    s += " [" + format_time(op.call_ns, origin_ns) + ", ";
    s += op.pending ? std::string("...) pending") : format_time(op.return_ns, origin_ns) + "] us";
    return s;
}

namespace detail {

inline std::string format_content(const std::deque<std::uint64_t>& content, discipline order) {
    std::string s = "[";
    const std::size_t n = content.size(), shown = 8;
    for (std::size_t i = 0; i < n; ++i) {
        if (n > shown && i == shown / 2) {
            s += "... ";
            i = n - shown / 2;
        }
        s += format_value(content[i]) + (i + 1 < n ? " " : "");
    }
    s += n == 0 ? "] (empty)" : order == discipline::fifo ? "] (front first)" : "] (bottom first)";
    return s;
}

/// The search over one history (already filtered and cut to a prefix).
class search {
public:
    search(const std::vector<operation>& ops, const model& m, const std::vector<std::uint64_t>* final_content,
           std::uint64_t budget)
        : ops_(ops), model_(m), final_(final_content), budget_(budget) {}

    verdict run() {
        const std::size_t n = ops_.size();
        by_call_.resize(n);
        for (std::size_t i = 0; i < n; ++i) by_call_[i] = i;
        std::stable_sort(by_call_.begin(), by_call_.end(),
                         [&](std::size_t a, std::size_t b) { return ops_[a].call_ns < ops_[b].call_ns; });
        for (std::size_t i = 0; i < n; ++i)
            if (!ops_[i].pending) by_return_.push_back(i);
        std::stable_sort(by_return_.begin(), by_return_.end(),
                         [&](std::size_t a, std::size_t b) { return ops_[a].return_ns < ops_[b].return_ns; });
        position_.assign(n, 0);
        for (std::size_t k = 0; k < n; ++k) position_[by_call_[k]] = k;
        done_.assign(n, false);
        bits_.assign((n + 63) / 64, 0);
        content_.assign(model_.initial.begin(), model_.initial.end());
        deepest_done_ = done_;
        deepest_content_ = content_;
        remember();

        std::vector<frame> stack;
        stack.push_back(frame{});
        while (!stack.empty()) {
            frame& f = stack.back();
            if (!f.visited) {
                f.visited = true;
                if (completed_done_ == by_return_.size() &&
                    (!final_ ||
                     std::equal(content_.begin(), content_.end(), final_->begin(), final_->end()))) {
                    for (std::size_t i = 1; i < stack.size(); ++i) witness_.push_back(stack[i].op);
                    return verdict::linearizable;
                }
                if (completed_done_ > deepest_completed_) {
                    deepest_completed_ = completed_done_;
                    deepest_done_ = done_;
                    deepest_content_ = content_;
                }
                // What no remaining operation precedes: called no later than
                // the earliest return among those not linearized yet.
                while (f.return_cursor < by_return_.size() && done_[by_return_[f.return_cursor]])
                    ++f.return_cursor;
                f.deadline = f.return_cursor < by_return_.size() ? ops_[by_return_[f.return_cursor]].return_ns
                                                                 : std::numeric_limits<std::uint64_t>::max();
                f.next = first_open_;
            }
            std::size_t chosen = n;
            while (f.next < n && ops_[by_call_[f.next]].call_ns <= f.deadline) {
                const std::size_t candidate = by_call_[f.next++];
                if (done_[candidate]) continue;
                if (++steps_ > budget_) return verdict::undecided;
                undo u;
                if (!apply(candidate, u)) continue;
                mark(candidate, true);
                if (remember()) {
                    chosen = candidate;
                    frame child;
                    child.op = candidate;
                    child.change = u;
                    child.return_cursor = f.return_cursor;
                    stack.push_back(child);  // invalidates f
                    break;
                }
                mark(candidate, false);
                revert(u);
            }
            if (chosen != n) continue;
            // Nothing (more) can come next here: back up one operation.
            if (stack.back().op != npos) {
                mark(stack.back().op, false);
                revert(stack.back().change);
            }
            stack.pop_back();
        }
        return verdict::not_linearizable;
    }

    std::uint64_t steps() const { return steps_; }
    const std::vector<std::size_t>& witness() const { return witness_; }

    /// The configuration with the most completed operations linearized.
    std::size_t deepest_completed() const { return deepest_completed_; }
    std::size_t completed() const { return by_return_.size(); }

    /// An operation no other precedes at the deepest configuration, and
    /// why it does not come next there.
    struct blocked {
        std::size_t op;
        std::string refusal;  ///< why the model refuses it; empty if it fits
        bool due;             ///< the earliest return left: it must come before any call after that
    };
    std::vector<blocked> blocked_at_deepest() {
        done_ = deepest_done_;
        content_ = deepest_content_;
        std::vector<blocked> out;
        std::uint64_t deadline = std::numeric_limits<std::uint64_t>::max();
        std::size_t due = npos;
        for (std::size_t i : by_return_)
            if (!done_[i]) {
                deadline = ops_[i].return_ns;
                due = i;
                break;
            }
        for (std::size_t i : by_call_) {
            if (done_[i]) continue;
            if (ops_[i].call_ns > deadline) break;
            out.push_back({i, refusal(i), i == due});
        }
        return out;
    }
    std::string content_at_deepest() const { return format_content(deepest_content_, model_.order); }

private:
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

    struct undo {
        enum { none, added, removed_front, removed_back } what = none;
        std::uint64_t value = 0;
    };
    struct frame {
        std::size_t op = npos;  ///< the operation linearized to get here
        undo change;
        bool visited = false;
        std::size_t return_cursor = 0;  ///< by_return_ before it: all linearized
        std::size_t next = 0;           ///< the next candidate to try, in by_call_
        std::uint64_t deadline = 0;
    };

    /// Why operation `i` cannot take effect now ("" if it can).
    std::string refusal(std::size_t i) const {
        const operation& op = ops_[i];
        const std::size_t size = content_.size(), cap = model_.capacity;
        const bool fifo = model_.order == discipline::fifo;
        const std::string n_of = std::to_string(size) + " of " + std::to_string(cap) + " held";
        if (op.kind == op_kind::push) {
            if (op.pending || op.ok) return size < cap ? "" : "full (" + n_of + ")";
            return size == cap ? "" : "not full (" + n_of + ")";
        }
        if (op.pending) return size > 0 ? "" : "empty";
        if (!op.ok) return size == 0 ? "" : "not empty (" + n_of + ")";
        if (size == 0) return "empty";
        const std::uint64_t next = fifo ? content_.front() : content_.back();
        if (next != op.value) return std::string(fifo ? "the front is " : "the top is ") + format_value(next);
        return "";
    }

    bool apply(std::size_t i, undo& u) {
        if (!refusal(i).empty()) return false;
        const operation& op = ops_[i];
        if (op.kind == op_kind::push) {
            if (op.pending || op.ok) {
                content_.push_back(op.value);
                u.what = undo::added;
            }
        } else if (op.pending || op.ok) {
            if (model_.order == discipline::fifo) {
                u = {undo::removed_front, content_.front()};
                content_.pop_front();
            } else {
                u = {undo::removed_back, content_.back()};
                content_.pop_back();
            }
        }
        return true;
    }

    void revert(const undo& u) {
        switch (u.what) {
            case undo::none:
                break;
            case undo::added:
                content_.pop_back();
                break;
            case undo::removed_front:
                content_.push_front(u.value);
                break;
            case undo::removed_back:
                content_.push_back(u.value);
                break;
        }
    }

    void mark(std::size_t i, bool on) {
        done_[i] = on;
        const std::size_t p = position_[i];
        bits_[p / 64] ^= std::uint64_t{1} << (p % 64);
        auto bit = [&](std::size_t k) { return (bits_[k / 64] >> (k % 64)) & 1; };
        if (on) {
            while (first_open_ < ops_.size() && bit(first_open_)) ++first_open_;
            if (last_done_ == npos || p > last_done_) last_done_ = p;
        } else {
            first_open_ = std::min(first_open_, p);
            if (p == last_done_) {
                while (last_done_ != npos && !bit(last_done_))
                    last_done_ = last_done_ == 0 ? npos : last_done_ - 1;
            }
        }
        if (ops_[i].pending) return;
        if (on)
            ++completed_done_;
        else
            --completed_done_;
    }

    /// Records the current configuration; false if it was seen before. The
    /// set linearized is every operation before first_open_ in call order
    /// and some after it, up to last_done_: the key holds first_open_ and
    /// the bits from its word to last_done_'s (a word or two, not the whole
    /// history's), then the model's content.
    bool remember() {
        const std::size_t words =
            last_done_ != npos && last_done_ >= first_open_ ? last_done_ / 64 - first_open_ / 64 + 1 : 0;
        std::string key(reinterpret_cast<const char*>(&first_open_), sizeof first_open_);
        key.append(reinterpret_cast<const char*>(&words), sizeof words);
        key.append(reinterpret_cast<const char*>(bits_.data() + first_open_ / 64),
                   words * sizeof(std::uint64_t));
        for (std::uint64_t v : content_) key.append(reinterpret_cast<const char*>(&v), sizeof v);
        return seen_.insert(std::move(key)).second;
    }

    const std::vector<operation>& ops_;
    const model& model_;
    const std::vector<std::uint64_t>* final_;
    std::uint64_t budget_;
    std::uint64_t steps_ = 0;
    std::vector<std::size_t> by_call_, by_return_, witness_;
    std::vector<bool> done_, deepest_done_;
    std::vector<std::size_t> position_;  ///< of each operation in by_call_
    std::vector<std::uint64_t> bits_;    ///< linearized, by position in by_call_
    std::size_t first_open_ = 0;         ///< the first position not linearized
    std::size_t last_done_ = npos;       ///< the last position linearized (npos: none)
    std::deque<std::uint64_t> content_, deepest_content_;
    std::size_t completed_done_ = 0, deepest_completed_ = 0;
    std::unordered_set<std::string> seen_;
};

/// The history up to time `t`: operations called by then, those that
/// returned later made pending (they may or may not have taken effect by t).
inline std::vector<operation> prefix_at(const std::vector<operation>& ops, std::uint64_t t,
                                        std::vector<std::size_t>& origin) {
    std::vector<operation> out;
    origin.clear();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (ops[i].call_ns > t) continue;
        operation op = ops[i];
        if (!op.pending && op.return_ns > t) op.pending = true;
        out.push_back(op);
        origin.push_back(i);
    }
    return out;
}

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

}  // namespace detail

/// Is `history` linearizable with respect to `m`? See the file comment.
/// Throws std::invalid_argument for a malformed history or model.
inline result check(const std::vector<operation>& history, const model& m, const options& o = {}) {
    if (m.capacity == 0) throw std::invalid_argument("linearizability: a model of capacity 0");
    if (m.initial.size() > m.capacity)
        throw std::invalid_argument("linearizability: initial content over capacity");
    if (o.final_content && o.final_content->size() > m.capacity)
        throw std::invalid_argument("linearizability: final content over capacity");
    for (std::size_t i = 0; i < history.size(); ++i)
        if (!history[i].pending && history[i].return_ns < history[i].call_ns)
            throw std::invalid_argument("linearizability: operation #" + std::to_string(i) +
                                        " returns before its call");

    // What is checked: without check_failed_results, calls that returned
    // nothing or false are left out (they had no effect).
    std::vector<operation> ops;
    std::vector<std::size_t> origin;
    for (std::size_t i = 0; i < history.size(); ++i)
        if (o.check_failed_results || history[i].pending || history[i].ok) {
            ops.push_back(history[i]);
            origin.push_back(i);
        }
    const std::vector<std::uint64_t>* final_content = o.final_content ? &*o.final_content : nullptr;

    result r;
    detail::search whole(ops, m, final_content, o.step_budget);
    r.outcome = whole.run();
    r.steps = whole.steps();
    if (r.outcome == verdict::linearizable) {
        for (std::size_t i : whole.witness()) r.witness.push_back(origin[i]);
        return r;
    }
    const std::string what = std::string(m.order == discipline::fifo ? "a FIFO queue" : "a LIFO stack") +
                             " of capacity " + std::to_string(m.capacity) +
                             (m.initial.empty() ? "" : " (not empty at the start)") +
                             (o.check_failed_results ? "" : ", results of nothing and false not checked");
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

    std::uint64_t origin_ns = std::numeric_limits<std::uint64_t>::max();
    for (const operation& op : history) origin_ns = std::min(origin_ns, op.call_ns);
    std::string text = "not linearizable as " + what + ".";
    for (const std::string& note : detail::value_notes(history, m, o.final_content, origin_ns))
        text += "\n  " + note;

    // Without the end state, is every operation linearizable? Then only the
    // end is wrong (an element lost, or left over).
    if (final_content) {
        detail::search without_end(ops, m, nullptr, o.step_budget);
        if (without_end.run() == verdict::linearizable) {
            std::deque<std::uint64_t> wanted(final_content->begin(), final_content->end());
            r.explanation = text + "\n  Every operation linearizes, but never leaving " +
                            detail::format_content(wanted, m.order) + " at the end.";
            return r;
        }
    }

    // The shortest failing prefix, ending at the return of some operation:
    // linearizability of prefixes is monotone, so a binary search finds it.
    std::vector<std::uint64_t> ends;
    for (const operation& op : ops)
        if (!op.pending) ends.push_back(op.return_ns);
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
    std::size_t lo = 0, hi = ends.size();  // the answer is in [lo, hi); hi: the whole history
    std::vector<std::size_t> cut_origin;
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        const std::vector<operation> prefix = detail::prefix_at(ops, ends[mid], cut_origin);
        detail::search s(prefix, m, nullptr, o.step_budget);
        if (s.run() == verdict::not_linearizable)
            hi = mid;
        else
            lo = mid + 1;  // linearizable, or undecided: look later
    }
    const std::uint64_t cut = lo < ends.size() ? ends[lo] : std::numeric_limits<std::uint64_t>::max();
    const std::vector<operation> prefix = detail::prefix_at(ops, cut, cut_origin);
    detail::search s(prefix, m, nullptr, o.step_budget);
    if (s.run() != verdict::not_linearizable) {
        r.explanation = text;
        return r;
    }
    if (lo < ends.size()) {
        text += "\n  Already the history up to the return of";
        for (std::size_t i = 0; i < ops.size(); ++i)
            if (!ops[i].pending && ops[i].return_ns == cut)
                text += "\n    " + describe(history, origin[i], origin_ns);
        text += "\n  has none (operations returning later taken as pending).";
    }
    text += "\n  At best " + std::to_string(s.deepest_completed()) + " of its " +
            std::to_string(s.completed()) + " completed operations linearize, leaving " +
            s.content_at_deepest() + "; then none of these can come next:";
    const auto blocked = s.blocked_at_deepest();
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

    // The calls around that point, of the whole history (those left
    // unchecked included): each process's last one before the earliest of
    // those above was called, and every one overlapping [that call, cut].
    std::uint64_t from = cut;
    for (const auto& b : blocked) from = std::min(from, history[origin[cut_origin[b.op]]].call_ns);
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
    r.explanation = text;
    return r;
}

// ---- The record a history actor leaves ----------------------------------------------------------

/// How the conformance suite's history actor (history_actor.cpp) records
/// its calls in a file that outlives it, mapped shared: a header, then one
/// entry per call. The actor writes kind and value, then call_ns (so an
/// entry with call_ns 0 is unused), calls, then ok, then return_ns (so an
/// entry with call_ns but no return_ns is pending: the actor was killed).
namespace record {

inline constexpr std::uint64_t magic = 0x7368'6d63'6f6e'6631;  // "shmconf1"

struct header {
    std::uint64_t magic;
    std::uint64_t capacity;  ///< entries after the header
};

struct entry {
    std::uint64_t call_ns;
    std::uint64_t return_ns;
    std::uint64_t value;
    std::uint32_t kind;  ///< op_kind
    std::uint32_t ok;
};

static_assert(sizeof(header) == 16 && sizeof(entry) == 32, "the record is read by another program");
static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= alignof(std::uint64_t),
              "entries are written with atomic_ref");

inline std::size_t file_size(std::size_t entries) {
    return sizeof(header) + entries * sizeof(entry);
}

/// The operations of entries [begin, end) of `base` (a mapping of the
/// file), made by `process`; stops at the first unused entry.
inline std::vector<operation> read(const void* base, std::size_t begin, std::size_t end, int process) {
    const auto* h = static_cast<const header*>(base);
    auto* entries = reinterpret_cast<entry*>(const_cast<header*>(h) + 1);
    std::vector<operation> out;
    for (std::size_t i = begin; i < end && i < h->capacity; ++i) {
        entry& e = entries[i];
        const std::uint64_t call = std::atomic_ref<std::uint64_t>(e.call_ns).load(std::memory_order_acquire);
        if (call == 0) break;
        const std::uint64_t ret = std::atomic_ref<std::uint64_t>(e.return_ns).load(std::memory_order_acquire);
        operation op;
        op.process = process;
        op.kind = e.kind == static_cast<std::uint32_t>(op_kind::push) ? op_kind::push : op_kind::pop;
        op.value = e.value;
        op.ok = e.ok != 0;
        op.call_ns = call;
        op.return_ns = ret;
        op.pending = ret == 0;
        out.push_back(op);
    }
    return out;
}

}  // namespace record

}  // namespace shmconf::lin
