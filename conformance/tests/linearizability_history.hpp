// linearizability_history.hpp: the history the linearizability checker
// (linearizability.hpp) judges, and the record a history actor leaves.
// Dependency-free (the standard library only).
//
// A history is a list of operations, each with the interval in which it ran:
// its call time (taken before the call) and its return time (taken after),
// on a clock common to every process (CLOCK_MONOTONIC). A *pending* operation
// is one whose process was killed before it returned: it may have taken
// effect (at any instant after its call, with whatever result) or not at all.
//
// Values are printed as HIGH:LOW when they do not fit in 32 bits (the
// conformance actors push ID << 32 | SEQUENCE), in decimal otherwise.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
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
