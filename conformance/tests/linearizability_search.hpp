// linearizability_search.hpp: the search behind the linearizability checker
// (linearizability.hpp) over one history (linearizability_history.hpp).
//
// The search is Wing & Gong's (linearize, one by one, an operation that no
// remaining operation precedes in real time; backtrack when none fits) with
// Lowe's memoisation: a configuration (set of operations linearized, content
// of the model) reached once is never explored again. Histories of a few
// hundred operations from two or three processes take milliseconds; a search
// that exceeds its step budget answers `undecided` rather than running on.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include "linearizability_history.hpp"

namespace shmconf::lin {

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

}  // namespace detail

}  // namespace shmconf::lin
