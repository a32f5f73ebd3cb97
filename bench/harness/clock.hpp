// bench/harness/clock.hpp: the one clock every process of a run stamps and
// times with. Either CLOCK_MONOTONIC (about 30 ns a read in these VMs), or
// the CPU's time-stamp counter where it can be trusted across CPUs and
// processes: the CPU says it is invariant (constant_tsc and nonstop_tsc) and
// the kernel itself uses it as its clocksource (so it checked that the CPUs'
// counters agree). The TSC is calibrated against CLOCK_MONOTONIC in the
// parent before any fork, so all members convert ticks with the same factor
// and their stamps compare directly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define SHMDS_BENCH_HAVE_TSC 1
#else
#define SHMDS_BENCH_HAVE_TSC 0
#endif

namespace shmds_bench {

enum class clock_kind { monotonic, tsc };

namespace detail {

inline std::uint64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t read_tsc() noexcept {
#if SHMDS_BENCH_HAVE_TSC
    unsigned aux = 0;
    return __rdtscp(&aux);  // waits for earlier instructions: the stamp is not taken early
#else
    return 0;
#endif
}

/// The active clock and the TSC's calibration (set before forking).
struct clock_state {
    clock_kind kind = clock_kind::monotonic;
    std::uint64_t tsc_origin = 0;
    std::uint64_t ns_origin = 0;
    double ns_per_tick = 0;
    std::string description = "CLOCK_MONOTONIC";
};

inline clock_state& active_clock() noexcept {
    static clock_state state;
    return state;
}

}  // namespace detail

/// Nanoseconds on the run's clock: comparable between the processes of a run.
inline std::uint64_t now_ns() noexcept {
    const detail::clock_state& c = detail::active_clock();
    if (c.kind == clock_kind::tsc)
        return c.ns_origin + static_cast<std::uint64_t>(
                                 static_cast<double>(detail::read_tsc() - c.tsc_origin) * c.ns_per_tick);
    return detail::monotonic_ns();
}

/// Why the TSC can or cannot be used here (empty when it can).
inline std::string tsc_unusable_reason() {
#if !SHMDS_BENCH_HAVE_TSC
    return "not an x86 CPU";
#else
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line, flags;
    while (std::getline(cpuinfo, line))
        if (line.rfind("flags", 0) == 0) {
            flags = " " + line + " ";
            break;
        }
    for (const char* needed : {"constant_tsc", "nonstop_tsc", "rdtscp"})
        if (flags.find(std::string(" ") + needed + " ") == std::string::npos)
            return std::string("the CPU lacks ") + needed;
    std::ifstream source("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    std::string current;
    std::getline(source, current);
    if (current != "tsc") return "the kernel does not trust it (clocksource is " + current + ")";
    return "";
#endif
}

/// Selects the clock: "monotonic", "tsc" (fails when unusable) or "auto"
/// (the TSC where usable). Calibrates the TSC over about 50 ms. Call in the
/// parent, before forking. Throws std::runtime_error naming what was wrong.
inline void select_clock(const std::string& choice) {
    detail::clock_state& c = detail::active_clock();
    if (choice != "auto" && choice != "tsc" && choice != "monotonic")
        throw std::runtime_error("--clock must be auto, tsc or monotonic, not '" + choice + "'");
    const std::string reason = tsc_unusable_reason();
    if (choice == "monotonic" || (choice == "auto" && !reason.empty())) {
        c = {};
        if (choice == "auto") c.description = "CLOCK_MONOTONIC (TSC not used: " + reason + ")";
        return;
    }
    if (!reason.empty()) throw std::runtime_error("--clock=tsc: the TSC cannot be used: " + reason);
    // Two (tsc, ns) pairs 50 ms apart; each pair is the tightest of several
    // reads so that a preemption between the two reads does not skew it.
    auto pair = [] {
        std::uint64_t best_tsc = 0, best_ns = 0, best_gap = UINT64_MAX;
        for (int i = 0; i < 50; ++i) {
            const std::uint64_t before = detail::read_tsc();
            const std::uint64_t ns = detail::monotonic_ns();
            const std::uint64_t after = detail::read_tsc();
            if (after - before < best_gap) {
                best_gap = after - before;
                best_tsc = before + (after - before) / 2;
                best_ns = ns;
            }
        }
        return std::pair{best_tsc, best_ns};
    };
    const auto [tsc0, ns0] = pair();
    timespec pause{0, 50'000'000};
    nanosleep(&pause, nullptr);
    const auto [tsc1, ns1] = pair();
    c.kind = clock_kind::tsc;
    c.tsc_origin = tsc1;
    c.ns_origin = ns1;
    c.ns_per_tick = static_cast<double>(ns1 - ns0) / static_cast<double>(tsc1 - tsc0);
    std::ostringstream d;
    d.precision(4);
    d << "TSC (invariant, calibrated at " << 1.0 / c.ns_per_tick << " GHz against CLOCK_MONOTONIC)";
    c.description = d.str();
}

inline const std::string& clock_description() {
    return detail::active_clock().description;
}

/// Median cost of one now_ns() call, to subtract from measured intervals.
inline std::uint64_t clock_cost_ns() {
    std::vector<std::uint64_t> samples;
    for (int round = 0; round < 21; ++round) {
        const std::uint64_t start = now_ns();
        std::uint64_t sink = 0;
        for (int i = 0; i < 1000; ++i) sink += now_ns();
        const std::uint64_t end = now_ns();
        samples.push_back((end - start) / 1000 + (sink & 0));
    }
    std::nth_element(samples.begin(), samples.begin() + 10, samples.end());
    return samples[10];
}

}  // namespace shmds_bench
